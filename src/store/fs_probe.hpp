// What a pair of file systems (the store's and a restore target's) can do, found by trying the
// real operations on throwaway files: hardlink from the store, FICLONE, copy_file_range. Restore
// records the answer per pair in the database (restore/probe.cpp) instead of discovering it file
// by file. Linux code in fs_probe_linux.cpp (STYLE 5).
#pragma once

#include <cstdint>
#include <string>

#include "treesnap/result.hpp"

namespace treesnap {

// A mounted file system: its type by statfs f_type ("ext4", "xfs", "btrfs", "tmpfs", "overlay",
// "nfs", … or "0x<magic>") and an identity stable across reboots: statfs f_fsid, which ext4, XFS
// and btrfs derive from the file system's UUID (st_dev is only a mount-order number). File systems
// that report a zero f_fsid (older tmpfs) are named by "dev:<st_dev>" instead.
struct FsIdentity {
  std::string type;
  std::string id;
};

Result<FsIdentity> fs_identity(int fd);
// The name of a statfs f_type magic number.
std::string fs_type_name(std::uint64_t magic);

// Each field: 0 when the operation worked, else the errno it failed with.
struct FsPairCapabilities {
  int link_errno = 0;        // linkat(store file -> target dir)
  int reflink_errno = 0;     // ioctl(FICLONE) of a store file into a new target file
  int copy_range_errno = 0;  // copy_file_range(store file -> target file)
};

// Tries the three operations with a small file made in `store_tmp_fd` (the store's tmp/) and
// files made in `target_dir_fd`, and removes them all again. Fails only when the throwaway files
// cannot be created (the target is not writable, the disk is full): that is no capability.
Result<FsPairCapabilities> probe_pair(int store_tmp_fd, int target_dir_fd);

}  // namespace treesnap
