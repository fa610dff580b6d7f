#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "store/file_clone.hpp"
#include "util/error.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

// 1 MiB buffers: large enough that syscall cost vanishes against memcpy, small enough for two
// threads to share the cache.
constexpr std::size_t k_copy_buffer = 1 << 20;

Result<void> copy_range_user(int src_fd, int dst_fd, std::uint64_t offset, std::uint64_t length) {
  static thread_local std::unique_ptr<char[]> buffer(new char[k_copy_buffer]);
  while (length > 0) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(length, k_copy_buffer));
    TRY(auto got, pread_full(src_fd, {buffer.get(), want}, offset, "copy source"));
    if (got == 0) return std::unexpected(make_error(ErrorCode::corrupt, "copy source shorter than recorded"));
    TRY_VOID(pwrite_full(dst_fd, {buffer.get(), got}, offset, "copy target"));
    offset += got;
    length -= got;
  }
  return {};
}

Result<void> copy_range_kernel(int src_fd, int dst_fd, std::uint64_t offset, std::uint64_t length) {
  auto in = static_cast<loff_t>(offset), out = static_cast<loff_t>(offset);
  while (length > 0) {
    ssize_t n = ::copy_file_range(src_fd, &in, dst_fd, &out, length, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Cross-file-system copies and some file systems refuse: do it by hand.
      if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
        return copy_range_user(src_fd, dst_fd, static_cast<std::uint64_t>(in), length);
      return std::unexpected(os_error(errno, "copy_file_range"));
    }
    if (n == 0) return std::unexpected(make_error(ErrorCode::corrupt, "copy source shorter than recorded"));
    length -= static_cast<std::uint64_t>(n);
  }
  return {};
}

}  // namespace

int reflink_fd(int src_fd, int dst_fd) noexcept {
  return ::ioctl(dst_fd, FICLONE, src_fd) == 0 ? 0 : errno;
}

Result<void> copy_ranges(int src_fd, int dst_fd, std::uint64_t size,
                         const std::vector<DataRange>& ranges, CopyMethod method) {
  auto copy_one = method == CopyMethod::kernel ? copy_range_kernel : copy_range_user;
  if (ranges.empty()) {
    TRY_VOID(copy_one(src_fd, dst_fd, 0, size));
  } else {
    for (const auto& r : ranges) TRY_VOID(copy_one(src_fd, dst_fd, r.offset, r.length));
    // Extends over a trailing hole without allocating it; skipped otherwise, because on XFS
    // ftruncate() writes the file back first.
    const auto& last = ranges.back();
    if (last.offset + last.length < size && ::ftruncate(dst_fd, static_cast<off_t>(size)) != 0)
      return std::unexpected(os_error(errno, "truncate copy target"));
  }
  return {};
}

}  // namespace treesnap
