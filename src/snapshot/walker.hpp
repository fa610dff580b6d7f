// Walks a source tree with *at() calls on directory fds, never following a symlink, and produces
// the manifest entries in canonical order plus the list of files whose content is needed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/manifest.hpp"

#include "treesnap/entry.hpp"
#include "treesnap/result.hpp"
#include "util/posix.hpp"

namespace treesnap {

// A regular file whose content must be hashed or looked up in the stat cache.
struct FileJob {
  std::size_t entry_index = 0;
  std::uint64_t dev = 0, ino = 0;
  std::int64_t ctime_ns = 0;
  bool maybe_sparse = false;  // fewer blocks allocated than bytes
  std::uint64_t disk_bytes = 0;  // blocks of the object this snapshot published for it, else 0
  std::optional<FileStamp> stamp;  // the stat of that object once published: its fingerprint
};

struct WalkResult {
  EntryList entries;           // canonical order, entries[0] is the root ""
  std::deque<FileJob> files;   // non-empty regular files, first names only
  std::uint64_t skipped_sockets = 0;
  dev_t root_dev = 0;
};

struct WalkOptions {
  bool cross_devices = false;  // false: mount points are recorded as empty directories
};

// `root_fd` is an open directory. Fails with the path of anything that cannot be read, or that
// vanishes during the walk.
Result<WalkResult> walk_tree(int root_fd, const WalkOptions& options);

}  // namespace treesnap
