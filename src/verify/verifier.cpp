#include "verify/verifier.hpp"

#include <dirent.h>

#include <atomic>
#include <mutex>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "store/layout.hpp"
#include "util/thread_pool.hpp"

namespace treesnap {
namespace {

struct Item {
  std::string digest;
  int dir_fd;
  std::string name;  // relative to dir_fd
  std::string label; // path inside the store, for the report
};

Result<std::vector<std::string>> list_dir(int parent_fd, const std::string& name) {
  TRY(auto fd, open_dir(parent_fd, name));
  DIR* dir = ::fdopendir(fd.release());
  if (!dir) return std::unexpected(os_error(errno, "opendir " + name));
  std::vector<std::string> names;
  while (auto* d = ::readdir(dir)) {
    std::string_view n(d->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(dir);
  return names;
}

}  // namespace

Result<VerifySummary> verify_store(const ObjectStore& store, Database& db, unsigned threads) {
  const std::int64_t start = now_ns();
  std::vector<Item> items;
  TRY(auto objects, db.all_objects());
  for (auto& o : objects) {
    std::string name = layout::object_name(o.digest);
    items.push_back({std::move(o.digest), store.objects_fd(), name, fmt::format("{}/{}", layout::k_objects, name)});
  }
  // Variants are named "<hex>.<metadata>"; their content must still be the object's.
  for (const auto& shard : layout::shard_names()) {
    TRY(auto names, list_dir(store.variants_fd(), shard));
    for (auto& n : names) {
      auto digest = layout::digest_from_object_name(shard, std::string_view(n).substr(0, n.find('.')));
      std::string name = shard + "/" + n;
      items.push_back({digest, store.variants_fd(), name, fmt::format("{}/{}", layout::k_variants, name)});
    }
  }

  VerifySummary summary;
  std::mutex mutex;
  std::atomic<std::uint64_t> bytes{0};
  auto bad = [&](const Item& item, std::string reason) {
    std::lock_guard lock(mutex);
    summary.bad.push_back({digest_text(store.algorithm(), item.digest), item.label, std::move(reason)});
  };
  TRY_VOID(parallel_for(items.size(), threads, 4, [&](std::size_t i) -> Result<void> {
    const Item& item = items[i];
    if (item.digest.empty()) return bad(item, "not named after a digest"), Result<void>{};
    auto fd = open_at(item.dir_fd, item.name, O_RDONLY | O_NOFOLLOW);
    if (!fd) return bad(item, fd.error().code == ErrorCode::not_found ? "missing" : fd.error().message()), Result<void>{};
    TRY(auto st, stat_fd(fd->get(), item.label));
    auto digest = store.hash_fd(fd->get(), static_cast<std::uint64_t>(st.st_size), item.label);
    if (!digest) return bad(item, digest.error().message()), Result<void>{};
    bytes += static_cast<std::uint64_t>(st.st_size);
    if (*digest != item.digest) bad(item, "content does not match its digest");
    return {};
  }));
  std::sort(summary.bad.begin(), summary.bad.end(), [](const BadObject& a, const BadObject& b) { return a.path < b.path; });
  summary.objects = items.size();
  summary.bytes = bytes.load();
  summary.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return summary;
}

}  // namespace treesnap
