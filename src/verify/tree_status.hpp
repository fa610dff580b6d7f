// Status of a restored tree: what changed since treesnap restored it, from its restore record
// (restore_entries) plus one stat per path, hashing only files whose stat changed (or all of
// them when asked). The scan is also repair's starting point.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <limits>
#include <unordered_map>

#include "core/manifest.hpp"
#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

inline constexpr std::size_t k_not_in_manifest = std::numeric_limits<std::size_t>::max();

struct Finding {
  TreeChange change;
  std::size_t index = k_not_in_manifest;  // the manifest entry; k_not_in_manifest for `added`
};

struct TreeScan {
  std::string target;  // canonical absolute path, as recorded
  UniqueFd root;
  RestoreRecord record;
  Manifest manifest;
  std::unordered_map<std::string, RestoreEntryRecord> recorded;  // regular files by path
  std::vector<Finding> findings;
  std::uint64_t hashed = 0;
};

// The canonical form under which a restore into `target` is recorded (realpath).
Result<std::string> canonical_target(const std::filesystem::path& target);

// Whether the scan also walks the tree for paths the manifest does not have (`added` findings).
enum class AddedPaths { find, skip };

Result<TreeScan> scan_restored_tree(const ObjectStore& store, Database& db, const std::filesystem::path& target,
                                    bool hash_all, unsigned threads, AddedPaths added = AddedPaths::find);

// The file type an entry must have on disk (S_IFREG for files and in-tree hardlinks).
mode_t expected_type(EntryType type) noexcept;

}  // namespace treesnap
