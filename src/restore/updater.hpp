// restore --update: bring a tree treesnap restored to another snapshot in place, changing only
// what differs, from the tree's restore record and status's change detection (verify/tree_status).
#pragma once

#include <filesystem>

#include "restore/restorer.hpp"

namespace treesnap {

// `manifest` (the new snapshot's) must have passed validate_manifest. The outcome's files are
// the new manifest's regular files now equal to their entries (kept or placed), for the record;
// conflicts are left out. A missing or empty `target` is restored with restore_tree.
//
// Test-only failpoint: with TREESNAP_TEST_ABORT_AFTER_ENTRIES=N in the environment the process
// kills itself (SIGKILL) after changing N entries of the target, as a crash would.
Result<RestoreOutcome> update_tree(const ObjectStore& store, Database& db, const Manifest& manifest,
                                   const std::filesystem::path& target, const RestoreOptions& options,
                                   unsigned threads);

}  // namespace treesnap
