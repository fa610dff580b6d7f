#include "store/object_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "store/layout.hpp"
#include "util/failpoint.hpp"

namespace treesnap {

// Durability policy (SyncPolicy):
//   batch (default): objects are written and published without fsync; before a snapshot commits
//     its database row, one syncfs() flushes the store's file system. A crash before that commit
//     can leave a published object with lost data, but no committed snapshot refers to it, and a
//     later publish of the same digest re-hashes any object it finds unrecorded (publish()). This
//     is OSTree's choice too: one flush per transaction instead of one per file, which on a
//     journaled file system costs a journal commit each (~100k commits for a Python tree).
//   per_object: fsync each object before it is linked and its directory after; slow, for stores
//     shared with tools that read objects without consulting the database.
//   none: nothing is synced; for scratch stores and benchmarks.
namespace {

// Files up to this size are read into memory whole, hashed, and written only when new: one read,
// no wasted write for duplicates. Larger files stream through a staging file.
constexpr std::uint64_t k_whole_read_limit = 1 << 20;
constexpr std::size_t k_stream_buffer = 1 << 20;

std::string random_suffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

char* thread_buffer() {
  static thread_local std::unique_ptr<char[]> buffer(new char[k_stream_buffer]);
  return buffer.get();
}

// Reads the data ranges of `src_fd` into `hasher` (holes as zeros), writing each block to
// `dst_fd` at the same offset when it is valid. The one loop behind ingest, hash and copy.
Result<void> stream_ranges(int src_fd, const std::vector<DataRange>& ranges, std::uint64_t size,
                           Hasher& hasher, int dst_fd, std::string_view what,
                           const ObjectStore::ReadObserver& observe = nullptr) {
  char* buffer = thread_buffer();
  std::uint64_t position = 0;
  for (const auto& r : ranges) {
    hasher.update_zeros(r.offset - position);
    for (std::uint64_t off = r.offset; off < r.offset + r.length;) {
      auto want = static_cast<std::size_t>(std::min<std::uint64_t>(k_stream_buffer, r.offset + r.length - off));
      TRY(auto got, pread_full(src_fd, {buffer, want}, off, what));
      if (got == 0)
        return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("{:?} is shorter than its recorded size", what)));
      hasher.update({buffer, got});
      if (observe) observe(off, {buffer, got});
      if (dst_fd >= 0) TRY_VOID(pwrite_full(dst_fd, {buffer, got}, off, what));
      off += got;
    }
    position = r.offset + r.length;
  }
  hasher.update_zeros(size - position);
  // Only a trailing hole needs a truncate: on XFS ftruncate() writes the file back first, which
  // made every copy synchronous.
  if (dst_fd >= 0 && position < size && ::ftruncate(dst_fd, static_cast<off_t>(size)) != 0)
    return std::unexpected(os_error(errno, fmt::format("truncate copy of {:?}", what)));
  return {};
}

// What the inode occupies on disk (delayed allocation included: ext4, XFS and btrfs count reserved
// blocks in st_blocks), recorded so that `du` and eviction need not stat objects.
Result<std::uint64_t> allocated_bytes(int fd) {
  TRY(auto st, stat_fd(fd, "staged object"));
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// A failed write of the staged copy of `source` (ENOSPC, EIO) names the staging file and the
// source both: "write staged object for "big/f1": No space left on device". Reads of the source
// (EIO there) keep their own message.
Error staging_error(const Error& error, std::string_view source) {
  if (error.sys_errno != ENOSPC && error.sys_errno != EDQUOT && error.sys_errno != EIO &&
      error.sys_errno != EFBIG)
    return error;
  if (error.context.starts_with("read ")) return error;
  return os_error(error.sys_errno, fmt::format("write staged object for {:?}", source));
}

Result<void> set_object_metadata(int fd, std::uint32_t mode, std::int64_t mtime_ns) {
  if (::fchmod(fd, mode & 0555) != 0) return std::unexpected(os_error(errno, "chmod staged object"));
  struct timespec times[2] = {from_ns(mtime_ns), from_ns(mtime_ns)};
  if (::futimens(fd, times) != 0) return std::unexpected(os_error(errno, "set mtime of staged object"));
  return {};
}

}  // namespace

Result<ObjectStore> ObjectStore::open(const std::string& root, DigestAlgorithm algorithm,
                                      SyncPolicy sync, bool create) {
  ObjectStore store;
  store.m_algorithm = algorithm;
  store.m_sync = sync;
  if (create) {
    TRY_VOID(mkdir_p(root, 0700));
    for (auto dir : {layout::k_objects, layout::k_variants, layout::k_staging}) {
      std::string path = join_path(root, dir);
      if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
        return std::unexpected(os_error(errno, "mkdir " + path));
    }
    for (auto dir : {layout::k_objects, layout::k_variants}) {
      for (const auto& shard : layout::shard_names()) {
        std::string path = join_path(join_path(root, dir), shard);
        if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
          return std::unexpected(os_error(errno, "mkdir " + path));
      }
    }
  }
  TRY(store.m_root, open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY));
  TRY(store.m_objects, open_dir(store.m_root.get(), std::string(layout::k_objects)));
  TRY(store.m_variants, open_dir(store.m_root.get(), std::string(layout::k_variants)));
  TRY(store.m_staging, open_dir(store.m_root.get(), std::string(layout::k_staging)));
  // Made on first open by a version that knows it, so older stores gain it too.
  const std::string quarantine(layout::k_quarantine);
  if (::mkdirat(store.m_root.get(), quarantine.c_str(), 0700) != 0 && errno != EEXIST)
    return std::unexpected(os_error(errno, "mkdir " + join_path(root, quarantine)));
  TRY(store.m_quarantine, open_dir(store.m_root.get(), quarantine));
  long link_max = ::fpathconf(store.m_objects.get(), _PC_LINK_MAX);
  store.m_link_max = link_max > 0 ? static_cast<std::uint64_t>(link_max) : 65000;  // unknown: assume ext4's
  return store;
}

Result<UniqueFd> ObjectStore::stage() const {
  // O_TMPFILE: an unnamed inode that vanishes if we crash, so staging never leaves litter.
  int fd = ::openat(m_staging.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return std::unexpected(os_error(errno, "create staging file"));
  // File systems without O_TMPFILE: a named file, unlinked at once; publish links it through
  // /proc/self/fd the same way.
  std::string name = layout::staging_name("stage", ::getpid(), random_suffix());
  TRY(auto named, open_at(m_staging.get(), name, O_RDWR | O_CREAT | O_EXCL, 0600));
  ::unlinkat(m_staging.get(), name.c_str(), 0);
  return named;
}

Result<FileStamp> ObjectStore::publish(UniqueFd staged, int dir_fd, const std::string& name,
                                       std::string_view digest) const {
  if (m_sync == SyncPolicy::per_object) {
    if (int err = failpoint::error("store.sync")) return std::unexpected(os_error(err, "fsync staged object"));
    if (::fsync(staged.get()) != 0) return std::unexpected(os_error(errno, "fsync staged object"));
  }
  if (int err = failpoint::error("object.link")) return std::unexpected(os_error(err, "publish " + name));
  std::string proc = fmt::format("/proc/self/fd/{}", staged.get());
  if (::linkat(AT_FDCWD, proc.c_str(), dir_fd, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    if (errno != EEXIST) return std::unexpected(os_error(errno, "publish " + name));
    // Someone published this name first. If it holds the right bytes, that is success; if it is
    // a leftover of a crash that never synced, replace it atomically with ours.
    auto existing = open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW);
    if (existing) {
      TRY(auto st, stat_fd(existing->get(), name));
      auto hash = hash_fd(existing->get(), static_cast<std::uint64_t>(st.st_size), name);
      if (hash && *hash == digest) {
        TRY(auto after, stat_fd(existing->get(), name));  // the hash read it: stat it as it is now
        return stamp_of(after);
      }
    }
    std::string temp = layout::staging_name("replace", ::getpid(), random_suffix());
    if (::linkat(AT_FDCWD, proc.c_str(), m_staging.get(), temp.c_str(), AT_SYMLINK_FOLLOW) != 0)
      return std::unexpected(os_error(errno, "stage replacement of " + name));
    if (::renameat(m_staging.get(), temp.c_str(), dir_fd, name.c_str()) != 0) {
      int err = errno;
      ::unlinkat(m_staging.get(), temp.c_str(), 0);
      return std::unexpected(os_error(err, "replace damaged " + name));
    }
  }
  if (int err = failpoint::error("object.after_link")) return std::unexpected(os_error(err, "publish " + name));
  if (m_sync == SyncPolicy::per_object) {
    auto shard = name.substr(0, 2);
    TRY(auto shard_fd, open_dir(dir_fd, shard));
    if (::fsync(shard_fd.get()) != 0) return std::unexpected(os_error(errno, "fsync " + shard));
  }
  // After the link: linking changed the inode's ctime.
  TRY(auto st, stat_fd(staged.get(), name));
  return stamp_of(st);
}

Result<std::string> ObjectStore::hash_fd(int fd, std::uint64_t size, std::string_view what,
                                         const ReadObserver& observe) const {
  Hasher hasher(m_algorithm);
  TRY(auto ranges, data_ranges(fd, size, what));
  TRY_VOID(stream_ranges(fd, ranges, size, hasher, -1, what, observe));
  return hasher.finish();
}

Result<ObjectStore::Ingested> ObjectStore::ingest(int src_fd, std::uint64_t size, bool maybe_sparse,
                                                  std::uint32_t mode, std::int64_t mtime_ns,
                                                  bool try_reflink, std::string_view what,
                                                  const ClaimFn& claim, const ReadObserver& observe) const {
  Ingested result;
  bool sparse = false;
  if (maybe_sparse && size > 0) {
    TRY(result.ranges, data_ranges(src_fd, size, what));
    if (result.ranges.size() == 1 && result.ranges[0].offset == 0 && result.ranges[0].length == size) {
      result.ranges.clear();  // fewer blocks than bytes (e.g. inline data), but no hole
    } else {
      sparse = true;
      if (result.ranges.empty()) result.ranges.push_back({0, 0});  // all hole: "no data"
    }
  }

  if (size <= k_whole_read_limit && !sparse) {
    char* buffer = thread_buffer();
    TRY(auto got, read_full(src_fd, {buffer, static_cast<std::size_t>(size)}, what));
    if (got != size) return std::unexpected(make_error(ErrorCode::io, fmt::format("{}: changed while being read", what)));
    std::string_view data(buffer, size);
    result.digest = hash_bytes(m_algorithm, data);
    if (observe) observe(0, data);
    if (!claim(result.digest)) return result;
    TRY(auto staged, stage());
    if (int err = failpoint::error("object.write"))
      return std::unexpected(os_error(err, fmt::format("write staged object for {:?}", what)));
    if (auto written = write_full(staged.get(), data, "staged object"); !written)
      return std::unexpected(staging_error(written.error(), what));
    TRY_VOID(set_object_metadata(staged.get(), mode, mtime_ns));
    TRY(result.disk_bytes, allocated_bytes(staged.get()));
    TRY(result.stamp, publish(std::move(staged), m_objects.get(), layout::object_name(result.digest), result.digest));
    result.published = true;
    return result;
  }

  // Large or sparse: stream into a staging file, cloning when the file systems allow.
  TRY(auto staged, stage());
  if (try_reflink && reflink_fd(src_fd, staged.get()) == 0) {
    TRY(result.digest, hash_fd(staged.get(), size, what, observe));
  } else {
    if (int err = failpoint::error("object.write"))
      return std::unexpected(os_error(err, fmt::format("write staged object for {:?}", what)));
    std::vector<DataRange> ranges = result.ranges;
    if (!sparse) ranges.push_back({0, size});
    Hasher hasher(m_algorithm);
    auto streamed = stream_ranges(src_fd, ranges, size, hasher, staged.get(), what, observe);
    if (!streamed) {
      if (streamed.error().code == ErrorCode::corrupt)  // the source shrank under us
        return std::unexpected(make_error(ErrorCode::io, fmt::format("{:?} changed while being read", what)));
      return std::unexpected(staging_error(streamed.error(), what));
    }
    result.digest = hasher.finish();
  }
  if (!claim(result.digest)) return result;
  TRY_VOID(set_object_metadata(staged.get(), mode, mtime_ns));
  TRY(result.disk_bytes, allocated_bytes(staged.get()));
  TRY(result.stamp, publish(std::move(staged), m_objects.get(), layout::object_name(result.digest), result.digest));
  result.published = true;
  return result;
}

Result<std::string> ObjectStore::put_bytes(std::string_view data) const {
  std::string digest = hash_bytes(m_algorithm, data);
  std::string name = layout::object_name(digest);
  if (::faccessat(m_objects.get(), name.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
    auto existing = read_verified(digest);
    if (existing) return digest;
  }
  TRY(auto staged, stage());
  TRY_VOID(write_full(staged.get(), data, "staged manifest"));
  TRY_VOID(set_object_metadata(staged.get(), 0444, now_ns()));
  TRY(auto stamp, publish(std::move(staged), m_objects.get(), name, digest));
  (void)stamp;
  return digest;
}

Result<ObjectStore::Stored> ObjectStore::put_stream(const std::function<Result<void>(const ByteWriter&)>& produce,
                                                    const DigestFn& before_publish) const {
  TRY(auto staged, stage());
  Hasher hasher(m_algorithm);
  Stored stored;
  TRY_VOID(produce([&](std::string_view bytes) -> Result<void> {
    hasher.update(bytes);
    stored.size += bytes.size();
    if (int err = failpoint::error("object.write")) return std::unexpected(os_error(err, "write staged object"));
    return write_full(staged.get(), bytes, "staged object");
  }));
  stored.digest = hasher.finish();
  if (before_publish) TRY_VOID(before_publish(stored.digest));
  TRY_VOID(set_object_metadata(staged.get(), 0444, now_ns()));
  // An object already published under this name is re-hashed and kept when it matches.
  TRY(stored.stamp, publish(std::move(staged), m_objects.get(), layout::object_name(stored.digest), stored.digest));
  return stored;
}

namespace {

// Writes a stream at increasing offsets, skipping aligned all-zero blocks (holes), coalescing
// the rest into one pwrite per run; the caller sets the final size with ftruncate.
class SparseWriter {
 public:
  explicit SparseWriter(int fd) : m_fd(fd) {}
  Result<void> write(std::string_view bytes) {
    while (!bytes.empty()) {
      std::size_t take = std::min(bytes.size(), k_block - m_block.size());
      m_block.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (m_block.size() == k_block) TRY_VOID(flush_block());
    }
    return {};
  }
  Result<std::uint64_t> finish() {
    TRY_VOID(flush_block());
    TRY_VOID(flush_run());
    if (::ftruncate(m_fd, static_cast<off_t>(m_offset)) != 0) return std::unexpected(os_error(errno, "truncate staged object"));
    return m_offset;
  }

 private:
  static constexpr std::size_t k_block = 4096;
  static constexpr std::size_t k_max_run = 1 << 20;
  Result<void> flush_block() {
    if (m_block.empty()) return {};
    bool zero = m_block.size() == k_block && m_block.find_first_not_of('\0') == std::string::npos;
    if (zero) {
      TRY_VOID(flush_run());
    } else {
      if (m_run.empty()) m_run_offset = m_offset;
      m_run += m_block;
      if (m_run.size() >= k_max_run) TRY_VOID(flush_run());
    }
    m_offset += m_block.size();
    m_block.clear();
    return {};
  }
  Result<void> flush_run() {
    if (m_run.empty()) return {};
    TRY_VOID(pwrite_full(m_fd, m_run, m_run_offset, "staged object"));
    m_run.clear();
    return {};
  }
  int m_fd;
  std::string m_block, m_run;
  std::uint64_t m_offset = 0, m_run_offset = 0;
};

}  // namespace

Result<ObjectStore::Stored> ObjectStore::put_expected(std::string_view expected, std::uint64_t expected_size,
                                                      std::uint32_t mode, std::int64_t mtime_ns,
                                                      const std::function<Result<void>(const ByteWriter&)>& produce) const {
  return put_fetched({}, expected, expected_size, mode, mtime_ns, produce);
}

Result<ObjectStore::Stored> ObjectStore::put_fetched(std::string_view sha256, std::string_view expected,
                                                     std::uint64_t expected_size, std::uint32_t mode, std::int64_t mtime_ns,
                                                     const std::function<Result<void>(const ByteWriter&)>& produce) const {
  // The name in messages: the digest the caller knows.
  const std::string name = !expected.empty() ? digest_text(m_algorithm, expected) : digest_text(DigestAlgorithm::sha256, sha256);
  TRY(auto staged, stage());
  Hasher hasher(m_algorithm);
  // A second hash only when the store's is not sha256 (xxh3-128 costs ~5% of sha256 beside it).
  std::optional<Hasher> sha;
  if (!sha256.empty() && m_algorithm != DigestAlgorithm::sha256) sha.emplace(DigestAlgorithm::sha256);
  SparseWriter writer(staged.get());
  Stored stored;
  TRY_VOID(produce([&](std::string_view bytes) -> Result<void> {
    hasher.update(bytes);
    if (sha) sha->update(bytes);
    stored.size += bytes.size();
    if (stored.size > expected_size)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("object {} is longer than its {} bytes", name, expected_size)));
    if (int err = failpoint::error("object.write")) return std::unexpected(os_error(err, "write staged object"));
    return writer.write(bytes);
  }));
  TRY_VOID(writer.finish());
  stored.digest = hasher.finish();
  const std::string got_sha256 = sha ? sha->finish() : m_algorithm == DigestAlgorithm::sha256 ? stored.digest : std::string();
  if (stored.size != expected_size || (!sha256.empty() && got_sha256 != sha256) || (!expected.empty() && stored.digest != expected))
    return std::unexpected(make_error(ErrorCode::corrupt,
                                      fmt::format("fetched object {} ({} bytes) has digest {} ({} bytes)", name, expected_size,
                                                  !sha256.empty() && got_sha256 != sha256
                                                      ? digest_text(DigestAlgorithm::sha256, got_sha256)
                                                      : digest_text(m_algorithm, stored.digest),
                                                  stored.size)));
  TRY_VOID(set_object_metadata(staged.get(), mode, mtime_ns));
  TRY_VOID(publish(std::move(staged), m_objects.get(), layout::object_name(stored.digest), stored.digest));
  return stored;
}

Result<bool> ObjectStore::has_intact(std::string_view digest) const {
  auto fd = open_at(m_objects.get(), layout::object_name(digest), O_RDONLY | O_NOFOLLOW);
  if (!fd) return fd.error().code == ErrorCode::not_found ? Result<bool>(false) : std::unexpected(fd.error());
  TRY(auto st, stat_fd(fd->get(), "object"));
  auto hash = hash_fd(fd->get(), static_cast<std::uint64_t>(st.st_size), "object");
  return hash && *hash == digest;
}

Result<UniqueFd> ObjectStore::open_object(std::string_view digest) const {
  auto fd = open_at(m_objects.get(), layout::object_name(digest), O_RDONLY | O_NOFOLLOW);
  if (!fd && fd.error().code == ErrorCode::not_found)
    return std::unexpected(make_error(ErrorCode::corrupt,
                                      fmt::format("object {} is missing from the store", digest_text(m_algorithm, digest))));
  return fd;
}

Result<std::string> ObjectStore::read_verified(std::string_view digest) const {
  TRY(auto fd, open_object(digest));
  TRY(auto st, stat_fd(fd.get(), "object"));
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  TRY(auto got, read_full(fd.get(), data, "object"));
  data.resize(got);
  if (hash_bytes(m_algorithm, data) != digest)
    return std::unexpected(make_error(ErrorCode::corrupt,
                                      fmt::format("object {} does not match its digest", digest_text(m_algorithm, digest))));
  return data;
}

Result<ObjectStore::LinkSource> ObjectStore::link_source(const Entry& entry, bool exact_mtime) const {
  // Taking the last link would leave a restored tree whose in-tree links or a user's `cp -al`
  // of it fail with EMLINK; one spare is kept.
  auto has_room = [&](const struct stat& st) { return static_cast<std::uint64_t>(st.st_nlink) + 2 <= m_link_max; };
  std::string object = layout::object_name(entry.digest);
  // The object itself serves when its metadata already equals the entry's (the common case:
  // a read-only file snapshotted by the store's owner), so linking costs no extra inode.
  if (entry.xattrs().empty()) {
    auto st = stat_at(m_objects.get(), object);
    if (st && (st->st_mode & 07777) == entry.mode && st->st_uid == entry.uid && st->st_gid == entry.gid &&
        (!exact_mtime || to_ns(st->st_mtim) == entry.mtime_ns) && has_room(*st))
      return LinkSource{m_objects.get(), object, layout::store_path(layout::k_objects, object), stamp_of(*st)};
  }
  constexpr unsigned k_max_generations = 1 << 16;  // 65,536 full inodes: a bug, not a workload
  for (unsigned generation = 0; generation < k_max_generations; ++generation) {
    std::string name = layout::variant_name(entry.digest, entry, exact_mtime, generation);
    auto st = stat_at(m_variants.get(), name);
    if (st) {
      if (has_room(*st)) return LinkSource{m_variants.get(), name, layout::store_path(layout::k_variants, name), stamp_of(*st)};
      continue;
    }
    if (st.error().code != ErrorCode::not_found) return std::unexpected(st.error());
    TRY_VOID(create_variant(entry, name));
    // A new variant has no fingerprint yet (it was cloned, not hashed): the next verify hashes
    // it once and records one.
    return LinkSource{m_variants.get(), name, layout::store_path(layout::k_variants, name), FileStamp{}};
  }
  return std::unexpected(make_error(ErrorCode::too_many_links, fmt::format("every link variant of {:?} is full", entry.path)));
}

Result<void> ObjectStore::create_variant(const Entry& entry, const std::string& name) const {
  TRY(auto source, open_object(entry.digest));
  TRY(auto staged, stage());
  if (reflink_fd(source.get(), staged.get()) != 0)
    TRY_VOID(copy_ranges(source.get(), staged.get(), entry.size, entry.data_ranges(), CopyMethod::kernel));
  if ((entry.uid != ::geteuid() || entry.gid != ::getegid()) &&
      ::fchown(staged.get(), entry.uid, entry.gid) != 0)
    return std::unexpected(os_error(errno, "chown link variant " + name));
  if (::fchmod(staged.get(), entry.mode) != 0)
    return std::unexpected(os_error(errno, "chmod link variant " + name));
  TRY_VOID(write_xattrs_fd(staged.get(), entry.xattrs(), name));
  struct timespec times[2] = {from_ns(entry.mtime_ns), from_ns(entry.mtime_ns)};
  if (::futimens(staged.get(), times) != 0) return std::unexpected(os_error(errno, "set mtime " + name));
  TRY(auto stamp, publish(std::move(staged), m_variants.get(), name, entry.digest));
  (void)stamp;
  return {};
}

Result<void> ObjectStore::copy_verified(std::string_view digest, std::uint64_t size,
                                        const std::vector<DataRange>& ranges, int dst_fd,
                                        std::string_view what) const {
  TRY(auto src, open_object(digest));
  // The manifest already says where the data is, so no SEEK_DATA/SEEK_HOLE probing of the object;
  // a short object ends the read early and a wrong one fails the digest.
  const std::vector<DataRange> whole{{0, size}};
  Hasher hasher(m_algorithm);
  auto streamed = stream_ranges(src.get(), ranges.empty() ? whole : ranges, size, hasher, dst_fd, what);
  if (!streamed && streamed.error().code != ErrorCode::corrupt) return std::unexpected(streamed.error());
  if (!streamed || hasher.finish() != digest)
    return std::unexpected(make_error(ErrorCode::corrupt,
                                      fmt::format("object {} (for {:?}) does not match its digest; run treesnap verify",
                                                  digest_text(m_algorithm, digest), what)));
  return {};
}

Result<FileStamp> ObjectStore::publish_copy(std::string_view digest, int src_fd, std::uint64_t size,
                                           const std::vector<DataRange>& ranges, std::uint32_t mode,
                                           std::int64_t mtime_ns) const {
  TRY(auto staged, stage());
  const std::vector<DataRange> whole{{0, size}};
  Hasher hasher(m_algorithm);
  auto streamed = stream_ranges(src_fd, ranges.empty() ? whole : ranges, size, hasher, staged.get(), "repair source");
  if (!streamed && streamed.error().code != ErrorCode::corrupt) return std::unexpected(streamed.error());
  if (!streamed || hasher.finish() != digest)
    return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("copy of {} does not match its digest",
                                                                      digest_text(m_algorithm, digest))));
  TRY_VOID(set_object_metadata(staged.get(), mode, mtime_ns));
  const std::string d(digest);
  return publish(std::move(staged), m_objects.get(), layout::object_name(d), d);
}

Result<void> ObjectStore::sync() const {
  if (m_sync == SyncPolicy::none) return {};
  if (int err = failpoint::error("store.sync")) return std::unexpected(os_error(err, "syncfs store"));
  if (m_sync == SyncPolicy::batch && ::syncfs(m_root.get()) != 0)
    return std::unexpected(os_error(errno, "syncfs store"));
  return {};
}

}  // namespace treesnap
