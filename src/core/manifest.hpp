// The manifest of a snapshot: its entries in canonical order, encoded as described in
// docs/format.md (varint records inside one zstd frame with a content checksum).
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "treesnap/entry.hpp"
#include "treesnap/options.hpp"
#include "treesnap/result.hpp"

namespace treesnap {

inline constexpr std::uint8_t k_manifest_version = 1;

// A deque, not a vector: a million entries grow without the reallocation copy that would double
// peak memory (the target is under 300 MB for a 1M-entry tree), and references stay valid.
using EntryList = std::deque<Entry>;

struct Manifest {
  DigestAlgorithm algorithm = DigestAlgorithm::sha256;
  EntryList entries;  // canonical order: entries[0] is the root directory ""
};

// Canonical order: pre-order depth-first, siblings by name bytes. Equivalent to comparing paths
// with '/' sorting below every other byte, so a parent always precedes its children.
bool path_less(std::string_view a, std::string_view b) noexcept;

std::string encode_manifest(const Manifest& manifest);  // compressed bytes
// Parses and bounds-checks; never trusts a count or length it reads. Does not validate paths:
// see validate_manifest.
Result<Manifest> decode_manifest(std::string_view compressed);

}  // namespace treesnap
