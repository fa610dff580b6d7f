// Internal to meta/: creating the schema and migrating older stores, one step per version.
#pragma once

#include <sqlite3.h>

#include "treesnap/result.hpp"

namespace treesnap {

// Creates the tables of a new store (version 1, then every migration, so that a new store and a
// migrated one have the same schema by construction) and records the version.
Result<void> create_schema(sqlite3* db);
// Brings a store of an older schema version up to k_schema_version in one transaction each.
Result<void> migrate_schema(sqlite3* db, int from_version);
// Up to `to_version` only: tests make stores of the older versions this way.
Result<void> migrate_schema(sqlite3* db, int from_version, int to_version);

}  // namespace treesnap
