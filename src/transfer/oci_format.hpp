// The on-registry form of a snapshot (docs/format.md, section 5): an OCI image manifest whose
// config blob is the snapshot's manifest object, whose layers are large objects as blobs of
// their own and packs of small objects, each pack preceded by its index. Building and parsing
// live here and nowhere else; nothing here does I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "treesnap/result.hpp"

namespace treesnap::transfer {

inline constexpr std::string_view k_oci_manifest_type = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view k_artifact_type = "application/vnd.treesnap.snapshot.v1";
inline constexpr std::string_view k_config_type = "application/vnd.treesnap.manifest.v1+zstd";
inline constexpr std::string_view k_object_type = "application/vnd.treesnap.object.v1";
inline constexpr std::string_view k_pack_type = "application/vnd.treesnap.pack.v1";
inline constexpr std::string_view k_pack_index_type = "application/vnd.treesnap.pack-index.v1+zstd";
inline constexpr int k_format_version = 1;

// Files of at least this many bytes are blobs of their own (deduplicated by the registry across
// snapshots and tags); smaller ones go into packs. See docs/format.md for the measurement.
inline constexpr std::uint64_t k_standalone_threshold = 1 << 20;
// A pack is closed once its objects' logical bytes reach this.
inline constexpr std::uint64_t k_pack_target = 8 << 20;
// Layers per OCI manifest: ~190 bytes of JSON each, so 12,000 keep it near 2.3 MB, under the
// 4 MiB that registries commonly accept. Beyond it the smallest large files go into packs.
inline constexpr std::size_t k_max_layers = 12'000;
// Largest object whose packed copy may be zstd-compressed (bounds a pull's memory per object).
inline constexpr std::uint64_t k_max_compressed_object = 16 << 20;

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  std::uint64_t size = 0;
};

enum class Codec : std::uint8_t { raw = 0, zstd = 1 };

// Where one object lies inside a pack.
struct PackedObject {
  std::string digest;          // raw sha256 of the object's logical bytes (32 bytes)
  std::uint64_t offset = 0;    // in the pack
  std::uint64_t stored = 0;    // bytes in the pack
  std::uint64_t size = 0;      // logical bytes
  Codec codec = Codec::raw;
};

struct PackIndex {
  std::string pack_digest;  // "sha256:<hex>" of the pack blob this index describes
  std::uint64_t pack_size = 0;
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
  std::string name;                 // the name it was pushed from (informational)
  std::string created;              // RFC 3339
};

std::string encode_pack_index(const PackIndex& index);
// Refuses (corrupt) a bad magic, version (unsupported), counts beyond the bytes, objects outside
// the pack or overlapping, unknown codecs, compressed objects above k_max_compressed_object.
Result<PackIndex> decode_pack_index(std::string_view compressed);

std::string encode_oci_manifest(const OciSnapshot& snapshot);
// Refuses (invalid) JSON that is not a treesnap snapshot of a known version, descriptors with bad
// digests or media types, and an index not followed by its pack.
Result<OciSnapshot> decode_oci_manifest(std::string_view bytes);

// Compresses an object's bytes for a pack when that saves at least 1/8; empty otherwise.
std::string compress_if_smaller(std::string_view bytes);
// Decompresses a packed object that must decode to exactly `size` bytes (corrupt otherwise).
Result<std::string> decompress_object(std::string_view stored, std::uint64_t size);

}  // namespace treesnap::transfer
