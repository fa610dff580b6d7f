// Verify: re-hash every object the database knows and every link variant on disk.
#pragma once

#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

Result<VerifySummary> verify_store(const ObjectStore& store, Database& db, unsigned threads);

}  // namespace treesnap
