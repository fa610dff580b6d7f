// Thin wrappers over the POSIX calls treesnap makes, returning Result and naming the path.
// Everything works relative to directory fds (*at calls); nothing here follows a symlink unless
// the name says so.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "treesnap/entry.hpp"
#include "util/error.hpp"

namespace treesnap {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : m_fd(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.m_fd, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return m_fd; }
  bool valid() const noexcept { return m_fd >= 0; }
  int release() noexcept { return std::exchange(m_fd, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int m_fd = -1;
};

// openat(2) with O_CLOEXEC; `flags` must carry O_NOFOLLOW where a symlink would be wrong.
Result<UniqueFd> open_at(int dir_fd, const std::string& name, int flags, mode_t mode = 0);
Result<UniqueFd> open_dir(int dir_fd, const std::string& name);  // O_DIRECTORY|O_NOFOLLOW
// Opens the relative `path` under `root_fd` without following any symlink on the way and without
// leaving the tree (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): a tree that changes under us
// cannot redirect the open elsewhere.
Result<UniqueFd> open_beneath(int root_fd, const std::string& path, int flags, mode_t mode = 0);
// Removes `name` in `dir_fd` and everything below it, making directories writable on the way.
Result<void> remove_tree(int dir_fd, const std::string& name);
Result<struct stat> stat_at(int dir_fd, const std::string& name);  // AT_SYMLINK_NOFOLLOW
Result<struct stat> stat_fd(int fd, std::string_view what);
Result<void> mkdir_at(int dir_fd, const std::string& name, mode_t mode);  // EEXIST is an error
Result<void> mkdir_p(const std::string& path, mode_t mode);               // EEXIST is fine

// Full reads and writes that retry on EINTR and short counts.
Result<std::size_t> read_full(int fd, std::span<char> buffer, std::string_view what);
Result<std::size_t> pread_full(int fd, std::span<char> buffer, std::uint64_t offset,
                               std::string_view what);
Result<void> write_full(int fd, std::string_view data, std::string_view what);
Result<void> pwrite_full(int fd, std::string_view data, std::uint64_t offset, std::string_view what);
Result<std::string> read_file(int dir_fd, const std::string& name);

// Extended attributes of an open file, or of `name` in `dir_fd` without following it
// (through /proc/self/fd, since Linux has no lgetxattrat in glibc 2.36). Sorted by name.
Result<std::vector<Xattr>> read_xattrs_fd(int fd, std::string_view what);
Result<std::vector<Xattr>> read_xattrs_at(int dir_fd, const std::string& name);
Result<void> write_xattrs_fd(int fd, const std::vector<Xattr>& xattrs, std::string_view what);
Result<void> write_xattrs_at(int dir_fd, const std::string& name, const std::vector<Xattr>& xattrs);

// "/proc/self/fd/<dir_fd>/<name>": a short path that names `name` without re-walking the tree.
std::string fd_path(int dir_fd, const std::string& name);

// Data ranges of a file (SEEK_DATA/SEEK_HOLE); one range [0, size) when the file system cannot
// tell or the file has no holes.
Result<std::vector<DataRange>> data_ranges(int fd, std::uint64_t size, std::string_view what);

// The process umask, read from /proc/self/status (umask(2) cannot read it without changing it,
// which would race with other threads); nullopt when the kernel does not report it.
std::optional<mode_t> process_umask();

// What stat says about an inode that treesnap records to notice a later change without reading
// it: a write through any of its names changes mtime and ctime, a chmod changes mode and ctime, a
// replacement changes ino. nlink is left out on purpose: every hardlink restore changes it.
struct FileStamp {
  std::uint64_t ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  std::uint32_t mode = 0;  // permission bits (07777)
  bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const struct stat& st) noexcept;

// Nanoseconds since the epoch.
std::int64_t to_ns(const struct timespec& ts) noexcept;
struct timespec from_ns(std::int64_t ns) noexcept;
std::int64_t now_ns() noexcept;

// The names in directory `name` under `dir_fd` ("." for dir_fd itself), "." and ".." left out,
// in readdir order.
Result<std::vector<std::string>> list_names(int dir_fd, const std::string& name);

// Who this process is, for leases: the host name, the kernel's boot id (a UUID that changes at
// every boot, from /proc/sys/kernel/random/boot_id; empty when unreadable), and whether a pid on
// this host and boot is still running (kill(pid, 0): EPERM counts as alive).
std::string host_name();
std::string boot_id();
bool process_alive(std::int64_t pid) noexcept;

// Joins "a" and "b" as "a/b" ("" + "b" = "b").
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace treesnap
