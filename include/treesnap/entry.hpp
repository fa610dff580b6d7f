// One entry of a snapshot's manifest: everything needed to recreate a file system object.
// docs/format.md gives the on-disk encoding.
//
// A manifest holds one Entry per object in the tree, so its size sets the memory of a snapshot
// and a restore: a million entries at ~110 bytes each instead of ~240 before the digest moved
// inline and the rarely used fields out of line.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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

// The raw bytes of a content digest, held inline: a std::string would add a heap block to every
// file entry. Converts to and from std::string_view like the string it replaces.
class Digest {
 public:
  static constexpr std::size_t k_max_size = 32;  // SHA-256; XXH3-128 uses 16

  Digest() = default;
  // Bytes beyond k_max_size do not fit: such input leaves the digest empty, which no algorithm
  // accepts, so it fails validation instead of being silently truncated.
  Digest(std::string_view bytes) noexcept {  // NOLINT(google-explicit-constructor): string-like
    if (bytes.size() > k_max_size) return;
    bytes.copy(m_bytes.data(), bytes.size());
    m_size = static_cast<std::uint8_t>(bytes.size());
  }
  Digest(const std::string& bytes) noexcept : Digest(std::string_view(bytes)) {}  // NOLINT
  Digest(const char* bytes) noexcept : Digest(std::string_view(bytes)) {}         // NOLINT

  std::string_view view() const noexcept { return {m_bytes.data(), m_size}; }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: string-like
  std::string str() const { return std::string(view()); }
  std::size_t size() const noexcept { return m_size; }
  bool empty() const noexcept { return m_size == 0; }

  friend bool operator==(const Digest& a, const Digest& b) noexcept { return a.view() == b.view(); }
  friend bool operator==(const Digest& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const Digest& a, const std::string& b) noexcept { return a.view() == b; }

 private:
  std::array<char, k_max_size> m_bytes{};
  std::uint8_t m_size = 0;
};

// Fields that most entries leave empty. An Entry keeps them out of line and allocates them only
// when one is set, so a plain file or directory does not pay ~90 bytes for them.
struct EntryExtras {
  std::string link_target;  // symlink target bytes
  std::uint64_t rdev = 0;   // devices
  std::vector<Xattr> xattrs;  // sorted by name
  // Where a sparse file has data; empty means "all data" (not sparse).
  std::vector<DataRange> data_ranges;

  bool empty() const noexcept { return link_target.empty() && rdev == 0 && xattrs.empty() && data_ranges.empty(); }
  bool operator==(const EntryExtras&) const = default;
};

struct Entry {
  // Declared so that the 33-byte digest and the 1-byte type share padding: 112 bytes, not 120.
  std::string path;  // relative, '/'-separated, raw bytes (not assumed UTF-8); "" is the root
  Digest digest;     // raw digest bytes of a non-empty file's content; empty otherwise
  EntryType type = EntryType::file;
  std::uint32_t mode = 0;  // permission and special bits (07777); the type is in `type`
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t mtime_ns = 0;     // nanoseconds since the epoch
  std::uint64_t size = 0;        // logical size of a file
  std::uint64_t link_index = 0;  // hardlink: index of the earlier file entry it names

  Entry() = default;
  Entry(const Entry& other) : Entry() { *this = other; }
  Entry& operator=(const Entry& other);
  Entry(Entry&&) noexcept = default;
  Entry& operator=(Entry&&) noexcept = default;
  ~Entry() = default;

  // The out-of-line fields; the getters return empty values when none is set. Setting an empty
  // value allocates nothing (and frees the block once every field is empty again).
  const std::string& link_target() const noexcept { return extras().link_target; }
  std::uint64_t rdev() const noexcept { return extras().rdev; }
  const std::vector<Xattr>& xattrs() const noexcept { return extras().xattrs; }
  const std::vector<DataRange>& data_ranges() const noexcept { return extras().data_ranges; }
  void set_link_target(std::string target);
  void set_rdev(std::uint64_t rdev);
  void set_xattrs(std::vector<Xattr> xattrs);
  void set_data_ranges(std::vector<DataRange> ranges);

  bool operator==(const Entry& other) const;

 private:
  const EntryExtras& extras() const noexcept;
  // Applies `change` to the extras, allocating them only when the result is not empty.
  template <typename Change>
  void change_extras(bool value_empty, Change change);

  std::unique_ptr<EntryExtras> m_extras;  // null: every extra field is empty
};

}  // namespace treesnap
