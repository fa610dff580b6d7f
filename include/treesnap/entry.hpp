// One entry of a snapshot's manifest: everything needed to recreate a file system object.
// docs/format.md gives the on-disk encoding.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace treesnap {

enum class EntryType : std::uint8_t {
  directory = 0,
  file = 1,
  symlink = 2,
  hardlink = 3,  // another name of an earlier file entry (link_index)
  fifo = 4,
  char_device = 5,
  block_device = 6,
};

const char* to_string(EntryType type) noexcept;

struct Xattr {
  std::string name;
  std::string value;  // raw bytes
  bool operator==(const Xattr&) const = default;
};

struct DataRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool operator==(const DataRange&) const = default;
};

struct Entry {
  std::string path;  // relative, '/'-separated, raw bytes (not assumed UTF-8); "" is the root
  EntryType type = EntryType::file;
  std::uint32_t mode = 0;  // permission and special bits (07777); the type is in `type`
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t mtime_ns = 0;  // nanoseconds since the epoch
  std::uint64_t size = 0;     // logical size of a file
  std::string digest;         // raw digest bytes of a non-empty file's content; empty otherwise
  std::string link_target;    // symlink target bytes
  std::uint64_t link_index = 0;  // hardlink: index of the earlier file entry it names
  std::uint64_t rdev = 0;        // devices
  std::vector<Xattr> xattrs;     // sorted by name
  // Where a sparse file has data; empty means "all data" (not sparse).
  std::vector<DataRange> data_ranges;

  bool operator==(const Entry&) const = default;
};

}  // namespace treesnap
