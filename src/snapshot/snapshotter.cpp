#include "snapshot/snapshotter.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "core/manifest.hpp"
#include "core/relocation.hpp"
#include "snapshot/walker.hpp"
#include "store/layout.hpp"
#include "util/failpoint.hpp"
#include "util/thread_pool.hpp"
#include "util/trace.hpp"

namespace treesnap {
namespace {

// A file whose ctime is this close to the start of the snapshot may still change within the same
// clock tick without its stat changing (git's "racy clean" problem), so it is not cached.
constexpr std::int64_t k_racy_window_ns = 100'000'000;

// Digests are uniformly distributed, so their first bytes are already a good hash.
struct DigestHash {
  std::size_t operator()(const Digest& digest) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, digest.view().data(), std::min(sizeof h, digest.size()));
    return h;
  }
};

// Files handed to a worker at a time: siblings, so a thread stays in one directory.
constexpr std::size_t k_hash_batch = 16;

}  // namespace

Result<std::pair<std::string, std::string>> parse_snapshot_name(const std::string& text) {
  auto colon = text.rfind(':');
  std::string name = colon == std::string::npos ? text : text.substr(0, colon);
  std::string tag = colon == std::string::npos ? "latest" : text.substr(colon + 1);
  auto valid = [](const std::string& s) {
    return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '/';
    });
  };
  if (!valid(name) || !valid(tag) || tag.find('/') != std::string::npos)
    return std::unexpected(make_error(ErrorCode::invalid,
                                      fmt::format("bad snapshot name {:?}: use name[:tag] with letters, digits, '.', '_', '-' ('/' in the name)", text)));
  return std::pair{name, tag};
}

std::string encode_ranges(const std::vector<DataRange>& ranges) {
  std::string out(ranges.size() * 16, '\0');
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    std::memcpy(out.data() + 16 * i, &ranges[i].offset, 8);
    std::memcpy(out.data() + 16 * i + 8, &ranges[i].length, 8);
  }
  return out;
}

std::vector<DataRange> decode_ranges(std::string_view blob) {
  std::vector<DataRange> ranges(blob.size() / 16);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    std::memcpy(&ranges[i].offset, blob.data() + 16 * i, 8);
    std::memcpy(&ranges[i].length, blob.data() + 16 * i + 8, 8);
  }
  return ranges;
}

Result<std::string> relocation_root_of(const std::filesystem::path& source) {
  std::error_code ec;
  std::string root = std::filesystem::absolute(source, ec).lexically_normal().string();
  if (ec) return std::unexpected(os_error(ec.value(), "resolve " + source.string()));
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root == "/")
    return std::unexpected(make_error(ErrorCode::invalid, "--relocatable needs a source other than /"));
  return root;
}

Result<SnapshotSummary> take_snapshot(const ObjectStore& objects, Database& db, Lease& lease,
                                      const std::filesystem::path& source,
                                      const SnapshotOptions& options, unsigned threads) {
  const std::int64_t start = now_ns();
  PhaseTimer timer("snapshot");
  TRY(auto names, parse_snapshot_name(options.name));
  TRY(auto root_fd, open_at(AT_FDCWD, source.string(), O_RDONLY | O_DIRECTORY));
  TRY(auto existing, db.find_snapshot(names.first, names.second));
  if (existing && !options.replace)
    return std::unexpected(make_error(ErrorCode::exists,
                                      fmt::format("snapshot {}:{} already exists (use --force to replace it)", names.first, names.second)));

  std::string relocation_root;
  if (options.relocatable) {
    TRY(relocation_root, relocation_root_of(source));
  }

  TRY(auto walk, walk_tree(root_fd.get(), WalkOptions{options.cross_devices}));
  auto& entries = walk.entries;
  timer.phase("walk");

  // Files the stat cache vouches for need no reading; the rest go to the workers. One read
  // transaction covers the lookups here and the workers' has_object calls.
  TRY_VOID(db.begin_read());
  std::vector<FileJob*> to_hash;
  to_hash.reserve(walk.files.size());
  for (auto& job : walk.files) {
    Entry& e = entries[job.entry_index];
    StatRecord key{job.dev, job.ino, e.size, e.mtime_ns, job.ctime_ns, {}, {}};
    // A relocatable snapshot reads every file: the stat cache knows digests, not where the path is.
    std::optional<StatRecord> cached;
    if (!options.relocatable) {
      TRY(cached, db.lookup_stat(key));
    }
    // A cached digest of the wrong size (a damaged row) is a miss: the file is hashed again.
    if (cached && cached->digest.size() == digest_size(objects.algorithm())) {
      e.digest = cached->digest;
      e.set_data_ranges(decode_ranges(cached->ranges));
    } else {
      to_hash.push_back(&job);
    }
  }

  const std::size_t hashed_files = to_hash.size();
  timer.phase("stat-cache");
  struct stat store_st {};
  ::fstat(objects.root_fd(), &store_st);
  const bool same_fs = store_st.st_dev == walk.root_dev;

  std::mutex mutex;  // guards db, claimed, cacheable
  // New content claimed by a worker in this run. Digests inline (~64 bytes a node instead of ~120
  // with std::string): on a first snapshot of a million files this set holds nearly all of them.
  std::unordered_set<Digest, DigestHash> claimed;
  std::vector<const FileJob*> cacheable;  // hashed files whose stat may go into the cache
  cacheable.reserve(to_hash.size());
  std::atomic<std::uint64_t> new_objects{0}, new_bytes{0};
  std::atomic<bool> reflink_works{same_fs};
  std::vector<Relocation> relocations;  // guarded by mutex

  // A live object is protected by the lease's barrier; an orphan must be held first (its
  // orphaning predates the lease), and one being collected is stored anew. On a database error
  // the file is simply stored again: publishing an existing object is safe.
  auto claim = [&](const std::string& digest) {
    std::lock_guard lock(mutex);
    if (claimed.contains(Digest(digest))) return false;
    auto state = db.object_state(digest);
    if (state && *state == ObjectState::live) return false;
    if (state && *state == ObjectState::quarantined) {
      (void)lease.hold(digest);  // an orphan in quarantine must survive until this commit
      claimed.insert(Digest(digest));
      return true;
    }
    if (state && *state != ObjectState::absent) {
      auto held = lease.hold(digest);
      if (held && *held) return false;
    }
    claimed.insert(Digest(digest));
    return true;
  };

  TRY_VOID(parallel_for(to_hash.size(), threads, k_hash_batch, [&](std::size_t i) -> Result<void> {
    FileJob& job = *to_hash[i];
    Entry& e = entries[job.entry_index];
    auto fd = open_beneath(root_fd.get(), e.path, O_RDONLY | O_NOATIME);
    if (!fd && fd.error().sys_errno == EPERM)  // O_NOATIME needs ownership
      fd = open_beneath(root_fd.get(), e.path, O_RDONLY);
    if (!fd) return std::unexpected(fd.error());
    // --relocatable: the scanner sees the bytes as ingest reads them for hashing (one read).
    std::optional<PrefixScanner> scanner;
    ObjectStore::ReadObserver observe;
    if (options.relocatable && !relocation_exempt(e.path)) {
      scanner.emplace(relocation_root);
      observe = [&](std::uint64_t offset, std::string_view bytes) { scanner->feed(offset, bytes); };
    }
    TRY(auto ingested, objects.ingest(fd->get(), e.size, job.maybe_sparse, e.mode, e.mtime_ns,
                                      reflink_works.load(std::memory_order_relaxed), e.path, claim, observe));
    if (scanner) {
      scanner->finish();
      if (!scanner->offsets().empty()) {
        std::lock_guard lock(mutex);
        relocations.push_back({job.entry_index, scanner->kind(), scanner->offsets()});
      }
    }
    TRY(auto after, stat_fd(fd->get(), e.path));
    if (static_cast<std::uint64_t>(after.st_size) != e.size || to_ns(after.st_mtim) != e.mtime_ns ||
        to_ns(after.st_ctim) != job.ctime_ns)
      return std::unexpected(make_error(ErrorCode::io, fmt::format("{:?} changed while it was being read; snapshot it again", e.path)));
    e.digest = std::move(ingested.digest);
    e.set_data_ranges(std::move(ingested.ranges));
    if (ingested.published) {
      new_objects += 1;
      new_bytes += e.size;
      job.disk_bytes = ingested.disk_bytes;
      job.stamp = ingested.stamp;
    }
    if (job.ctime_ns < start - k_racy_window_ns) {
      std::lock_guard lock(mutex);
      cacheable.push_back(&job);
    }
    return {};
  }));

  TRY_VOID(db.end_read());
  decltype(claimed)().swap(claimed);  // only the workers needed it
  decltype(to_hash)().swap(to_hash);
  timer.phase("hash-and-store");
  if (int err = failpoint::error("snapshot.after_objects")) return std::unexpected(os_error(err, "snapshot objects"));

  Manifest manifest{objects.algorithm(), std::move(entries), relocation_root, std::move(relocations)};
  std::sort(manifest.relocations.begin(), manifest.relocations.end(),
            [](const Relocation& a, const Relocation& b) { return a.entry_index < b.entry_index; });
  // The manifest of a tree snapshotted before may exist as an orphan that no lease protects (its
  // snapshot was removed before this one started): held first, so that a gc is not unlinking it
  // while publish finds it present, and waited for when a gc is. Without this, the commit below
  // recorded a manifest whose file the gc had just removed.
  auto hold_manifest = [&](const std::string& digest) -> Result<void> {
    TRY(auto held, lease.hold(digest));
    (void)held;  // held (protected now) or absent: either way publishing is safe
    return {};
  };
  TRY(auto stored_manifest, objects.put_stream([&](const ObjectStore::ByteWriter& write) {
    return encode_manifest(manifest, write);
  }, hold_manifest));
  const std::string& manifest_digest = stored_manifest.digest;
  timer.phase("manifest");
  if (int err = failpoint::error("snapshot.after_manifest")) return std::unexpected(os_error(err, "publish manifest"));
  // Every object must be durable before the row that makes the snapshot visible.
  TRY_VOID(objects.sync());
  timer.phase("sync");
  if (int err = failpoint::error("snapshot.after_sync")) return std::unexpected(os_error(err, "syncfs store"));

  SnapshotSummary summary;
  summary.entries = manifest.entries.size();
  for (const auto& e : manifest.entries) {
    if (e.type != EntryType::file) continue;
    summary.files += 1;
    summary.bytes += e.size;
  }

  SnapshotRecord record;
  record.name = names.first;
  record.tag = names.second;
  record.manifest = manifest_digest;
  record.created_ns = record.last_used_ns = now_ns();
  record.entries = summary.entries;
  record.files = summary.files;
  record.bytes = summary.bytes;
  record.new_objects = new_objects.load();
  record.new_bytes = new_bytes.load();
  {
    std::error_code ec;
    record.source = std::filesystem::absolute(source, ec).lexically_normal().string();
    if (record.source.size() > 1 && record.source.back() == '/') record.source.pop_back();
  }
  // The referenced objects are every non-empty file (walk.files; a digest shared by several is
  // one row, by ON CONFLICT) and the manifest, made row by row rather than gathered in a list.
  const std::size_t object_count = walk.files.size() + 1;
  auto object_row = [&](std::size_t i) {
    if (i == walk.files.size())
      return ObjectRecord{manifest_digest, stored_manifest.size, 0, stored_manifest.stamp,
                          layout::store_path(layout::k_objects, layout::object_name(manifest_digest))};
    const FileJob& job = walk.files[i];
    const Entry& e = manifest.entries[job.entry_index];
    ObjectRecord row{e.digest.str(), e.size, job.disk_bytes, job.stamp, {}};
    if (job.stamp) row.fingerprint_name = layout::store_path(layout::k_objects, layout::object_name(row.digest));
    return row;
  };
  auto stat_row = [&](std::size_t i) {
    const FileJob& job = *cacheable[i];
    const Entry& e = manifest.entries[job.entry_index];
    return StatRecord{job.dev, job.ino, e.size, e.mtime_ns, job.ctime_ns, e.digest.str(), encode_ranges(e.data_ranges())};
  };
  // An unchanged tree gives the same manifest: the snapshot is already recorded with all its
  // references, so only its use time and the newly hashed files' stat rows are written. Rewriting
  // its references would cost a delete and an insert (and their refcount triggers) per file.
  if (int err = failpoint::error("snapshot.commit")) return std::unexpected(os_error(err, "commit snapshot"));
  bool refreshed = false;
  if (existing && existing->manifest == manifest_digest) {
    TRY(refreshed, db.refresh_snapshot(*existing, record.last_used_ns, cacheable.size(), stat_row));
  }
  if (!refreshed)
    TRY_VOID(db.commit_snapshot(record, object_count, object_row, cacheable.size(), stat_row, options.replace));
  timer.phase("commit");
  if (int err = failpoint::error("snapshot.after_commit")) return std::unexpected(os_error(err, "commit snapshot"));

  summary.name = names.first + ":" + names.second;
  summary.id = to_hex(manifest_digest);
  summary.manifest_digest = digest_text(objects.algorithm(), manifest_digest);
  summary.new_objects = record.new_objects;
  summary.new_bytes = record.new_bytes;
  summary.hashed_files = hashed_files;
  summary.relocation_root = manifest.relocation_root;
  summary.relocated_files = manifest.relocations.size();
  summary.created_ns = summary.last_used_ns = record.created_ns;
  summary.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return summary;
}

}  // namespace treesnap
