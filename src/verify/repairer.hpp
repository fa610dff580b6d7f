// Repair: bring a restored tree back to its snapshot without breaking its hardlink structure
// (docs/integrity.md, "Repair"). Starts from the status scan; each fix is one action in the report.
#pragma once

#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

Result<RepairReport> repair_tree(const ObjectStore& store, Database& db, const std::filesystem::path& target,
                                 const RepairOptions& options, unsigned threads);

}  // namespace treesnap
