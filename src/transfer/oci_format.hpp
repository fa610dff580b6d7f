// The on-registry form of a snapshot (docs/format.md, section 5): an OCI image manifest whose
// config blob is the snapshot's manifest object, whose layers are large objects as blobs of
// their own and packs of small objects, each pack preceded by its index. Building and parsing
// live here and nowhere else; nothing here does I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "treesnap/options.hpp"
#include "treesnap/result.hpp"

namespace treesnap::transfer {

inline constexpr std::string_view k_oci_manifest_type = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view k_artifact_type = "application/vnd.treesnap.snapshot.v1";
inline constexpr std::string_view k_config_type = "application/vnd.treesnap.manifest.v1+zstd";
inline constexpr std::string_view k_object_type = "application/vnd.treesnap.object.v1";
inline constexpr std::string_view k_pack_type = "application/vnd.treesnap.pack.v1";
inline constexpr std::string_view k_pack_index_type = "application/vnd.treesnap.pack-index.v1+zstd";
// Format 1: everything named by sha256 only. Format 2 adds each object's digest in the pushing
// store's own algorithm (xxh3-128) beside its sha256: pack index version 2 and a descriptor
// annotation. A push from a sha256 store still writes format 1, byte for byte as before.
inline constexpr int k_format_version = 2;
inline constexpr std::string_view k_store_digest_annotation = "dev.treesnap.store-digest";

// Files of at least this many bytes are blobs of their own (deduplicated by the registry across
// snapshots and tags); smaller ones go into packs. See docs/format.md for the measurement.
inline constexpr std::uint64_t k_standalone_threshold = 1 << 20;
// A pack is closed once its objects' logical bytes reach this, or once it holds
// k_pack_max_objects: that bounds a pack index (~80 bytes an object decoded, so ~5 MB) however
// small the files are; a million tiny files make 16 packs and 16 index blobs.
inline constexpr std::uint64_t k_pack_target = 8 << 20;
inline constexpr std::size_t k_pack_max_objects = 65'536;
// Layers per OCI manifest: ~190 bytes of JSON each, so 12,000 keep it near 2.3 MB, under the
// 4 MiB that registries commonly accept. Beyond it the smallest large files go into packs.
inline constexpr std::size_t k_max_layers = 12'000;
// Largest object whose packed copy may be zstd-compressed (bounds a pull's memory per object).
inline constexpr std::uint64_t k_max_compressed_object = 16 << 20;

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  std::uint64_t size = 0;
  // Of an object layer pushed from a store of another algorithm: its digest there,
  // "xxh3-128:<hex>" (the annotation dev.treesnap.store-digest); empty otherwise.
  std::string store_digest;
};

enum class Codec : std::uint8_t { raw = 0, zstd = 1 };

// Where one object lies inside a pack.
struct PackedObject {
  std::string digest;          // raw sha256 of the object's logical bytes (32 bytes)
  std::string store_digest;    // raw digest in PackIndex::store_algorithm; empty when none
  std::uint64_t offset = 0;    // in the pack
  std::uint64_t stored = 0;    // bytes in the pack
  std::uint64_t size = 0;      // logical bytes
  Codec codec = Codec::raw;
};

struct PackIndex {
  std::string pack_digest;  // "sha256:<hex>" of the pack blob this index describes
  std::uint64_t pack_size = 0;
  // The pushing store's algorithm when it is not sha256: every object then carries its digest
  // there too (index version 2). nullopt: sha256 only (version 1).
  std::optional<DigestAlgorithm> store_algorithm;
  std::vector<PackedObject> objects;  // by offset, non-overlapping, inside the pack
};

struct Pack {
  Descriptor index;  // the index blob
  Descriptor pack;   // the pack blob
};

// What a snapshot's OCI manifest says.
struct OciSnapshot {
  Descriptor config;               // the snapshot manifest object
  std::vector<Pack> packs;
  std::vector<Descriptor> objects;  // standalone objects: digest = sha256 of the content
  // Format 2: pushed from a store of another algorithm, whose digests the pack indexes and
  // object descriptors carry beside the sha256.
  bool store_digests = false;
  std::string name;                 // the name it was pushed from (informational)
  std::string created;              // RFC 3339
};

std::string encode_pack_index(const PackIndex& index);
// Refuses (corrupt) a bad magic, version (unsupported), counts beyond the bytes, objects outside
// the pack or overlapping, unknown codecs, compressed objects above k_max_compressed_object.
Result<PackIndex> decode_pack_index(std::string_view compressed);

// Format 2 when some object carries a store digest, else format 1.
std::string encode_oci_manifest(const OciSnapshot& snapshot);
// Refuses (invalid) JSON that is not a treesnap snapshot of format 1 or 2, descriptors with bad
// digests, store digests or media types, and an index not followed by its pack.
Result<OciSnapshot> decode_oci_manifest(std::string_view bytes);

// Compresses an object's bytes for a pack when that saves at least 1/8; empty otherwise.
std::string compress_if_smaller(std::string_view bytes);
// Decompresses a packed object that must decode to exactly `size` bytes (corrupt otherwise).
Result<std::string> decompress_object(std::string_view stored, std::uint64_t size);

}  // namespace treesnap::transfer
