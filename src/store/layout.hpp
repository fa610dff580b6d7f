// Every path inside a store is built here and nowhere else (STYLE 6).
//
//   STORE/treesnap.db            SQLite metadata (WAL: -wal and -shm beside it)
//   STORE/treesnap.toml          store configuration (config/settings.cpp)
//   STORE/objects/ab/<hex>       content objects and manifests, read-only, holes kept
//   STORE/variants/ab/<name>     link variants: copies of an object whose mode, owner and xattrs
//                                (and with strict metadata its mtime) equal a snapshot entry's,
//                                handed out as hardlinks; a new generation before the link limit
//   STORE/quarantine/<name>      damaged objects and variants, moved out of objects/ and variants/
//                                by verify (the shard dropped: "<hex>" or "<hex>.<mode>…")
//   STORE/tmp/                   staging (O_TMPFILE, else named temp files), same file system
//
// Sharding: the first byte of the digest (two hex digits) names one of 256 directories, created
// with the store. A million objects gives ~4,000 names per directory, where ext4's htree and XFS's
// B+tree directories stay fast; a deeper split would only add a lookup per object.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "treesnap/entry.hpp"

namespace treesnap::layout {

inline constexpr std::string_view k_database = "treesnap.db";
inline constexpr std::string_view k_config = "treesnap.toml";
inline constexpr std::string_view k_objects = "objects";
inline constexpr std::string_view k_variants = "variants";
inline constexpr std::string_view k_staging = "tmp";
inline constexpr std::string_view k_quarantine = "quarantine";

// "objects/ab/<hex>" or "variants/ab/<name>": how fingerprints and reports name a store file.
std::string store_path(std::string_view top, std::string_view name);
// The name in quarantine/ of "ab/<name>" under objects/ or variants/: "<name>".
std::string quarantine_name(std::string_view sharded_name);

// "ab/<hex>" relative to objects/.
std::string object_name(std::string_view digest);
// The object's name inside its shard directory ("<hex>", NUL-terminated) written into `out`,
// which must hold 2 * digest.size() + 1 chars; its shard is the digest's first byte. For loops
// over every object (verify --fast), which stat with the shard's fd and allocate nothing.
void object_leaf(std::string_view digest, char* out) noexcept;
// "ab/<hex>.<mode octal>.<uid>.<gid>[.m<mtime ns>][.x<xxh64 of xattrs>][.g<generation>]" relative
// to variants/: the mtime only for strict metadata, the generation from 1 on (0 has none).
std::string variant_name(std::string_view digest, const Entry& entry, bool with_mtime, unsigned generation);
// The 256 shard directory names "00" … "ff".
std::vector<std::string> shard_names();
// The index in shard_names() of the digest's shard (its first byte; 0 for an empty digest).
inline std::size_t shard_of(std::string_view digest) noexcept {
  return digest.empty() ? 0 : static_cast<unsigned char>(digest[0]);
}
// A named staging file in tmp/ (O_TMPFILE leaves none): "<purpose>-<pid>-<random>", so that gc
// can tell a live writer's file from a crash's leftover. `purpose` is "stage" or "replace".
std::string staging_name(std::string_view purpose, long pid, std::string_view random);
// The pid in a staging name; 0 when the name carries none (gc then judges by age alone).
long staging_owner(std::string_view name);
// gc --full moves an unrecorded file aside before deleting it: "gc-<pid>-<top>.<shard>.<file>"
// for `name` "<shard>/<file>" under `top` (objects or variants), so that a gc killed in between
// leaves a file that can be put back where it was.
std::string gc_aside_name(long pid, std::string_view top, std::string_view name);
// The (top, "<shard>/<file>") a gc_aside_name came from; nullopt for any other name.
std::optional<std::pair<std::string_view, std::string>> gc_aside_origin(std::string_view aside);
// "<hex>." : every variant of the object with this digest starts so (in the same shard).
std::string variant_prefix(std::string_view digest);
// Parses a file name under objects/ab/ back to raw digest bytes; empty when it is not one.
std::string digest_from_object_name(std::string_view shard, std::string_view file);

}  // namespace treesnap::layout
