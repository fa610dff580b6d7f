#include "store/layout.hpp"

#include <xxhash.h>

#include <fmt/format.h>

#include "core/digest.hpp"

namespace treesnap::layout {

std::string object_name(std::string_view digest) {
  std::string hex = to_hex(digest);
  return hex.substr(0, 2) + "/" + hex;
}

std::string variant_name(std::string_view digest, const Entry& entry) {
  std::string name = fmt::format("{}.{:o}.{}.{}.{}", object_name(digest), entry.mode, entry.uid,
                                 entry.gid, entry.mtime_ns);
  if (!entry.xattrs().empty()) {
    XXH64_state_t* state = XXH64_createState();
    XXH64_reset(state, 0);
    for (const auto& x : entry.xattrs()) {
      XXH64_update(state, x.name.data(), x.name.size() + 1);  // the NUL separates name and value
      XXH64_update(state, x.value.data(), x.value.size());
      std::uint64_t length = x.value.size();
      XXH64_update(state, &length, sizeof length);
    }
    name += fmt::format(".x{:016x}", XXH64_digest(state));
    XXH64_freeState(state);
  }
  return name;
}

std::vector<std::string> shard_names() {
  std::vector<std::string> names;
  names.reserve(256);
  for (int i = 0; i < 256; ++i) names.push_back(fmt::format("{:02x}", i));
  return names;
}

std::string digest_from_object_name(std::string_view shard, std::string_view file) {
  if (file.size() < 2 || file.substr(0, 2) != shard) return {};
  auto bytes = from_hex(file);
  return bytes ? *bytes : std::string();
}

}  // namespace treesnap::layout
