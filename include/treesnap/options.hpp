// Options of the store and of each operation, with their defaults.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "treesnap/transfer.hpp"

namespace treesnap {

enum class DigestAlgorithm {
  sha256,    // default: equals the OCI blob digest, so a push needs no re-hash
  xxh3_128,  // ~10x faster to compute; not collision-resistant: trusted single-tenant stores only
};

// When the store forces data to stable storage. See the comment block in store/object_store.cpp.
enum class SyncPolicy {
  batch,       // default: one syncfs() of the store's file system before a snapshot commits
  per_object,  // fsync every object and its directory as it is published
  none,        // never sync: for scratch stores and benchmarks; a crash may lose snapshots
};

enum class Strategy {
  automatic,  // hardlink read-only files, reflink the rest where possible, else copy
  reflink,
  hardlink,
  copy,
};

const char* to_string(Strategy strategy) noexcept;
const char* to_string(DigestAlgorithm algorithm) noexcept;
const char* to_string(SyncPolicy policy) noexcept;

struct StoreOptions {
  bool create = true;                               // create the store when missing
  DigestAlgorithm digest = DigestAlgorithm::sha256;  // used only when creating
  SyncPolicy sync = SyncPolicy::batch;
  unsigned threads = 0;  // worker threads for hashing and copying; 0 = one per core
};

struct SnapshotOptions {
  std::string name;             // "name" or "name:tag" (tag defaults to "latest")
  bool replace = false;         // point an existing name at the new snapshot
  bool cross_devices = false;   // descend into other mounted file systems
  // Record every file and offset where the source's absolute path occurs, so that a restore with
  // RestoreOptions::relocate can rewrite it. Reads every file (the stat cache is not used).
  bool relocatable = false;
};

// How far a restore has come: regular files whose content is in place, and their bytes.
struct RestoreProgress {
  std::uint64_t files_done = 0, files_total = 0;
  std::uint64_t bytes_done = 0, bytes_total = 0;
};

// What restore does with a target that already exists.
enum class RestoreMode {
  create,  // the target must not exist or be an empty directory (default)
  update,  // bring a tree treesnap restored there to the snapshot (Store::restore)
};

struct RestoreOptions {
  Strategy strategy = Strategy::automatic;
  RestoreMode mode = RestoreMode::create;
  // Update only: replace files changed since treesnap restored them (conflicts otherwise), and
  // files it did not create that stand where the snapshot has an entry; update a target that has
  // no restore record, treating every file in it as such. Never removes a file it did not create.
  bool force = false;
  // A hardlinked file shares its inode's mtime, which is that of the first entry linked to it.
  // strict_metadata links only through inodes whose mtime equals the entry's too (more variants).
  bool strict_metadata = false;
  // Lets the hardlink strategy link writable files (pnpm's behaviour). Hazard: a write through
  // any name changes the content of every tree linked to that inode.
  bool hardlink_writable = false;
  // Fail instead of copying a file's bytes, for callers that need every file shared.
  bool no_copy_fallback = false;
  // Rewrite the source path recorded by a relocatable snapshot to the target's absolute path in
  // every file that holds it; those files are always private copies. Fails with `invalid`
  // before anything is written when the snapshot is not relocatable, or when the new path is
  // longer and binary files hold the old one (the message lists them).
  bool relocate = false;
  // Called about ten times a second while files are restored, and once at the end, from
  // whichever thread finished a file (one call at a time): keep it short.
  std::function<void(const RestoreProgress&)> progress;
};

struct VerifyOptions {
  // Stat every object and link variant and re-hash only those whose stat differs from the
  // fingerprint recorded when its content was last known good (docs/integrity.md). Default:
  // re-hash everything.
  bool fast = false;
  // Only the objects these snapshots reference ("name:tag" or id prefix) and their variants;
  // empty: the whole store.
  std::vector<std::string> names;
};

// Store::status: how a restored tree differs from its snapshot.
struct StatusOptions {
  bool verify = false;  // hash every file too (default: hash only files whose stat changed)
};

// Store::repair: bring a restored tree back to its snapshot.
struct RepairOptions {
  // Other sources of intact bytes, tried in this order after the local ones: a store's directory
  // (its objects/), or "oci://HOST[:PORT]/REPO[:TAG|@DIGEST]". A reference is pulled only when
  // content is still lost after every local source, into a scratch store under the store's tmp/
  // that is removed afterwards: the whole snapshot is downloaded, as into an empty store.
  std::vector<std::string> from;
  RegistryAccess access;          // how to reach the registries of oci:// sources
  bool dry_run = false;           // report what would be done, change nothing
  bool prune = false;             // also remove files and directories the snapshot does not have
};

// Garbage collection (Store::gc). With no target it removes orphans (objects no snapshot
// references and no lease protects) and stale staging files. A target also evicts whole
// snapshots, least recently used first and never pinned ones, until it is met.
struct GcOptions {
  bool dry_run = false;             // plan and report, remove nothing
  std::uint64_t max_size = 0;       // target: store size (recorded disk bytes) at most this; 0 = none
  std::uint64_t min_free_bytes = 0; // target: at least this much free on the store's file system
  double min_free_percent = 0;      // target: at least this share (0-100) free; the larger applies
  std::int64_t grace_seconds = 3600;  // staging files younger than this are kept (1 h)
  bool full = false;  // also sweep files under objects/ and variants/ that no row records: O(store)
};

struct UsageOptions {
  bool exact = false;  // stat every object to find bytes also linked from outside (O(store))
};

}  // namespace treesnap
