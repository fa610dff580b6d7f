// The restore ladder: one rung per way of materialising a file's content. Each rung reports
// `done` or `fall_back` with the errno that made it step down; every other error surfaces with
// the path (STYLE 8). Fallback happens only on the errors named in each rung.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <string>
#include <string_view>
#include <utility>

#include "store/object_store.hpp"
#include "treesnap/entry.hpp"

namespace treesnap {

struct RungOutcome {
  bool done = false;
  int sys_errno = 0;  // why it fell back
  // hardlink rung, when done: the store file linked to and its stat just before the link.
  std::string link_path;
  FileStamp link_before;

  static RungOutcome placed() { return {.done = true, .sys_errno = 0, .link_path = {}, .link_before = {}}; }
  static RungOutcome fall_back(int err) { return {.done = false, .sys_errno = err, .link_path = {}, .link_before = {}}; }
  static RungOutcome linked(std::string path, FileStamp before) {
    return {.done = true, .sys_errno = 0, .link_path = std::move(path), .link_before = before};
  }
};

// What this restore learned about the (store, target) pair; shared by all workers so that a
// capability that failed once is not retried for every file.
// Each field is 0 while the rung works, else the errno that showed it cannot work here (EXDEV,
// EOPNOTSUPP…), reported for every later file too.
struct PairCapabilities {
  std::atomic<int> link_errno{0};
  std::atomic<int> reflink_errno{0};
  bool is_root = false;
};

// Hardlinks `name` in `dir_fd` to a store inode with the entry's mode, owner and xattrs (and
// mtime when `exact_mtime`). Falls back on EXDEV, EPERM, and EMLINK when no generation of the
// variant has room.
Result<RungOutcome> rung_hardlink(const ObjectStore& store, const Entry& entry, int dir_fd,
                                  const std::string& name, bool exact_mtime, PairCapabilities& caps);

// Clones the object into the open, empty `dst_fd`. Falls back on EOPNOTSUPP, EINVAL, ENOTTY
// (FICLONE unsupported) and EXDEV.
Result<RungOutcome> rung_reflink(const ObjectStore& store, const Entry& entry, int dst_fd,
                                 PairCapabilities& caps);

// Auto's measured rule: true when a file of `size` bytes restored onto a file system of type
// `target_fs` (statfs name, "xfs"…) is cheaper to copy than to reflink. See ladder.cpp.
bool auto_prefers_copy(std::string_view target_fs, std::uint64_t size) noexcept;

// Copies the object into `dst_fd`, verifying its digest on the way; the last rung.
Result<void> rung_copy(const ObjectStore& store, const Entry& entry, int dst_fd);

// The owner and mode a file this restore has just created already has. Passing it lets
// apply_metadata_fd skip a chown and a chmod that would change nothing: on a tree of small files
// they were two of the eleven calls per file.
struct FreshFile {
  uid_t uid;
  gid_t gid;
  mode_t mode;
};

// Owner (when root), then mode (so set-id bits survive the chown), xattrs, and mtime last.
Result<void> apply_metadata_fd(int fd, const Entry& entry, bool is_root, const FreshFile* fresh = nullptr);
// The same for an entry that cannot be opened for writing (symlink, fifo, device).
Result<void> apply_metadata_at(int dir_fd, const std::string& name, const Entry& entry, bool is_root);

}  // namespace treesnap
