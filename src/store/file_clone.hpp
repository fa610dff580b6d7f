// Moving file data between two open files: clone (reflink) or copy, holes kept. Linux-specific
// code lives in file_clone_linux.cpp (STYLE 5).
#pragma once

#include <cstdint>
#include <vector>

#include "treesnap/entry.hpp"
#include "treesnap/result.hpp"

namespace treesnap {

// FICLONE: `dst` shares `src`'s extents. Returns the errno on failure (0 on success) so the
// caller's ladder can decide between falling back and failing.
int reflink_fd(int src_fd, int dst_fd) noexcept;

enum class CopyMethod {
  kernel,      // copy_file_range: no user-space buffer; may share extents on XFS/btrfs
  user_space,  // pread/pwrite: always writes new blocks
};

// Copies the data ranges of `src` into `dst` at the same offsets and sets `dst`'s size to `size`,
// so holes stay holes. `ranges` empty means the whole file is data.
Result<void> copy_ranges(int src_fd, int dst_fd, std::uint64_t size,
                         const std::vector<DataRange>& ranges, CopyMethod method);

}  // namespace treesnap
