#include "util/posix.hpp"

#include <dirent.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

namespace treesnap {

void UniqueFd::reset(int fd) noexcept {
  if (m_fd >= 0) ::close(m_fd);
  m_fd = fd;
}

Result<UniqueFd> open_at(int dir_fd, const std::string& name, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::openat(dir_fd, name.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::unexpected(os_error(errno, fmt::format("open {}", name)));
  return UniqueFd(fd);
}

Result<UniqueFd> open_dir(int dir_fd, const std::string& name) {
  return open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

Result<UniqueFd> open_beneath(int root_fd, const std::string& path, int flags, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == ENOSYS) break;  // kernels before 5.6
    if (errno == ELOOP || errno == EXDEV)
      return std::unexpected(make_error(ErrorCode::invalid, fmt::format("{:?} passes through a symlink or leaves the tree", path)));
    return std::unexpected(os_error(errno, fmt::format("open {:?}", path)));
  }
  return open_at(root_fd, path, flags | O_NOFOLLOW, mode);
}

Result<void> remove_tree(int dir_fd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? Result<void>{} : std::unexpected(os_error(errno, "stat " + name));
  if (S_ISDIR(st.st_mode)) {
    ::fchmodat(dir_fd, name.c_str(), 0700, 0);
    TRY(auto child, open_dir(dir_fd, name));
    TRY(auto names, list_names(child.get(), "."));
    for (const auto& n : names) TRY_VOID(remove_tree(child.get(), n));
    if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0)
      return std::unexpected(os_error(errno, "rmdir " + name));
    return {};
  }
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT)
    return std::unexpected(os_error(errno, "unlink " + name));
  return {};
}

Result<struct stat> stat_at(int dir_fd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return std::unexpected(os_error(errno, fmt::format("stat {}", name)));
  return st;
}

Result<struct stat> stat_fd(int fd, std::string_view what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::unexpected(os_error(errno, fmt::format("stat {}", what)));
  return st;
}

Result<void> mkdir_at(int dir_fd, const std::string& name, mode_t mode) {
  if (::mkdirat(dir_fd, name.c_str(), mode) != 0)
    return std::unexpected(os_error(errno, fmt::format("mkdir {}", name)));
  return {};
}

Result<void> mkdir_p(const std::string& path, mode_t mode) {
  std::string partial;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST)
      return std::unexpected(os_error(errno, fmt::format("mkdir {}", partial)));
  }
  return {};
}

Result<std::size_t> read_full(int fd, std::span<char> buffer, std::string_view what) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(os_error(errno, fmt::format("read {}", what)));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

Result<std::size_t> pread_full(int fd, std::span<char> buffer, std::uint64_t offset,
                               std::string_view what) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::pread(fd, buffer.data() + done, buffer.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(os_error(errno, fmt::format("read {}", what)));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

Result<void> write_full(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(os_error(errno, fmt::format("write {}", what)));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Result<void> pwrite_full(int fd, std::string_view data, std::uint64_t offset, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(os_error(errno, fmt::format("write {}", what)));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Result<std::string> read_file(int dir_fd, const std::string& name) {
  TRY(auto fd, open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW));
  TRY(auto st, stat_fd(fd.get(), name));
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  TRY(auto n, read_full(fd.get(), data, name));
  data.resize(n);
  return data;
}

std::string fd_path(int dir_fd, const std::string& name) {
  return fmt::format("/proc/self/fd/{}/{}", dir_fd, name);
}

namespace {

// Both list variants share the parse; `list` and `get` bind the fd or the path.
template <typename List, typename Get>
Result<std::vector<Xattr>> read_xattrs(List list, Get get, std::string_view what) {
  std::string names;
  for (;;) {
    ssize_t n = list(nullptr, 0);
    if (n < 0) {
      // Symlinks and some file systems reject xattrs entirely: that means "none".
      if (errno == ENOTSUP || errno == EPERM) return std::vector<Xattr>{};
      return std::unexpected(os_error(errno, fmt::format("listxattr {}", what)));
    }
    if (n == 0) return std::vector<Xattr>{};
    names.resize(static_cast<std::size_t>(n));
    n = list(names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<std::size_t>(n));
      break;
    }
    if (errno != ERANGE) return std::unexpected(os_error(errno, fmt::format("listxattr {}", what)));
  }
  std::vector<Xattr> result;
  for (std::size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    std::string value;
    for (;;) {
      ssize_t n = get(name.c_str(), nullptr, 0);
      if (n < 0) {
        if (errno == ENODATA) break;  // removed between list and get
        return std::unexpected(os_error(errno, fmt::format("getxattr {} {}", what, name)));
      }
      value.resize(static_cast<std::size_t>(n));
      n = get(name.c_str(), value.data(), value.size());
      if (n >= 0) {
        value.resize(static_cast<std::size_t>(n));
        result.push_back({std::move(name), std::move(value)});
        break;
      }
      if (errno != ERANGE)
        return std::unexpected(os_error(errno, fmt::format("getxattr {} {}", what, name)));
    }
  }
  std::sort(result.begin(), result.end(),
            [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return result;
}

}  // namespace

Result<std::vector<Xattr>> read_xattrs_fd(int fd, std::string_view what) {
  return read_xattrs([fd](char* buf, std::size_t size) { return ::flistxattr(fd, buf, size); },
                     [fd](const char* name, void* buf, std::size_t size) {
                       return ::fgetxattr(fd, name, buf, size);
                     },
                     what);
}

namespace {

// listxattrat(2) and getxattrat(2) (Linux 6.13) read the xattrs of a name relative to a directory
// fd; without them each call resolves a /proc/self/fd/N/name path (12% of the walk of Python's
// stdlib). Older kernels answer ENOSYS once and the /proc path serves from then on. The numbers
// are those of the unified syscall table (x86-64 included).
constexpr long k_sys_getxattrat = 464;
constexpr long k_sys_listxattrat = 465;
struct XattrArgs {  // struct xattr_args of <linux/xattr.h>
  std::uint64_t value;
  std::uint32_t size;
  std::uint32_t flags;
};
std::atomic<bool> g_no_xattrat{false};  // set once the kernel answers ENOSYS

}  // namespace

Result<std::vector<Xattr>> read_xattrs_at(int dir_fd, const std::string& name) {
  if (!g_no_xattrat.load(std::memory_order_relaxed)) {
    ssize_t probe = ::syscall(k_sys_listxattrat, dir_fd, name.c_str(), AT_SYMLINK_NOFOLLOW, nullptr, 0);
    if (probe == 0) return std::vector<Xattr>{};  // the common case: no xattrs, one call
    if (probe > 0 || errno != ENOSYS) {
      return read_xattrs(
          [&](char* buf, std::size_t size) {
            return ::syscall(k_sys_listxattrat, dir_fd, name.c_str(), AT_SYMLINK_NOFOLLOW, buf, size);
          },
          [&](const char* attr, void* buf, std::size_t size) {
            XattrArgs args{reinterpret_cast<std::uintptr_t>(buf), static_cast<std::uint32_t>(size), 0};
            return ::syscall(k_sys_getxattrat, dir_fd, name.c_str(), AT_SYMLINK_NOFOLLOW, attr, &args, sizeof args);
          },
          name);
    }
    g_no_xattrat.store(true, std::memory_order_relaxed);
  }
  std::string path = fd_path(dir_fd, name);
  return read_xattrs(
      [&path](char* buf, std::size_t size) { return ::llistxattr(path.c_str(), buf, size); },
      [&path](const char* attr, void* buf, std::size_t size) {
        return ::lgetxattr(path.c_str(), attr, buf, size);
      },
      name);
}

Result<void> write_xattrs_fd(int fd, const std::vector<Xattr>& xattrs, std::string_view what) {
  for (const auto& x : xattrs) {
    if (::fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0) != 0)
      return std::unexpected(os_error(errno, fmt::format("setxattr {} {}", what, x.name)));
  }
  return {};
}

Result<void> write_xattrs_at(int dir_fd, const std::string& name, const std::vector<Xattr>& xattrs) {
  std::string path = fd_path(dir_fd, name);
  for (const auto& x : xattrs) {
    if (::lsetxattr(path.c_str(), x.name.c_str(), x.value.data(), x.value.size(), 0) != 0)
      return std::unexpected(os_error(errno, fmt::format("setxattr {} {}", name, x.name)));
  }
  return {};
}

Result<std::vector<DataRange>> data_ranges(int fd, std::uint64_t size, std::string_view what) {
  std::vector<DataRange> ranges;
  if (size == 0) return ranges;
  off_t pos = 0;
  const auto end = static_cast<off_t>(size);
  while (pos < end) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno == EINVAL || errno == EOPNOTSUPP) return std::vector<DataRange>{{0, size}};
      return std::unexpected(os_error(errno, fmt::format("seek data {}", what)));
    }
    if (data >= end) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return std::unexpected(os_error(errno, fmt::format("seek hole {}", what)));
    hole = std::min(hole, end);
    ranges.push_back({static_cast<std::uint64_t>(data), static_cast<std::uint64_t>(hole - data)});
    pos = hole;
  }
  return ranges;
}

std::optional<mode_t> process_umask() {
  // Not read_file(): /proc files report a size of 0.
  UniqueFd fd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  std::string status(16384, '\0');
  auto got = read_full(fd.get(), status, "/proc/self/status");
  if (!got) return std::nullopt;
  status.resize(*got);
  auto at = status.find("\nUmask:");
  if (at == std::string::npos) return std::nullopt;
  return static_cast<mode_t>(std::strtoul(status.c_str() + at + 7, nullptr, 8) & 0777);
}

std::int64_t to_ns(const struct timespec& ts) noexcept {
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct timespec from_ns(std::int64_t ns) noexcept {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1'000'000'000;
    ts.tv_sec -= 1;
  }
  return ts;
}

std::int64_t now_ns() noexcept {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return to_ns(ts);
}

std::string join_path(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir).append("/").append(name);
  return out;
}

Result<std::vector<std::string>> list_names(int dir_fd, const std::string& name) {
  TRY(auto fd, open_at(dir_fd, name, O_RDONLY | O_DIRECTORY));
  DIR* dir = ::fdopendir(fd.release());
  if (!dir) return std::unexpected(os_error(errno, "opendir " + name));
  std::vector<std::string> names;
  errno = 0;
  while (auto* d = ::readdir(dir)) {
    std::string_view n(d->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) return std::unexpected(os_error(err, "readdir " + name));
  return names;
}

std::string host_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0) return {};
  return buffer;
}

std::string boot_id() {
  static const std::string id = [] {
    // /proc files report size 0, so read into a fixed buffer rather than with read_file().
    auto fd = open_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", O_RDONLY);
    if (!fd) return std::string();
    char buffer[64] = {};
    auto got = read_full(fd->get(), {buffer, sizeof buffer}, "boot_id");
    if (!got) return std::string();
    std::string s(buffer, *got);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }();
  return id;
}

bool process_alive(std::int64_t pid) noexcept {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

FileStamp stamp_of(const struct stat& st) noexcept {
  return {static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_size), to_ns(st.st_mtim),
          to_ns(st.st_ctim), static_cast<std::uint32_t>(st.st_mode & 07777)};
}

}  // namespace treesnap
