#include "store/layout.hpp"

#include <xxhash.h>

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "core/digest.hpp"

namespace treesnap::layout {

std::string object_name(std::string_view digest) {
  std::string hex = to_hex(digest);
  return hex.substr(0, 2) + "/" + hex;
}

void object_leaf(std::string_view digest, char* out) noexcept {
  static constexpr char k_digits[] = "0123456789abcdef";
  for (unsigned char b : digest) {
    *out++ = k_digits[b >> 4];
    *out++ = k_digits[b & 0xf];
  }
  *out = '\0';
}

std::string variant_name(std::string_view digest, const Entry& entry, bool with_mtime, unsigned generation) {
  std::string name = fmt::format("{}.{:o}.{}.{}", object_name(digest), entry.mode, entry.uid, entry.gid);
  if (with_mtime) name += fmt::format(".m{}", entry.mtime_ns);
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
  if (generation > 0) name += fmt::format(".g{}", generation);
  return name;
}

std::vector<std::string> shard_names() {
  std::vector<std::string> names;
  names.reserve(256);
  for (int i = 0; i < 256; ++i) names.push_back(fmt::format("{:02x}", i));
  return names;
}

std::string staging_name(std::string_view purpose, long pid, std::string_view random) {
  return fmt::format("{}-{}-{}", purpose, pid, random);
}

std::string gc_aside_name(long pid, std::string_view top, std::string_view name) {
  std::string flat(name);
  std::replace(flat.begin(), flat.end(), '/', '.');
  return staging_name("gc", pid, fmt::format("{}.{}", top, flat));
}

std::optional<std::pair<std::string_view, std::string>> gc_aside_origin(std::string_view aside) {
  if (!aside.starts_with("gc-")) return std::nullopt;
  auto dash = aside.find('-', 3);
  if (dash == std::string_view::npos) return std::nullopt;
  std::string_view rest = aside.substr(dash + 1);  // "<top>.<shard>.<file>"
  for (std::string_view top : {k_objects, k_variants}) {
    if (!rest.starts_with(top) || rest.size() < top.size() + 5 || rest[top.size()] != '.' ||
        rest[top.size() + 3] != '.')
      continue;
    std::string_view shard = rest.substr(top.size() + 1, 2), file = rest.substr(top.size() + 4);
    if (file.find('/') != std::string_view::npos) return std::nullopt;
    return std::pair{top, fmt::format("{}/{}", shard, file)};
  }
  return std::nullopt;
}

long staging_owner(std::string_view name) {
  auto first = name.find('-');
  if (first == std::string_view::npos) return 0;
  auto second = name.find('-', first + 1);
  if (second == std::string_view::npos) return 0;
  long pid = 0;
  for (char c : name.substr(first + 1, second - first - 1)) {
    if (c < '0' || c > '9' || pid > 1'000'000'000) return 0;
    pid = pid * 10 + (c - '0');
  }
  return pid;
}

std::string variant_prefix(std::string_view digest) { return to_hex(digest) + "."; }

std::string digest_from_object_name(std::string_view shard, std::string_view file) {
  if (file.size() < 2 || file.substr(0, 2) != shard) return {};
  auto bytes = from_hex(file);
  return bytes ? *bytes : std::string();
}

std::string store_path(std::string_view top, std::string_view name) { return fmt::format("{}/{}", top, name); }

std::string quarantine_name(std::string_view sharded_name) {
  auto slash = sharded_name.find('/');
  return std::string(slash == std::string_view::npos ? sharded_name : sharded_name.substr(slash + 1));
}

}  // namespace treesnap::layout
