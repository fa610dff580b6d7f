// Options and summaries of Store::push and Store::pull: snapshots to and from OCI registries
// (docs/format.md section 5 for the on-registry form, docs/remote.md for the transport).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace treesnap {

// How far a transfer has come: objects placed (sent, fetched or found present) and their bytes.
struct TransferProgress {
  std::uint64_t objects_done = 0, objects_total = 0;
  std::uint64_t bytes_done = 0, bytes_total = 0;
};

// How to reach a registry. Unset fields fall back to the store's treesnap.toml table
// [registry."HOST:PORT"], then to the defaults.
struct RegistryAccess {
  // Plain HTTP instead of HTTPS. Default: plain for localhost, 127.0.0.1 and ::1 only.
  std::optional<bool> plain_http;
  unsigned jobs = 4;  // transfers at once, each with its own connection
  // HTTP proxy for blob downloads (Dragonfly's dfdaemon: "http://127.0.0.1:4001"); empty: none.
  std::string proxy;
  // Header lines added to blob downloads ("X-Dragonfly-Use-P2P: true"); appended to the config's.
  std::vector<std::string> headers;
  // Mirror base URLs tried before the registry for downloads; appended to the config's.
  std::vector<std::string> mirrors;
};

struct PushOptions {
  RegistryAccess access;
  // Another repository of the same registry that may hold the large objects (cross-repository
  // mount instead of upload); empty: none.
  std::string mount_from;
  // Snapshots on the same repository ("oci://…" references) whose packs may be reused, besides
  // the destination tag's current manifest, which is always tried.
  std::vector<std::string> bases;
  // Called about ten times a second from worker threads (one call at a time), and at the end.
  std::function<void(const TransferProgress&)> progress;
};

struct PullOptions {
  RegistryAccess access;
  std::string name;      // local "name:tag"; default: the repository and the tag of the reference
  bool replace = false;  // point an existing local name at the pulled snapshot
  std::function<void(const TransferProgress&)> progress;
};

struct TransferSummary {
  std::string reference;        // the registry reference, pinned by digest: "oci://h/r@sha256:…"
  std::string oci_digest;       // digest of the OCI manifest
  std::string name;             // the local snapshot ("name:tag")
  std::string id;               // hex of the snapshot's manifest digest
  std::uint64_t objects = 0;        // distinct content objects of the snapshot
  std::uint64_t bytes = 0;          // their logical bytes
  std::uint64_t objects_moved = 0;  // sent (push) or fetched (pull)
  std::uint64_t bytes_moved = 0;    // their logical bytes
  std::uint64_t objects_skipped = 0;  // already on the registry (push) or in the store (pull)
  std::uint64_t objects_resumed = 0;  // pull: found intact in the store from an interrupted pull
  std::uint64_t packs_new = 0, packs_reused = 0;  // push: packs uploaded, packs of earlier pushes referred to
  std::uint64_t standalone_objects = 0;            // objects that are blobs of their own
  std::uint64_t requests = 0, retries = 0;
  std::uint64_t http_bytes_sent = 0, http_bytes_received = 0;  // every body, manifests and indexes included
  std::uint64_t blobs_uploaded = 0, blobs_skipped = 0, blobs_mounted = 0;
  double seconds = 0;
};

}  // namespace treesnap
