#include "restore/ladder.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "util/failpoint.hpp"

namespace treesnap {

Result<RungOutcome> rung_hardlink(const ObjectStore& store, const Entry& entry, int dir_fd,
                                  const std::string& name, bool exact_mtime, PairCapabilities& caps) {
  if (int err = caps.link_errno.load(std::memory_order_relaxed)) return RungOutcome::fall_back(err);
  int err = 0;
  // link_source keeps a spare link on every inode it hands out, so EMLINK means another process
  // took it between our stat and link: asking again moves on to the next generation.
  for (int attempt = 0; attempt < 3; ++attempt) {
    TRY(auto source, store.link_source(entry, exact_mtime));
    if (::linkat(source.dir_fd, source.name.c_str(), dir_fd, name.c_str(), 0) == 0)
      return RungOutcome::linked(std::move(source.path), source.before);
    err = errno;
    if (err != EMLINK) break;
  }
  if (err == EXDEV) caps.link_errno = err;
  if (err == EXDEV || err == EMLINK || err == EPERM) return RungOutcome::fall_back(err);
  return std::unexpected(os_error(err, fmt::format("link {:?}", entry.path)));
}

Result<RungOutcome> rung_reflink(const ObjectStore& store, const Entry& entry, int dst_fd,
                                 PairCapabilities& caps) {
  if (int err = caps.reflink_errno.load(std::memory_order_relaxed)) return RungOutcome::fall_back(err);
  TRY(auto source, store.open_object(entry.digest));
  // A clone cannot be verified without reading it; the size check catches the most common damage
  // (a truncated object) at the cost of one fstat.
  TRY(auto st, stat_fd(source.get(), entry.path));
  if (static_cast<std::uint64_t>(st.st_size) != entry.size)
    return std::unexpected(make_error(ErrorCode::corrupt,
                                      fmt::format("object for {:?} has size {}, expected {}; run treesnap verify",
                                                  entry.path, st.st_size, entry.size)));
  int err = reflink_fd(source.get(), dst_fd);
  if (err == 0) return RungOutcome::placed();
  if (err == EOPNOTSUPP || err == ENOTTY || err == EXDEV) caps.reflink_errno = err;
  if (err == EOPNOTSUPP || err == EINVAL || err == ENOTTY || err == EXDEV) return RungOutcome::fall_back(err);
  return std::unexpected(os_error(err, fmt::format("reflink {:?}", entry.path)));
}

// bench/strategy_cost.sh here (docs/BENCHMARKS.md, "Strategy costs"), µs per file with warm caches:
// on XFS a FICLONE costs ~20-30 µs whatever the size, while the copy rung (read, hash, write)
// of a file up to 4 KiB costs 15-20 µs at 256 B and 20-37 µs at 4 KiB, losing from 8 KiB on
// (23 vs 32 µs) and by 4x at 64 KiB. So on XFS auto copies writable files up to 4 KiB: ~5 µs
// (20-30%) less per file, at the price of one unshared block each. On btrfs the two were within
// noise of each other up to 4 KiB in three runs, and reflink won above, so reflink stays; ext4
// cannot reflink at all.
constexpr std::uint64_t k_xfs_copy_max = 4096;

bool auto_prefers_copy(std::string_view target_fs, std::uint64_t size) noexcept {
  return target_fs == "xfs" && size <= k_xfs_copy_max;
}

Result<void> rung_copy(const ObjectStore& store, const Entry& entry, int dst_fd) {
  if (int err = failpoint::error("restore.write")) return std::unexpected(os_error(err, fmt::format("write {:?}", entry.path)));
  return store.copy_verified(entry.digest, entry.size, entry.data_ranges(), dst_fd, entry.path);
}

Result<void> apply_metadata_fd(int fd, const Entry& entry, bool is_root, const FreshFile* fresh) {
  const bool chown_needed = is_root && (!fresh || fresh->uid != entry.uid || fresh->gid != entry.gid);
  if (chown_needed && ::fchown(fd, entry.uid, entry.gid) != 0)
    return std::unexpected(os_error(errno, fmt::format("chown {:?}", entry.path)));
  // After a chown the mode is always set again: chown clears the set-id bits.
  const bool chmod_needed = chown_needed || !fresh || fresh->mode != entry.mode;
  if (chmod_needed && ::fchmod(fd, entry.mode) != 0)
    return std::unexpected(os_error(errno, fmt::format("chmod {:?}", entry.path)));
  TRY_VOID(write_xattrs_fd(fd, entry.xattrs(), entry.path));
  struct timespec times[2] = {from_ns(entry.mtime_ns), from_ns(entry.mtime_ns)};
  if (::futimens(fd, times) != 0) return std::unexpected(os_error(errno, fmt::format("set mtime {:?}", entry.path)));
  return {};
}

Result<void> apply_metadata_at(int dir_fd, const std::string& name, const Entry& entry, bool is_root) {
  const bool is_symlink = entry.type == EntryType::symlink;
  if (is_root && ::fchownat(dir_fd, name.c_str(), entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) != 0)
    return std::unexpected(os_error(errno, fmt::format("chown {:?}", entry.path)));
  // Symlink modes are meaningless on Linux and cannot be set.
  if (!is_symlink && ::fchmodat(dir_fd, name.c_str(), entry.mode, 0) != 0)
    return std::unexpected(os_error(errno, fmt::format("chmod {:?}", entry.path)));
  TRY_VOID(write_xattrs_at(dir_fd, name, entry.xattrs()));
  struct timespec times[2] = {from_ns(entry.mtime_ns), from_ns(entry.mtime_ns)};
  if (::utimensat(dir_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    return std::unexpected(os_error(errno, fmt::format("set mtime {:?}", entry.path)));
  return {};
}

}  // namespace treesnap
