// Which registry copy each object of a push gets: a blob of its own, a pack already on the
// registry, or a new pack. Pure planning (no I/O), so a million-object plan can be tested
// without a million files.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "transfer/common.hpp"
#include "transfer/oci_format.hpp"

namespace treesnap::transfer {

// What the registry already holds: the packs of the OCI manifests a push builds on.
struct BaseIndex {
  std::vector<Pack> packs;
  // Per pack: 1 when it lies in the --mount-from repository only (reused by mounting it).
  std::vector<char> mount;
  std::unordered_map<std::string, std::size_t> objects;  // raw sha256 -> index into packs
  // Raw store digest -> raw sha256, from the store digests of format 2 (pack indexes and object
  // descriptors): what a push from an xxh3-128 store need not hash again.
  std::unordered_map<std::string, std::string> sha256_of;
};

struct Plan {
  std::vector<ObjectRef> standalone;
  std::vector<std::size_t> reused_packs;          // into BaseIndex::packs, in base order
  std::vector<std::vector<ObjectRef>> new_packs;  // objects of each new pack, in manifest order
  std::uint64_t reused_objects = 0, reused_bytes = 0;
};

// `all` must have their sha256 set. Objects of at least k_standalone_threshold are blobs of their
// own, unless the OCI manifest would exceed k_max_layers: then the smallest of them are packed.
// Small objects found in `base` reuse its pack; the rest fill new packs in order, each closed at
// k_pack_target logical bytes or k_pack_max_objects objects.
Plan make_plan(const std::vector<ObjectRef>& all, const BaseIndex& base);

// The layers the OCI manifest of `plan` will have.
std::size_t layer_count(const Plan& plan);

}  // namespace treesnap::transfer
