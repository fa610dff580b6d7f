// Snapshot: walk, hash and store new content in parallel, write the manifest, make it durable,
// then commit the snapshot row. Nothing is visible under the name before the commit.
#pragma once

#include <filesystem>

#include "meta/database.hpp"
#include "meta/lease.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

// Splits "name[:tag]" (tag defaults to "latest"); `invalid` for an empty name or tag, or for
// characters outside [A-Za-z0-9._/-] (names become OCI repository paths later).
Result<std::pair<std::string, std::string>> parse_snapshot_name(const std::string& text);

// `lease` must have been taken before the call: objects it finds live are protected by it.
Result<SnapshotSummary> take_snapshot(const ObjectStore& objects, Database& db, Lease& lease,
                                      const std::filesystem::path& source,
                                      const SnapshotOptions& options, unsigned threads);

// The path a relocatable snapshot of `source` records: absolute and normalised lexically, without
// resolving symlinks (the path as tools such as `python3 -m venv` write it into files).
Result<std::string> relocation_root_of(const std::filesystem::path& source);

// Ranges of a sparse file as stored in the stat cache (pairs of little-endian u64).
std::string encode_ranges(const std::vector<DataRange>& ranges);
std::vector<DataRange> decode_ranges(std::string_view blob);

}  // namespace treesnap
