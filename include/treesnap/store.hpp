// treesnap's public API: a content-addressed store of directory-tree snapshots.
//
//   auto store = treesnap::Store::open("/var/lib/treesnap", {});
//   auto snap = store->snapshot("./env", {.name = "myenv:v1"});
//   auto done = store->restore("myenv:v1", "./out", {});
//
// Thread safety: a Store is immutable after open; every call opens its own database connection,
// so one Store may be used from several threads, and several processes may share a store
// directory (tests/unit/concurrency_test.cpp runs both under ThreadSanitizer; tests/cli/soak.sh
// runs processes, and docs/cli.md, "Concurrent use", lists what one can see of another's work). Calls block; none spawns work that outlives it, except the auto-gc thread that
// start_auto_gc() starts and stop_auto_gc() (or the destructor) stops. Snapshot and restore
// check the watermarks when they finish (Store::auto_gc).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "treesnap/entry.hpp"
#include "treesnap/options.hpp"
#include "treesnap/result.hpp"
#include "treesnap/transfer.hpp"

namespace treesnap {

struct SnapshotSummary {
  std::string name;             // "name:tag"
  std::string id;               // hex of the manifest digest (the snapshot's identity)
  std::string manifest_digest;  // "sha256:<hex>" or "xxh3-128:<hex>"
  std::uint64_t entries = 0;    // every entry, directories included
  std::uint64_t files = 0;      // regular files (hardlinks not counted twice)
  std::uint64_t bytes = 0;      // logical bytes of those files
  std::uint64_t new_objects = 0;   // objects this snapshot added to the store
  std::uint64_t new_bytes = 0;     // logical bytes of those objects
  std::uint64_t hashed_files = 0;  // files read and hashed (the rest came from the stat cache)
  std::string relocation_root;      // snapshot --relocatable (snapshot only): the path recorded…
  std::uint64_t relocated_files = 0;  // …and how many files hold it
  std::int64_t created_ns = 0;
  std::int64_t last_used_ns = 0;
  double seconds = 0;  // duration of the call that produced it (snapshot only)
};

struct StrategyCount {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
};

// A file that did not get the strategy first chosen for it, and why.
struct Fallback {
  std::string path;
  Strategy from = Strategy::hardlink;
  Strategy to = Strategy::copy;
  int sys_errno = 0;   // the error that made the rung fail; 0 for a choice by policy
  std::string policy;  // with sys_errno 0: which rule declined the rung
};

// What a (store, target) pair of file systems can do, as found by trying the operations on
// throwaway files; recorded in the store and reused by every restore into that pair.
struct ProbeReport {
  std::string store_fs, target_fs;      // statfs type: "ext4", "xfs", "btrfs", "tmpfs", "overlay", "nfs", … or "0x<magic>"
  std::string store_fsid, target_fsid;  // statfs f_fsid in hex (stable across reboots, unlike st_dev)
  int link_errno = 0;        // 0: a store file can be hardlinked into the target, else why not
  int reflink_errno = 0;     // 0: FICLONE works from the store into the target
  int copy_range_errno = 0;  // 0: copy_file_range works between them
  std::int64_t probed_ns = 0;
  bool fresh = false;     // probed by this call rather than read from the store's record
  bool reprobed = false;  // restore only: an operation failed in a way the record did not predict,
                          // so the pair was probed again and the record replaced
};

// An entry `restore --update` left alone because treesnap did not create what is there, or it
// changed since treesnap restored it (without RestoreOptions::force).
struct UpdateConflict {
  std::string path;    // relative to the tree, manifest bytes
  std::string reason;  // "changed since restored (content)", "not created by treesnap", …
};

// What an update changed. Counts are of entries other than directories; the lists hold the first
// kMaxListed paths of each.
struct UpdateReport {
  bool performed = false;  // this summary is an update's
  std::uint64_t kept = 0;      // already equal to the snapshot's entry: untouched (same inode)
  std::uint64_t updated = 0;   // replaced atomically (new content in place by rename)
  std::uint64_t added = 0;     // placed where nothing was
  std::uint64_t removed = 0;   // the snapshot no longer has them
  std::uint64_t directories_added = 0, directories_removed = 0;
  std::uint64_t conflicts = 0;
  std::vector<std::string> updated_paths, added_paths, removed_paths;
  std::vector<UpdateConflict> conflict_list;
  static constexpr std::size_t kMaxListed = 10;
};

struct RestoreSummary {
  std::string name;
  std::string id;
  std::filesystem::path target;
  std::uint64_t entries = 0;
  StrategyCount hardlinked;
  StrategyCount reflinked;
  StrategyCount copied;
  std::uint64_t empty_files = 0;      // created fresh, never linked
  std::uint64_t bytes_written = 0;    // data bytes written to the target file system
  std::uint64_t bytes_shared = 0;     // data bytes shared with the store (link or reflink)
  std::vector<Fallback> fallbacks;    // the first kMaxReportedFallbacks
  std::uint64_t fallback_count = 0;   // all of them
  ProbeReport probe;                  // the pair's capabilities this restore used
  StrategyCount relocated;            // --relocate: files rewritten (also counted as copied; bytes as rewritten)
  std::string relocated_from, relocated_to;  // --relocate: the recorded source path and the new one
  UpdateReport update;                // RestoreMode::update; the strategy figures count placed files only
  double seconds = 0;
  static constexpr std::size_t kMaxReportedFallbacks = 20;
};

struct BadObject {
  std::string digest;  // "sha256:<hex>"
  std::string path;    // path of the file inside the store ("objects/ab/<hex>", "variants/…")
  std::string reason;  // "content does not match its digest", "missing", "size 0, expected 812", …
  std::string quarantined;  // where it was moved ("quarantine/<name>"); empty if it was missing
  std::vector<std::string> snapshots;  // "name:tag" of every snapshot that needs the content
  std::vector<std::string> paths;      // "name:tag:path" of each file (or "(manifest)") it serves
  std::vector<std::string> trees;      // restored files sharing the damaged inode (hardlinks)
};

// A store file whose content was intact but whose mode or mtime had changed (put back).
struct FixedFile {
  std::string path;
  std::string what;  // "mode 0644 -> 0444", "mtime"
};

struct VerifySummary {
  bool fast = false;
  std::uint64_t objects = 0;   // store files checked (objects, manifests and link variants)
  std::uint64_t hashed = 0;    // of those, re-hashed (all of them unless fast)
  std::uint64_t bytes = 0;     // logical bytes re-hashed
  std::vector<BadObject> bad;  // empty when the store is intact; each now in quarantine
  std::vector<FixedFile> fixed;  // metadata put back; content intact
  double seconds = 0;
  bool clean() const { return bad.empty() && fixed.empty(); }
};

// One difference between a restored tree and its snapshot.
enum class ChangeKind {
  content,   // bytes differ (or the file is unreadable), or a symlink's target
  metadata,  // mode, owner or mtime
  link,      // intact content, but no longer the inode it was linked to (hardlink structure broken)
  type,      // another kind of file now
  removed,
  added,
};
const char* to_string(ChangeKind kind) noexcept;

struct TreeChange {
  std::string path;  // relative to the tree, manifest bytes
  ChangeKind kind = ChangeKind::content;
  std::string detail;
};

struct TreeStatus {
  std::filesystem::path target;
  std::string snapshot;  // "name:tag" restored
  std::string id;
  std::int64_t restored_ns = 0;
  std::uint64_t entries = 0;  // manifest entries checked
  std::uint64_t hashed = 0;   // files read and hashed
  std::vector<TreeChange> changes;  // manifest order, then added paths
  double seconds = 0;
  bool clean() const { return changes.empty(); }
};

struct RepairAction {
  std::string path;
  std::string action;  // "rewrote in place", "replaced", "relinked", "recreated", "fixed metadata",
                       // "removed", "healed store file", "released from quarantine"
  std::string source;  // where the intact bytes came from, when bytes were written
  std::string detail;
};

// Content no intact copy was found for.
struct LostContent {
  std::string digest;
  std::vector<std::string> paths;      // in this tree
  std::vector<std::string> snapshots;  // "name:tag" that need it
  std::vector<std::string> trees;      // restored files holding it (target/path)
};

struct RepairReport {
  std::filesystem::path target;
  bool dry_run = false;
  std::vector<RepairAction> actions;
  std::vector<LostContent> lost;
  std::vector<TreeChange> unrepaired;  // changes left (lost content, added files without prune)
  double seconds = 0;
  bool complete() const { return lost.empty(); }
};

// A snapshot garbage collection evicted (or would evict, in a dry run).
struct EvictedSnapshot {
  std::string name;
  std::string id;
  std::int64_t last_used_ns = 0;
  std::uint64_t objects = 0;      // objects it alone referenced, removed with it
  std::uint64_t bytes = 0;        // their recorded disk bytes (what the store's size drops by)
  std::uint64_t freed_bytes = 0;  // what the file system gets back: inodes not linked elsewhere
};

struct GcReport {
  bool dry_run = false;
  std::vector<EvictedSnapshot> evicted;
  std::uint64_t objects_removed = 0;   // orphans removed (or that would be), evictions' included
  std::uint64_t bytes_removed = 0;     // their recorded disk bytes
  std::uint64_t bytes_freed = 0;       // blocks really released: objects and variants whose inode
                                       // had no other link (a restored tree's hardlink frees 0)
  std::uint64_t variants_removed = 0;
  std::uint64_t orphans_kept = 0;      // orphans a live lease still protects
  std::uint64_t staging_removed = 0;   // stale files in tmp/
  std::uint64_t staging_bytes = 0;
  std::uint64_t unrecorded_removed = 0;  // --full: files no row records
  std::uint64_t unrecorded_bytes = 0;
  std::uint64_t leases_cleaned = 0;    // rows of dead processes deleted
  std::uint64_t quarantine_removed = 0;       // files in quarantine/ no longer recorded (released)
  std::uint64_t restore_records_removed = 0;  // records of restored trees that no longer exist
  std::uint64_t store_bytes_before = 0, store_bytes_after = 0;  // recorded (after: estimated in a dry run)
  std::uint64_t fs_free_before = 0, fs_free_after = 0;          // statvfs (after: estimated in a dry run)
  bool target_met = true;  // false when pins, leases or the lack of snapshots left the target unmet
  double seconds = 0;
};

struct SnapshotUsage {
  std::string name;
  std::string id;
  bool pinned = false;
  std::int64_t last_used_ns = 0;
  std::uint64_t unique_objects = 0;  // objects only this snapshot references
  std::uint64_t unique_bytes = 0;    // their recorded disk bytes: what evicting it alone removes
};

struct UsageReport {
  std::uint64_t objects = 0;         // recorded objects (manifests included)
  std::uint64_t store_bytes = 0;     // their recorded disk bytes (variants and the database excluded)
  std::uint64_t shared_bytes = 0;    // bytes of objects two or more snapshots reference
  std::uint64_t orphan_objects = 0;  // what `gc` without a target would remove…
  std::uint64_t orphan_bytes = 0;    // …and the bytes it would remove
  std::vector<SnapshotUsage> snapshots;  // least recently used first: eviction order
  std::uint64_t fs_size = 0, fs_free = 0;  // the store's file system (statvfs)
  int high_watermark = 0, low_watermark = 0;  // percent of the file system, from treesnap.toml
  bool exact = false;
  std::uint64_t linked_outside_bytes = 0;  // exact only: object bytes whose inode has other links
  double seconds = 0;
};

class Store {
 public:
  // Opens the store at `dir`, creating it (with options.digest) when it does not exist and
  // options.create is set. Fails with `invalid` if `dir` holds something that is not a store,
  // `corrupt` if its metadata does not parse, `unsupported` for a newer store format.
  static Result<Store> open(const std::filesystem::path& dir, const StoreOptions& options);

  // The store a CLI uses when none is named: $TREESNAP_STORE, else /var/lib/treesnap for root,
  // else $XDG_DATA_HOME/treesnap, else ~/.local/share/treesnap.
  static std::filesystem::path default_path();

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::filesystem::path& path() const;
  DigestAlgorithm digest_algorithm() const;

  // Snapshots the tree at `source` under options.name. The snapshot is visible only after every
  // object it needs is durable (per the store's SyncPolicy). Fails with `exists` when the name is
  // taken (unless options.replace), `io` naming the path for an unreadable or vanishing file.
  Result<SnapshotSummary> snapshot(const std::filesystem::path& source,
                                   const SnapshotOptions& options) const;

  // Restores snapshot `name` ("name:tag", or an id prefix) into `target`, which must not exist or
  // be an empty directory. The tree is built in a temporary sibling and renamed into place, so a
  // failure leaves no partial tree under `target`. Fails with `invalid` for a hostile manifest
  // (nothing written), `exists` for a non-empty target, `corrupt` for a damaged object.
  //
  // With options.mode == RestoreMode::update, `target` holds a tree treesnap restored (its restore
  // record; `not_found` without one unless options.force) and is brought to the snapshot in place:
  // entries equal to the snapshot's are kept (same inode), entries unchanged since the restore are
  // replaced atomically (built in a sibling `.NAME.treesnap-update`, renamed over) or removed,
  // directories are created and removed (when empty). What the user changed or added is left
  // alone and reported in summary.update.conflicts unless options.force (success all the same:
  // the caller decides; the CLI exits 1). An interrupted update can be run again: entries it had
  // already placed equal the snapshot's and are kept. The restore record then describes the new
  // snapshot, without the conflicting files. A missing or empty target is restored as usual.
  // `invalid` with options.relocate.
  Result<RestoreSummary> restore(const std::string& name, const std::filesystem::path& target,
                                 const RestoreOptions& options) const;

  // Probes the file system pair (this store, `dir`'s file system) with throwaway files in `dir`
  // and the store's tmp/, records the result as a restore would, and returns it. `dir` must be
  // a writable directory.
  Result<ProbeReport> probe(const std::filesystem::path& dir) const;

  // Every snapshot, sorted by name.
  Result<std::vector<SnapshotSummary>> list() const;
  // One snapshot by "name:tag" or id prefix; `not_found` or `invalid` (ambiguous prefix).
  Result<SnapshotSummary> show(const std::string& name) const;
  // The manifest entries of a snapshot, in manifest order.
  Result<std::vector<Entry>> entries(const std::string& name) const;
  // Removes the name at once (O(its objects) in one transaction); objects only it referenced
  // become orphans, removed by the next gc.
  Result<void> remove(const std::string& name) const;
  // Pins or unpins a snapshot: gc never evicts a pinned one (remove still removes it).
  Result<void> pin(const std::string& name, bool pinned) const;

  // Garbage collection: see GcOptions. Safe beside snapshots and restores in any process: it
  // never removes an object a live lease protects, and holds no lock while it deletes files.
  // Fails with `invalid` for a bad option.
  Result<GcReport> gc(const GcOptions& options) const;
  // Store size, shared and unique bytes, what gc would free: from the database's running totals
  // (milliseconds at a million objects), unless options.exact.
  Result<UsageReport> usage(const UsageOptions& options) const;
  // One automatic round: when the store's file system is fuller than the high watermark of
  // treesnap.toml, evicts until it is at most the low watermark; returns the report, or nothing
  // (an empty optional) when usage was under the high watermark.
  Result<std::optional<GcReport>> auto_gc() const;
  // Runs auto_gc() (orphans and stale staging included) every `interval` on a background thread
  // until stop_auto_gc() or destruction. Errors are dropped; the next round tries again.
  // Not thread-safe with itself: call from the owner's thread.
  void start_auto_gc(std::chrono::milliseconds interval);
  void stop_auto_gc();
  // Checks every object and link variant (or those of options.names): re-hashes each, or with
  // options.fast only those whose stat differs from their fingerprint. A damaged file is moved to
  // quarantine/ (the database marks it; restore then fails with `corrupt` naming it) and reported
  // with the snapshots, paths and restored trees that need it; a file with intact content but a
  // changed mode or mtime is put back. Damage is reported in the summary, not as an error.
  Result<VerifySummary> verify(const VerifyOptions& options) const;
  // How the tree restored at `target` differs from its snapshot, from its restore record plus a
  // stat of each path (and a hash of files whose stat changed, or of all with options.verify).
  // `not_found` when no restore into `target` is recorded.
  Result<TreeStatus> status(const std::filesystem::path& target, const StatusOptions& options) const;
  // Brings the tree at `target` back to its snapshot (docs/integrity.md, "Repair"): an inode with
  // other names is rewritten in place so every name heals at once; a file only this tree has is
  // replaced atomically. Intact bytes come from the store, the snapshot's source tree, trees
  // restored by copy or reflink, variants, and options.from, each hashed before use. Content
  // found nowhere is listed in `lost`. A second run changes nothing. An oci:// source is pulled
  // only when content is lost after the local sources, then the repair runs again with it; a
  // failed pull is returned as its error (what the first run fixed stays fixed), and the scratch
  // store it went into is removed either way.
  Result<RepairReport> repair(const std::filesystem::path& target, const RepairOptions& options) const;

  // Pushes snapshot `name` to `reference` ("oci://HOST[:PORT]/REPO:TAG"): objects of at least
  // 1 MiB as blobs of their own (skipped when the registry has them), the rest in packs, reusing
  // the packs of the tag's current manifest and of options.bases; then the OCI manifest under the
  // tag. Fails with `unsupported` for an xxh3-128 store, `not_found` for an unknown name,
  // `permission` when the registry refuses the credentials, `io` after the retry budget.
  Result<TransferSummary> push(const std::string& name, const std::string& reference,
                               const PushOptions& options) const;
  // Pulls the snapshot at `reference` (a tag or a digest) into this store: the manifest is
  // checked (digest, then validate_manifest: hostile paths are `invalid`, nothing is written),
  // then only the objects the store lacks are fetched (Range GETs into packs), each checked
  // against its sha256 before it is published; the snapshot is recorded under options.name once
  // every object is durable. Objects verified by an interrupted pull are not fetched again.
  // Fails with `corrupt` for bytes that do not match, `exists` when the name points elsewhere
  // (unless options.replace), `unsupported` for an xxh3-128 store.
  Result<TransferSummary> pull(const std::string& reference, const PullOptions& options) const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace treesnap
