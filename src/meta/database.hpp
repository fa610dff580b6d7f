// The store's metadata in SQLite (WAL mode, so readers never block the writer and several
// processes share one store). Schema and its reasons: docs/format.md, "Metadata database".
// One Database is one connection: use it from one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "treesnap/result.hpp"
#include "util/error.hpp"
#include "util/posix.hpp"

namespace treesnap {

inline constexpr int k_schema_version = 8;

struct SnapshotRecord {
  std::int64_t row_id = 0;
  std::string name;
  std::string tag;
  std::string manifest;  // raw digest bytes
  std::int64_t created_ns = 0;
  std::int64_t last_used_ns = 0;
  std::uint64_t entries = 0, files = 0, bytes = 0, new_objects = 0, new_bytes = 0;
  bool pinned = false;
  // Objects only this snapshot references and the disk bytes they hold: what evicting it frees
  // (kept by triggers, see meta/schema.cpp).
  std::uint64_t unique_objects = 0, unique_bytes = 0;
  std::string source;  // absolute path of the snapshotted tree (schema 3; empty before)
};

struct ObjectRecord {
  std::string digest;
  std::uint64_t size = 0;
  // Bytes the object's inode occupies (st_blocks * 512 when it was published); 0 = unknown, then
  // the size rounded up to 4 KiB blocks is recorded.
  std::uint64_t disk_bytes = 0;
  // The published inode's stat when this snapshot published the object (its content was hashed
  // while written): recorded as its fingerprint, and the object leaves quarantine if it was in.
  std::optional<FileStamp> stamp;
  std::string fingerprint_name;  // the object's path under the store, with `stamp`
};

// The stat of a store file (`name`: "objects/ab/<hex>" or "variants/ab/<name>") when its content
// was last known to equal `digest` (docs/integrity.md, "Fingerprints").
struct Fingerprint {
  std::string name;
  std::string digest;
  FileStamp stamp;
};

// treesnap linked a restored name to store file `name`, whose stat was `before` just before;
// its inode's ctime is `ctime_after` now.
struct LinkStamp {
  std::string name;
  FileStamp before;
  std::int64_t ctime_after = 0;
};

// A file moved from `origin` (an object or variant path) to quarantine/`name`.
struct QuarantineRecord {
  std::string name, origin, digest;
  bool object = false;  // origin is the object itself (not a link variant)
  std::uint64_t ino = 0;
  std::int64_t quarantined_ns = 0;
  std::string reason;
};

// How a restored regular file got its content (restore_files / restore_entries strategy).
enum class PlacedBy { fresh = 0, hardlink = 1, reflink = 2, copy = 3 };

struct RestoreRecord {
  std::int64_t id = 0;
  std::string target;    // absolute path
  std::string snapshot;  // "name:tag" at the time of the restore
  std::string manifest;  // raw digest bytes: the snapshot's id
  std::int64_t restored_ns = 0;
  std::uint64_t hardlinked = 0, reflinked = 0, copied = 0, empty = 0;
};

// One regular file of a restored tree: its stat once in place (after the rename), how it was
// placed, and its content's digest (empty for an empty file).
struct RestoreEntryRecord {
  std::string path;  // relative to the target, manifest bytes
  FileStamp stamp;
  PlacedBy placed = PlacedBy::fresh;
  std::string digest;
};

// A regular file of some restored tree holding `digest`.
struct TreeFile {
  std::string target, path;
  PlacedBy placed = PlacedBy::fresh;
  std::uint64_t ino = 0;
};

// What the database says about one digest.
enum class ObjectState {
  absent,      // no row: the file, if any, is unrecorded
  live,        // referenced by at least one snapshot
  orphan,      // referenced by none; garbage collection may remove it
  collecting,  // a collector is deleting it (a row in `collecting`): treat as gone once it finishes
  quarantined, // recorded, but damaged and moved to quarantine/: store intact content anew
};

// One row of `leases` (docs/format.md, "Leases").
struct LeaseRecord {
  std::int64_t id = 0;
  std::string kind;  // "snapshot", "restore", "gc", …
  std::int64_t pid = 0;
  std::string host, boot_id;
  std::int64_t started_seq = 0, started_ns = 0, expires_ns = 0;
};

// Store-wide figures, kept by triggers in the transactions that change them.
struct UsageTotals {
  std::uint64_t objects = 0, disk_bytes = 0, orphan_objects = 0, orphan_bytes = 0;
};

// An object a collector may delete or is deleting.
struct CollectCandidate {
  std::string digest;
  std::uint64_t disk_bytes = 0;
};

// What the stat cache knows about one source file: if (dev, ino, size, mtime, ctime) still match,
// the content is `digest` and has `ranges` (encoded), without reading the file again.
struct StatRecord {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  std::string digest;
  std::string ranges;
};

// One row of fs_probes: what a (store, target) file system pair could do when last probed.
struct ProbeRecord {
  std::string store_fsid, target_fsid;  // statfs f_fsid in hex (store/fs_probe.hpp)
  std::string store_fs, target_fs;      // "ext4", "xfs", …
  int link_errno = 0, reflink_errno = 0, copy_range_errno = 0;  // 0: the operation worked
  std::int64_t probed_ns = 0;
};

class Database {
 public:
  // Opens (and with `create`, creates) the database file.
  static Result<Database> open(const std::string& path, bool create);
  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  ~Database();

  Result<std::optional<std::string>> get_info(const std::string& key);
  // For connections whose writes need not survive a power loss (leases): no fsync per commit.
  Result<void> set_synchronous_normal() { return exec("PRAGMA synchronous=NORMAL"); }
  // Commits of this connection leave their pages in the WAL instead of copying them into the
  // database file at once (SQLite's auto-checkpoint), for checkpoint() on another connection.
  Result<void> defer_checkpoints() { return exec("PRAGMA wal_autocheckpoint=0"); }
  // Copies the committed WAL pages into the database file as far as readers allow, waiting for
  // no one (PASSIVE): what an auto-checkpoint does after a commit.
  Result<void> checkpoint() { return exec("PRAGMA wal_checkpoint(PASSIVE)"); }
  // Reads pages through a shared mapping of up to `bytes` of the database file instead of a
  // pread and a copy each (SQLite's memory-mapped I/O; writes still go through the WAL). For
  // connections that read a large part of the file: gc's plan reads over a million refs.
  Result<void> map_for_reads(std::uint64_t bytes) { return exec(("PRAGMA mmap_size=" + std::to_string(bytes)).c_str()); }
  Result<void> set_info_if_absent(const std::string& key, const std::string& value);

  // A read transaction around many lookups: one lock and one snapshot of the database instead of
  // one per statement (which costs two fcntl calls and an fstat each).
  Result<void> begin_read();
  Result<void> end_read();
  // A write transaction that the calls made before end_write() join instead of committing each
  // (they become savepoints, so one that fails still rolls back alone). For bulk writers such as
  // bench/gen_store.cpp: each commit writes every B-tree page it dirtied, and snapshots at random
  // digests dirty most of them, so one commit for many snapshots writes far less.
  Result<void> begin_write();
  Result<void> end_write();

  // True when the object is recorded and live (referenced by a snapshot).
  Result<bool> has_object(const std::string& digest);
  Result<ObjectState> object_state(const std::string& digest);
  struct ObjectCounts {
    std::string digest;
    std::int64_t refcount = 0;
    std::uint64_t disk_bytes = 0;
  };
  // The object refs name by `id`; nullopt when it has no row.
  Result<std::optional<ObjectCounts>> object_counts(std::int64_t id);
  // Every recorded object except those being collected.
  Result<std::vector<ObjectRecord>> all_objects();
  // The digest and ranges cached for this file, if its stat still matches and the object is live.
  Result<std::optional<StatRecord>> lookup_stat(const StatRecord& key);

  // Adds a snapshot, `object_count` rows of the objects it references (row i comes from
  // `object_row(i)`; duplicates are allowed) and `stat_count` stat cache rows (from `stat_row(i)`),
  // in one transaction. Rows are made on demand so a million of them need not exist at once.
  // Fails with `exists` when name:tag is taken and `replace` is false.
  Result<void> commit_snapshot(const SnapshotRecord& snapshot, std::size_t object_count,
                               const std::function<ObjectRecord(std::size_t)>& object_row,
                               std::size_t stat_count, const std::function<StatRecord(std::size_t)>& stat_row,
                               bool replace);
  // The same with the rows at hand.
  Result<void> commit_snapshot(const SnapshotRecord& snapshot, const std::vector<ObjectRecord>& objects,
                               const std::vector<StatRecord>& stat_rows, bool replace) {
    return commit_snapshot(
        snapshot, objects.size(), [&](std::size_t i) { return objects[i]; }, stat_rows.size(),
        [&](std::size_t i) { return stat_rows[i]; }, replace);
  }

  // Marks `snapshot` used at `now` and adds `stat_count` stat cache rows, in one transaction,
  // when its name still points at its manifest; false (nothing written) when it no longer does.
  Result<bool> refresh_snapshot(const SnapshotRecord& snapshot, std::int64_t now, std::size_t stat_count,
                                const std::function<StatRecord(std::size_t)>& stat_row);

  Result<std::optional<SnapshotRecord>> find_snapshot(const std::string& name, const std::string& tag);
  // Snapshots whose manifest digest (hex) starts with `prefix`.
  Result<std::vector<SnapshotRecord>> find_by_id_prefix(const std::string& hex_prefix);
  Result<std::vector<SnapshotRecord>> list_snapshots();
  Result<void> touch_snapshot(std::int64_t row_id, std::int64_t now_ns);
  // Removes the snapshot row and its references in one transaction; false when absent.
  Result<bool> remove_snapshot(const std::string& name, const std::string& tag);
  // Sets or clears the pin (pinned snapshots are never evicted); false when absent.
  Result<bool> set_pinned(const std::string& name, const std::string& tag, bool pinned);

  // The recorded probe of a file system pair, if any.
  Result<std::optional<ProbeRecord>> find_probe(const std::string& store_fsid, const std::string& target_fsid);
  // Adds or replaces the pair's row.
  Result<void> record_probe(const ProbeRecord& probe);

  // --- Garbage collection and leases (meta/database_gc.cpp) ---
  Result<UsageTotals> usage();
  // Unpinned snapshots, least recently used first.
  Result<std::vector<SnapshotRecord>> eviction_order();
  // Calls `fn` with each digest a snapshot references; the view is valid during the call only.
  Result<void> each_ref(std::int64_t row_id, const std::function<void(std::string_view digest)>& fn);
  // Calls `fn` with the id of each object a snapshot references, in id order (a range scan of
  // refs, no lookup in objects).
  Result<void> each_ref_id(std::int64_t row_id, const std::function<void(std::int64_t object)>& fn);
  // The id refs use for an object; nullopt when it has no row.
  Result<std::optional<std::int64_t>> object_id(const std::string& digest);
  // What removing a set of snapshots takes from one object: `count` references whose snapshot
  // ids sum to `id_sum`.
  struct DroppedRefs {
    std::int64_t object = 0;
    std::int64_t count = 0;
    std::int64_t id_sum = 0;
  };
  // Evicts snapshots given as (row id, last_used_ns) in one transaction, each unless it has been
  // pinned or used since; element i is false when victim i was not removed. `dropped` is what
  // all the victims' refs take from each object, as the caller read them (a snapshot's refs
  // never change): used when every victim goes, else recounted from refs.
  Result<std::vector<bool>> evict_snapshots(const std::vector<std::pair<std::int64_t, std::int64_t>>& victims,
                                            std::vector<DroppedRefs> dropped = {});
  struct EvictedAndClaimed {
    std::vector<bool> evicted;
    std::vector<CollectCandidate> claimed;
  };
  // evict_snapshots, then claim_orphans, in one transaction: one synchronous commit.
  Result<EvictedAndClaimed> evict_and_claim(const std::vector<std::pair<std::int64_t, std::int64_t>>& victims,
                                            std::vector<DroppedRefs> dropped, std::int64_t self, std::size_t limit);

  // Adds a lease row; its started_seq is a fresh value of usage.seq.
  Result<LeaseRecord> add_lease(const std::string& kind, std::int64_t pid, const std::string& host,
                                const std::string& boot_id, std::int64_t now, std::int64_t expires);
  Result<void> renew_lease(std::int64_t id, std::int64_t expires);
  Result<void> remove_lease(std::int64_t id);
  Result<std::vector<LeaseRecord>> leases();
  // Makes an orphan count as orphaned now, so that lease `holder`'s barrier protects it. Returns
  // the object's state afterwards: `orphan` (now protected), `live`, `collecting` or `absent`.
  Result<ObjectState> hold_object(const std::string& digest);
  // The lease id of the collector deleting `digest`, if it is being collected.
  Result<std::optional<std::int64_t>> collector_of(const std::string& digest);
  // Removes the rows of an object whose collector died mid-way, in `collecting` and, if the
  // collector had not dropped it yet, in `objects` (its file may or may not remain: an unrecorded
  // file, trusted by publish only after re-hashing).
  Result<void> drop_abandoned(const std::string& digest, std::int64_t dead_collector);

  // Orphans that no lease protects: orphaned before the oldest lease other than `self` and
  // not kind "gc" started. Read only (the dry run's answer).
  Result<std::vector<CollectCandidate>> collectable_orphans(std::int64_t self, std::size_t limit);
  // Claims up to `limit` of those for `self` (rows in `collecting`) and returns them; the same
  // transaction re-checks every condition and takes them out of the usage row. Their rows in
  // `objects` stay until drop_claimed_rows: an object in both tables is being collected, and
  // its file may already be gone.
  Result<std::vector<CollectCandidate>> claim_orphans(std::int64_t self, std::size_t limit);
  // Deletes the `objects` rows of what `self` has claimed. The claim is committed, so nothing can
  // take these objects back: gc runs this beside the unlinks (Collector::unlink_and_drop_rows).
  Result<void> drop_claimed_rows(std::int64_t self);
  // Takes over objects left in collection by collectors that have no lease any more: killed ones
  // (whose dead leases the caller removed first) and ones that stopped on an error (their lease
  // went with them, their claims stayed), and drops the `objects` rows they left.
  Result<std::vector<CollectCandidate>> claim_abandoned(std::int64_t self);
  // Deletes the `collecting` rows of every object `self` has claimed: call it once the files of
  // all of them are gone and drop_claimed_rows has run.
  Result<void> finish_collected(std::int64_t self);
  // Any row, whatever its state (the --full sweep's question).
  Result<bool> is_recorded(const std::string& digest);
  // usage.seq now: it moves exactly when a lease is added.
  Result<std::int64_t> sequence();

  // --- Integrity: fingerprints, quarantine, restore records (meta/database_integrity.cpp) ---
  Result<std::vector<Fingerprint>> fingerprints();
  // verify's two streams, one query each in key order, no row copied (the views live only during
  // the call): every object in state >= 0 by digest, and every fingerprint by name ("objects/…",
  // which is digest order, then "variants/…").
  Result<void> each_object(const std::function<void(std::string_view digest, std::uint64_t size)>& fn);
  Result<void> each_fingerprint(
      const std::function<void(std::string_view name, std::string_view digest, const FileStamp& stamp)>& fn);
  Result<std::vector<Fingerprint>> fingerprints_of_inode(std::uint64_t ino);
  // Inserts or replaces, in one transaction.
  Result<void> put_fingerprints(const std::vector<Fingerprint>& rows);
  // For each link treesnap made, in order: moves the fingerprint's ctime to `ctime_after` only
  // when the row still equals `before` (nothing else touched the inode in between). One
  // transaction.
  Result<void> record_links(const std::vector<LinkStamp>& links);
  // Records a file just moved into quarantine: its row, its fingerprint dropped, and for an
  // object (origin under objects/) objects.quarantined_ns set.
  Result<void> add_quarantine(const QuarantineRecord& record);
  Result<std::vector<QuarantineRecord>> quarantined();
  // The file is back at its origin with intact content: drops the row, clears the object's mark
  // and records `fingerprint`.
  Result<void> release_quarantine(const std::string& name, const Fingerprint& fingerprint);
  // Snapshots whose refs include each of `digests` (absent from the map: none). Schema 6 keeps no
  // index of refs by digest, so this reads refs once for all the digests: O(refs), for the rare
  // reports (verify, repair) that ask.
  Result<std::map<std::string, std::vector<SnapshotRecord>>> snapshots_referencing(const std::vector<std::string>& digests);
  Result<std::optional<std::uint64_t>> object_size(const std::string& digest);

  // Replaces any record of the same target, in one transaction; the entries go in one packed blob
  // (restore_files, schema 5). Records from schema 4 (restore_entries rows) are still read, and
  // rewritten packed by update_restore_entries. tree_files_with reads every record: O(restored
  // files), a few ms per 50k.
  // `links` as record_links, in the same transaction.
  Result<std::int64_t> record_restore(const RestoreRecord& record, const std::vector<RestoreEntryRecord>& entries,
                                      const std::vector<LinkStamp>& links);
  Result<std::optional<RestoreRecord>> find_restore(const std::string& target);
  Result<std::vector<RestoreRecord>> restores();
  Result<void> forget_restore(std::int64_t restore_id);
  Result<std::vector<RestoreEntryRecord>> restore_entries(std::int64_t restore_id);
  // Files of `entries` replace those of their path or are added, in one transaction; the record
  // is written back packed (a schema-4 record's rows go).
  Result<void> update_restore_entries(std::int64_t restore_id, const std::vector<RestoreEntryRecord>& entries);
  // restore --update: in one transaction, record `restore_id` (same target) takes `record`'s
  // snapshot, manifest, time and counts, the files of `drop` go, `entries` are added or replace
  // theirs, and `links` move fingerprints as record_links. Files in neither stay as they are.
  // The packed blob is read, changed and written back in that transaction (O(files in the record):
  // ~30 ms for 46k files), so an interrupted update leaves the old record whole.
  Result<void> amend_restore(std::int64_t restore_id, const RestoreRecord& record,
                             const std::vector<RestoreEntryRecord>& entries, const std::vector<std::string>& drop,
                             const std::vector<LinkStamp>& links);
  Result<std::vector<TreeFile>> tree_files_with(const std::string& digest);

 private:
  struct StatementCache;
  explicit Database(sqlite3* db);
  Result<void> exec(const char* sql);
  Result<void> put_stat_rows(std::size_t count, const std::function<StatRecord(std::size_t)>& row);
  // Adds the refs of a new snapshot and updates refcounts and unique figures with one statement
  // each, as refs_added (meta/schema.cpp) would row by row.
  Result<void> add_snapshot_refs(std::int64_t snapshot, std::size_t count,
                                 const std::function<ObjectRecord(std::size_t)>& row);
  // Deletes snapshots' rows and refs the same way, all of them as one set: refcounts, orphaning,
  // the usage row's orphan totals and the unique figures of the snapshots left holding an object
  // alone, as refs_removed would row by row.
  // `dropped`, when given, is what the snapshots' refs take from each object (else counted here).
  Result<void> remove_snapshots(const std::vector<std::int64_t>& snapshots,
                                std::vector<DroppedRefs>* dropped = nullptr);
  // Fingerprint of a freshly published object; takes it out of quarantine.
  Result<void> put_published(const std::string& digest, const std::string& name, const FileStamp& stamp);
  Result<std::vector<CollectCandidate>> orphans_query(std::int64_t self, std::size_t limit);
  Result<bool> remove_snapshot_rows(const std::string& name, const std::string& tag);
  // Runs `body` inside BEGIN IMMEDIATE … COMMIT, rolling back when it fails.
  template <typename Body>
  auto in_transaction(Body body) -> decltype(body());
  sqlite3* m_db = nullptr;
  std::unique_ptr<StatementCache> m_cache;  // statements of the hot lookups, prepared once
};

// Busy moments are retried by SQLite's busy handler (60 s, with backoff) on BEGIN IMMEDIATE, so a
// write transaction waits for another process's instead of failing.
// Inside begin_write() … end_write() the body runs in a savepoint of that transaction.
template <typename Body>
auto Database::in_transaction(Body body) -> decltype(body()) {
  if (!sqlite3_get_autocommit(m_db)) {
    TRY_VOID(exec("SAVEPOINT nested"));
    auto result = body();
    if (!result) {
      (void)exec("ROLLBACK TO nested; RELEASE nested");
      return result;
    }
    TRY_VOID(exec("RELEASE nested"));
    return result;
  }
  TRY_VOID(exec("BEGIN IMMEDIATE"));
  auto result = body();
  if (!result) {
    (void)exec("ROLLBACK");
    return result;
  }
  auto committed = exec("COMMIT");
  if (!committed) {
    (void)exec("ROLLBACK");
    return std::unexpected(committed.error());
  }
  return result;
}

}  // namespace treesnap
