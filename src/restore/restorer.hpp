// Restore: materialise a validated manifest into a new directory, built in a temporary sibling
// and renamed into place at the end.
#pragma once

#include <filesystem>

#include "core/manifest.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

// `manifest` must have passed validate_manifest. Fills every field of the summary except the
// snapshot's name and id.
Result<RestoreSummary> restore_tree(const ObjectStore& store, const Manifest& manifest,
                                    const std::filesystem::path& target,
                                    const RestoreOptions& options, unsigned threads);

}  // namespace treesnap
