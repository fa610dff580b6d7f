// The manifest of a snapshot: its entries in canonical order, encoded as described in
// docs/format.md (varint records inside one zstd frame with a content checksum).
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/relocation.hpp"
#include "treesnap/entry.hpp"
#include "treesnap/options.hpp"
#include "treesnap/result.hpp"

namespace treesnap {

// Version 2 adds the relocation section; a snapshot without one is still written as version 1, so
// a plain snapshot keeps the id it had before version 2 existed. Both are read.
inline constexpr std::uint8_t k_manifest_version = 2;

// A deque, not a vector: a million entries grow without the reallocation copy that would double
// peak memory (the target is under 300 MB for a 1M-entry tree), and references stay valid.
using EntryList = std::deque<Entry>;

struct Manifest {
  DigestAlgorithm algorithm = DigestAlgorithm::sha256;
  EntryList entries;  // canonical order: entries[0] is the root directory ""
  // A relocatable snapshot (snapshot --relocatable): the absolute path it was taken from, and the
  // files that hold it, by ascending entry index. Empty root: not relocatable (version 1).
  std::string relocation_root;
  std::vector<Relocation> relocations;
};

// Canonical order: pre-order depth-first, siblings by name bytes. Equivalent to comparing paths
// with '/' sorting below every other byte, so a parent always precedes its children.
bool path_less(std::string_view a, std::string_view b) noexcept;

// Receives output a piece at a time; an error stops the producer and is returned by it.
using ByteSink = std::function<Result<void>(std::string_view bytes)>;

// Encodes and compresses the manifest, handing the compressed bytes to `sink` in pieces of up to
// ZSTD_CStreamOutSize() (128 KiB), so the whole manifest never exists in memory. Fails only with
// what `sink` returns (or `io` if zstd cannot allocate).
Result<void> encode_manifest(const Manifest& manifest, const ByteSink& sink);
std::string encode_manifest(const Manifest& manifest);  // the same bytes in one string

// Parses and bounds-checks; never trusts a count or length it reads. Decompresses a window at a
// time, so memory is the entries plus ~256 KiB. Does not validate paths: see validate_manifest.
Result<Manifest> decode_manifest(std::string_view compressed);

}  // namespace treesnap
