// Restore: materialise a validated manifest into a new directory, built in a temporary sibling
// and renamed into place at the end.
#pragma once

#include <array>
#include <filesystem>

#include "core/manifest.hpp"
#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

// How one regular file (a `file` entry) got its content: hardlink, reflink, copy, or
// Strategy::automatic for an empty file created fresh. A hardlinked one names the store file it
// was linked to and that file's stat just before, so its fingerprint can follow the link.
// `stamp` is the file's stat once placed (after its metadata, or after its link), taken from the
// fd or the parent directory's fd the restorer holds; a later link to the same inode in this
// restore moves its ctime, so of several names of one inode the newest stamp is the inode's.
struct PlacedFile {
  std::size_t index = 0;  // in the manifest
  Strategy how = Strategy::automatic;
  std::string link_path;
  FileStamp link_before;
  FileStamp stamp;
};

struct RestoreOutcome {
  RestoreSummary summary;
  std::vector<PlacedFile> files;  // in no particular order
  // restore --update of a recorded tree: the record to amend rather than write anew (0: none).
  // `files` then holds only the files whose row is new or changes, `drop` the recorded paths
  // whose row goes, and `totals` (hardlinked, reflinked, copied, empty) counts the whole tree.
  std::int64_t amend_record = 0;
  std::vector<std::string> drop;
  std::array<std::uint64_t, 4> totals{};
};

// `manifest` must have passed validate_manifest. Fills every field of the summary except the
// snapshot's name and id. `db` holds the file system pair's probe record (restore/probe.hpp).
Result<RestoreOutcome> restore_tree(const ObjectStore& store, Database& db, const Manifest& manifest,
                                    const std::filesystem::path& target,
                                    const RestoreOptions& options, unsigned threads);

// --relocate: the absolute path the tree will have at `target`, after checking that the
// snapshot is relocatable and every rewrite to that path is possible (`invalid` listing the
// binary files that cannot take a longer path). Writes nothing.
Result<std::string> plan_relocation(const Manifest& manifest, const std::filesystem::path& target);

}  // namespace treesnap
