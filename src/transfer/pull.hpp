// Pull: a snapshot from an OCI registry into the local store, fetching only what it lacks.
#pragma once

#include <string>

#include "meta/database.hpp"
#include "meta/lease.hpp"
#include "remote/registry.hpp"
#include "store/object_store.hpp"
#include "treesnap/transfer.hpp"

namespace treesnap::transfer {

// Pulls `reference` (tag or digest of `client`'s repository) and records it as name:tag. The
// caller holds `lease`, taken before this call. Order: OCI manifest → config (the snapshot
// manifest; sha256 checked, decoded, validate_manifest) → objects the store lacks (each checked
// against its sha256, published through staging under the store's digest) → the manifest object
// (the config itself in a sha256 store, else the config with store digests) → sync → one
// transaction adding the snapshot.
Result<TransferSummary> pull_snapshot(const ObjectStore& objects, Database& db, Lease& lease,
                                      remote::RegistryClient& client, const std::string& reference,
                                      const std::string& name, const std::string& tag,
                                      const PullOptions& options);

}  // namespace treesnap::transfer
