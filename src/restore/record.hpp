// The restore record: which tree treesnap restored where, and the stat of each regular file once
// in place (docs/format.md, "restores"; docs/integrity.md). Status and repair compare against it;
// a later `restore --update` can too.
#pragma once

#include "meta/database.hpp"
#include "restore/restorer.hpp"

namespace treesnap {

// Writes the record of the tree now at `outcome.summary.target` from the stats in
// `outcome.files` (PlacedFile::stamp: the restorer's, or the updater's once its renames are done),
// in one transaction (replacing an older record of the same target) that also lets the
// fingerprints of the store files it hardlinked follow the ctime those links gave them. An
// update's outcome (`amend_record`) amends its record instead: only the files listed change.
// How a record row says a file was placed, from the strategy that placed it; `automatic` (an
// empty file, or one the updater kept without knowing how) is `fresh`.
PlacedBy placed_by(Strategy how) noexcept;

Result<void> record_restored_tree(Database& db, const Manifest& manifest, const RestoreOutcome& outcome,
                                  const std::string& snapshot_name, const std::string& manifest_digest);

}  // namespace treesnap
