#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <random>

#include <fmt/format.h>

#include "store/file_clone.hpp"
#include "store/fs_probe.hpp"
#include "store/layout.hpp"
#include "util/error.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

// 4 KiB, one block on every file system here: FICLONE is tried on a whole block, so a file system
// that can only clone aligned ranges still says yes.
constexpr std::size_t k_probe_bytes = 4096;

// Removes a throwaway file when the probe ends, however it ends.
struct ProbeFile {
  int dir_fd;
  std::string name;
  ~ProbeFile() { ::unlinkat(dir_fd, name.c_str(), 0); }
};

std::string probe_name() {
  return layout::staging_name("probe", ::getpid(), fmt::format("{:08x}", std::random_device{}()));
}

}  // namespace

std::string fs_type_name(std::uint64_t magic) {
  switch (magic) {
    case EXT4_SUPER_MAGIC: return "ext4";  // ext2 and ext3 share the magic; all use the ext4 driver
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case TMPFS_MAGIC: return "tmpfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlay";
    case NFS_SUPER_MAGIC: return "nfs";
    case 0x2fc12fc1: return "zfs";
    case F2FS_SUPER_MAGIC: return "f2fs";
    case 0xca451a4e: return "bcachefs";
    case 0x65735546: return "fuse";
    case SMB2_SUPER_MAGIC: return "smb2";
    case CIFS_SUPER_MAGIC: return "cifs";
    case CEPH_SUPER_MAGIC: return "ceph";
    case SQUASHFS_MAGIC: return "squashfs";
    case MSDOS_SUPER_MAGIC: return "vfat";
    case EXFAT_SUPER_MAGIC: return "exfat";
    case RAMFS_MAGIC: return "ramfs";
    default: return fmt::format("0x{:x}", magic);
  }
}

Result<FsIdentity> fs_identity(int fd) {
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0) return std::unexpected(os_error(errno, "statfs"));
  FsIdentity id;
  id.type = fs_type_name(static_cast<std::uint64_t>(sfs.f_type));
  unsigned a = static_cast<unsigned>(sfs.f_fsid.__val[0]), b = static_cast<unsigned>(sfs.f_fsid.__val[1]);
  if (a != 0 || b != 0) {
    id.id = fmt::format("{:08x}{:08x}", a, b);
  } else {
    TRY(auto st, stat_fd(fd, "file system"));
    id.id = fmt::format("dev:{}", static_cast<std::uint64_t>(st.st_dev));
  }
  return id;
}

Result<FsPairCapabilities> probe_pair(int store_tmp_fd, int target_dir_fd) {
  FsPairCapabilities caps;
  ProbeFile source{store_tmp_fd, probe_name()};
  TRY(auto src, open_at(store_tmp_fd, source.name, O_RDWR | O_CREAT | O_EXCL, 0600));
  const std::string block(k_probe_bytes, 't');
  TRY_VOID(write_full(src.get(), block, "probe file"));

  ProbeFile linked{target_dir_fd, probe_name()};
  caps.link_errno = ::linkat(store_tmp_fd, source.name.c_str(), target_dir_fd, linked.name.c_str(), 0) == 0 ? 0 : errno;

  ProbeFile cloned{target_dir_fd, probe_name()};
  TRY(auto clone_fd, open_at(target_dir_fd, cloned.name, O_RDWR | O_CREAT | O_EXCL, 0600));
  caps.reflink_errno = reflink_fd(src.get(), clone_fd.get());

  ProbeFile copied{target_dir_fd, probe_name()};
  TRY(auto copy_fd, open_at(target_dir_fd, copied.name, O_RDWR | O_CREAT | O_EXCL, 0600));
  loff_t in = 0, out = 0;
  const ssize_t n = ::copy_file_range(src.get(), &in, copy_fd.get(), &out, k_probe_bytes, 0);
  caps.copy_range_errno = n > 0 ? 0 : n == 0 ? EIO : errno;
  return caps;
}

}  // namespace treesnap
