// Push: a local snapshot to an OCI registry in the format of transfer/oci_format.hpp.
#pragma once

#include <string>

#include "core/manifest.hpp"
#include "remote/registry.hpp"
#include "store/object_store.hpp"
#include "treesnap/transfer.hpp"

namespace treesnap::transfer {

// Pushes `manifest` (stored as object `manifest_digest`, raw, in the store's algorithm) to
// `client`'s repository under `tag`. The caller holds a lease that keeps the snapshot's objects.
// Reads every small object it packs and checks its digest on the way; large ones go as they are
// and the registry checks their sha256. From an xxh3-128 store every object is named by its
// sha256 (taken from the registry's format 2 store digests, or read and hashed), and the config
// is the manifest with sha256 digests.
Result<TransferSummary> push_snapshot(const ObjectStore& objects, const Manifest& manifest,
                                      const std::string& manifest_digest, const std::string& name,
                                      remote::RegistryClient& client, const std::string& tag,
                                      const PushOptions& options);

}  // namespace treesnap::transfer
