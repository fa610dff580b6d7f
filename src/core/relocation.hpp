// Relocations: where a snapshot's own absolute path occurs inside its files, and how those bytes
// are rewritten for another path (conda's prefix replacement; rcc's relocations). Pure byte logic:
// the snapshotter feeds the scanner while it reads each file for hashing, the restorer plans and
// rewrites. docs/format.md, "Relocations", gives the manifest encoding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "treesnap/result.hpp"

namespace treesnap {

enum class RelocationKind : std::uint8_t {
  text = 0,    // any length: the file's size changes with the path
  binary = 1,  // NUL bytes in its first 8 KiB, or ELF: the new path may not be longer
};

const char* to_string(RelocationKind kind) noexcept;

// One file of a relocatable snapshot that holds its source path.
struct Relocation {
  std::uint64_t entry_index = 0;       // the file entry in the manifest
  RelocationKind kind = RelocationKind::text;
  std::vector<std::uint64_t> offsets;  // ascending, non-overlapping byte offsets of the path
  bool operator==(const Relocation&) const = default;
};

// Finds every occurrence of `prefix` in a file fed to it in order, in pieces of any size (an
// occurrence may straddle two pieces), and decides whether the file is text or binary. An
// occurrence counts only when the byte after it cannot continue a file name ([A-Za-z0-9._-]), so
// "/opt/env" is not found inside "/opt/env2". `prefix` must be non-empty.
class PrefixScanner {
 public:
  explicit PrefixScanner(std::string_view prefix) : m_prefix(prefix) {}
  // The next `bytes` of the file, starting at `offset` (where the previous piece ended, or later
  // when a hole was skipped: holes are zeros and cannot hold a path).
  void feed(std::uint64_t offset, std::string_view bytes);
  // Call once the whole file has been fed: settles an occurrence at the very end.
  void finish();
  const std::vector<std::uint64_t>& offsets() const { return m_offsets; }
  RelocationKind kind() const { return m_binary ? RelocationKind::binary : RelocationKind::text; }

 private:
  void check_candidate(std::uint64_t at, int next_byte);  // next_byte -1: end of file
  std::string m_prefix;
  std::string m_tail;  // the last prefix.size() bytes seen, to match across pieces
  std::uint64_t m_tail_end = 0;  // file offset just past m_tail
  std::vector<std::uint64_t> m_offsets;
  std::vector<std::uint64_t> m_pending;  // matched, waiting for the byte after them
  std::uint64_t m_sniffed = 0;  // bytes of the head examined for NULs and the ELF magic
  bool m_binary = false;
};

// Files whose embedded paths are not recorded: Python bytecode caches (`*.pyc`). CPython's importer
// replaces a loaded code object's co_filename with the real source path (_imp._fix_co_filename),
// so a moved .pyc needs no rewrite, and its strings are length-prefixed marshal data that a
// NUL-padded rewrite would corrupt ("bad marshal data" on import, seen with a moved venv).
bool relocation_exempt(std::string_view path) noexcept;

// The files that cannot be relocated from `old_root` to `new_root`: binary ones when the new path
// is longer. Empty when every rewrite is possible.
std::vector<std::uint64_t> unrelocatable(const std::vector<Relocation>& relocations,
                                         std::string_view old_root, std::string_view new_root);

// The bytes of a file after its rewrite. Text: every occurrence replaced (size changes). Binary:
// each NUL-terminated string holding occurrences gets them replaced and is NUL-padded back to
// its length, so every other byte keeps its offset (conda's binary mode); `invalid` when the new
// path is longer or an offset does not hold the old path (a manifest that does not fit the
// object).
Result<std::string> relocate_bytes(std::string_view data, const Relocation& relocation,
                                   std::string_view old_root, std::string_view new_root);

}  // namespace treesnap
