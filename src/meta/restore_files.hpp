#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meta/database.hpp"

namespace treesnap {

// restore_files.entries, the packed form of a restore record's files (schema 5; the grammar is in
// docs/format.md and beside pack_restore_files). Packing never fails but for the compressor;
// unpacking fails with ErrorCode::corrupt on a bad magic, size, zstd frame or checksum.
Result<std::string> pack_restore_files(const std::vector<RestoreEntryRecord>& entries);
// The entries of a packed record, in the order packed; with `digest` set, only the files holding it.
Result<std::vector<RestoreEntryRecord>> unpack_restore_files(std::string_view packed,
                                                             std::optional<std::string_view> digest = std::nullopt);

}  // namespace treesnap
