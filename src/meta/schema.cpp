#include "meta/schema.hpp"

#include <string>

#include "meta/database.hpp"
#include "meta/statement.hpp"

namespace treesnap {
namespace {

constexpr const char* k_schema_v1 = R"sql(
CREATE TABLE IF NOT EXISTS store_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects(
  digest BLOB PRIMARY KEY, size INTEGER NOT NULL,
  created_ns INTEGER NOT NULL, last_used_ns INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, tag TEXT NOT NULL, manifest BLOB NOT NULL,
  created_ns INTEGER NOT NULL, last_used_ns INTEGER NOT NULL,
  entries INTEGER NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
  new_objects INTEGER NOT NULL, new_bytes INTEGER NOT NULL, UNIQUE(name, tag));
CREATE TABLE IF NOT EXISTS refs(
  snapshot INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY(snapshot, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_by_digest ON refs(digest);
CREATE TABLE IF NOT EXISTS stat_cache(
  dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, digest BLOB NOT NULL, ranges BLOB,
  PRIMARY KEY(dev, ino)) WITHOUT ROWID;
)sql";

// Version 2: reference counts and usage figures kept by triggers in the transactions that change
// refs, so that finding orphans and answering `du` cost O(change), never O(store); pins; leases.
//
// objects.refcount is the number of snapshots referencing the object; -1 marks an object a
// collector (gc, named by its lease in objects.collector) is deleting: its row goes only after
// its files, so "a row in state >= 0" always means "the file exists". objects.orphaned_seq is the
// value of usage.seq when the object last became (or was last used as) an orphan: a lease started
// at seq S protects every object orphaned at or after S (docs/format.md, "Leases").
// Existing objects get an estimated disk_bytes (size rounded up to 4 KiB blocks); new objects
// record st_blocks * 512 of the published inode.
constexpr const char* k_migrate_v2 = R"sql(
ALTER TABLE objects ADD COLUMN refcount INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN disk_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN orphaned_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN collector INTEGER;
ALTER TABLE snapshots ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN unique_objects INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN unique_bytes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE leases(
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
  boot_id TEXT NOT NULL, started_seq INTEGER NOT NULL, started_ns INTEGER NOT NULL,
  expires_ns INTEGER NOT NULL);
CREATE TABLE usage(
  id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL, objects INTEGER NOT NULL,
  disk_bytes INTEGER NOT NULL, orphan_objects INTEGER NOT NULL, orphan_bytes INTEGER NOT NULL);

UPDATE objects SET
  refcount = (SELECT count(*) FROM refs WHERE refs.digest = objects.digest),
  disk_bytes = (size + 4095) / 4096 * 4096;
UPDATE snapshots SET
  unique_objects = (SELECT count(*) FROM refs r JOIN objects o ON o.digest = r.digest
                    WHERE r.snapshot = snapshots.id AND o.refcount = 1),
  unique_bytes = (SELECT coalesce(sum(o.disk_bytes), 0) FROM refs r JOIN objects o ON o.digest = r.digest
                  WHERE r.snapshot = snapshots.id AND o.refcount = 1);
INSERT INTO usage(id, seq, objects, disk_bytes, orphan_objects, orphan_bytes) VALUES(0, 1,
  (SELECT count(*) FROM objects), (SELECT coalesce(sum(disk_bytes), 0) FROM objects),
  (SELECT count(*) FROM objects WHERE refcount = 0),
  (SELECT coalesce(sum(disk_bytes), 0) FROM objects WHERE refcount = 0));

CREATE INDEX objects_orphans ON objects(orphaned_seq) WHERE refcount = 0;
CREATE INDEX objects_collecting ON objects(collector) WHERE refcount < 0;
CREATE INDEX snapshots_lru ON snapshots(last_used_ns);

CREATE TRIGGER objects_added AFTER INSERT ON objects BEGIN
  UPDATE usage SET objects = objects + 1, disk_bytes = disk_bytes + NEW.disk_bytes,
    orphan_objects = orphan_objects + (NEW.refcount <= 0),
    orphan_bytes = orphan_bytes + (CASE WHEN NEW.refcount <= 0 THEN NEW.disk_bytes ELSE 0 END);
END;
CREATE TRIGGER objects_removed AFTER DELETE ON objects BEGIN
  UPDATE usage SET objects = objects - 1, disk_bytes = disk_bytes - OLD.disk_bytes,
    orphan_objects = orphan_objects - (OLD.refcount <= 0),
    orphan_bytes = orphan_bytes - (CASE WHEN OLD.refcount <= 0 THEN OLD.disk_bytes ELSE 0 END);
END;
CREATE TRIGGER objects_orphaned AFTER UPDATE OF refcount ON objects
WHEN (OLD.refcount <= 0) != (NEW.refcount <= 0) BEGIN
  UPDATE usage SET
    orphan_objects = orphan_objects + (CASE WHEN NEW.refcount <= 0 THEN 1 ELSE -1 END),
    orphan_bytes = orphan_bytes + (CASE WHEN NEW.refcount <= 0 THEN NEW.disk_bytes ELSE -NEW.disk_bytes END);
END;

-- A snapshot's unique figures count the objects only it references: they change when an
-- object's refcount passes through 1, and the snapshot concerned is found through refs_by_digest
-- (through objects.ref_sum from version 6).
CREATE TRIGGER refs_added AFTER INSERT ON refs BEGIN
  SELECT RAISE(ABORT, 'object is being garbage-collected')
    WHERE (SELECT refcount FROM objects WHERE digest = NEW.digest) < 0;
  UPDATE objects SET refcount = refcount + 1 WHERE digest = NEW.digest;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE digest = NEW.digest)
    WHERE id = NEW.snapshot AND (SELECT refcount FROM objects WHERE digest = NEW.digest) = 1;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE digest = NEW.digest)
    WHERE (SELECT refcount FROM objects WHERE digest = NEW.digest) = 2
      AND id = (SELECT snapshot FROM refs WHERE digest = NEW.digest AND snapshot != NEW.snapshot);
END;
CREATE TRIGGER refs_removed AFTER DELETE ON refs BEGIN
  UPDATE objects SET refcount = refcount - 1,
      orphaned_seq = CASE WHEN refcount = 1 THEN (SELECT seq FROM usage) ELSE orphaned_seq END
    WHERE digest = OLD.digest;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE digest = OLD.digest)
    WHERE id = OLD.snapshot AND (SELECT refcount FROM objects WHERE digest = OLD.digest) = 0;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE digest = OLD.digest)
    WHERE (SELECT refcount FROM objects WHERE digest = OLD.digest) = 1
      AND id = (SELECT snapshot FROM refs WHERE digest = OLD.digest);
END;

UPDATE store_info SET value = '2' WHERE key = 'schema_version';
)sql";

// Version 3: what each (store file system, target file system) pair can do, probed once with the
// real operations on throwaway files (store/fs_probe.hpp) and read by every later restore. File
// systems are named by statfs f_fsid, stable across reboots; errno columns are 0 when the
// operation worked. A restore that meets an error the row did not predict probes again and
// replaces the row.
constexpr const char* k_migrate_v3 = R"sql(
CREATE TABLE fs_probes(
  store_fsid TEXT NOT NULL, target_fsid TEXT NOT NULL,
  store_fs TEXT NOT NULL, target_fs TEXT NOT NULL,
  link_errno INTEGER NOT NULL, reflink_errno INTEGER NOT NULL, copy_range_errno INTEGER NOT NULL,
  probed_ns INTEGER NOT NULL,
  PRIMARY KEY(store_fsid, target_fsid)) WITHOUT ROWID;
UPDATE store_info SET value = '3' WHERE key = 'schema_version';
)sql";

// Version 4: integrity (docs/integrity.md). Self-contained, so it can be renumbered.
//
// fingerprints: the stat of each object and link variant (by its path under the store) when its
//   content was last known good: at publication, after a re-hash, and again after treesnap itself
//   linked it (a link changes ctime). `verify --fast` re-hashes only files whose stat differs.
// quarantine: damaged files moved out of objects/ and variants/ into quarantine/; an object in
//   quarantine has objects.quarantined_ns set, so nothing restores from it and the next snapshot
//   of intact content publishes it anew.
// restores, restore_entries: each tree treesnap restored (target, snapshot, counts) and, per
//   regular file, the stat it had once in place, the rung that placed it and its digest: what
//   `status` and `repair` compare against, and the copies `repair` can heal from.
// snapshots.source: the absolute source path, the first place repair looks for intact bytes.
// Rows of all three follow their object: deleting an object's row deletes its fingerprints
// (variants' included) and quarantine rows, so gc needs no new query to stay consistent.
constexpr const char* k_migrate_v4 = R"sql(
ALTER TABLE objects ADD COLUMN quarantined_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE TABLE fingerprints(
  name TEXT PRIMARY KEY, digest BLOB NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, mode INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX fingerprints_by_digest ON fingerprints(digest);
CREATE INDEX fingerprints_by_ino ON fingerprints(ino);
CREATE TABLE quarantine(
  name TEXT PRIMARY KEY, origin TEXT NOT NULL, object INTEGER NOT NULL, digest BLOB NOT NULL, ino INTEGER NOT NULL,
  quarantined_ns INTEGER NOT NULL, reason TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX quarantine_by_digest ON quarantine(digest);
CREATE TABLE restores(
  id INTEGER PRIMARY KEY, target TEXT NOT NULL UNIQUE, snapshot TEXT NOT NULL, manifest BLOB NOT NULL,
  restored_ns INTEGER NOT NULL, hardlinked INTEGER NOT NULL, reflinked INTEGER NOT NULL,
  copied INTEGER NOT NULL, empty INTEGER NOT NULL);
CREATE TABLE restore_entries(
  restore INTEGER NOT NULL, path BLOB NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, mode INTEGER NOT NULL,
  strategy INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY(restore, path)) WITHOUT ROWID;
CREATE INDEX restore_entries_by_digest ON restore_entries(digest);
CREATE TRIGGER restores_removed AFTER DELETE ON restores BEGIN
  DELETE FROM restore_entries WHERE restore = OLD.id;
END;
CREATE TRIGGER objects_integrity_removed AFTER DELETE ON objects BEGIN
  DELETE FROM fingerprints WHERE digest = OLD.digest;
  DELETE FROM quarantine WHERE digest = OLD.digest;
END;
UPDATE store_info SET value = '4' WHERE key = 'schema_version';
)sql";

// Version 5 (packed restore records): a restore's per-file record as one blob in restore_files
// instead of one restore_entries row per file. Writing 46k rows (and their digest index) cost
// 0.27 s on a 0.45 s hardlink restore of the Python stdlib; one blob costs a few ms. Format of the
// blob: docs/format.md, "restore_files". Records written before keep their restore_entries rows
// and are still read. Self-contained, so it can be renumbered.
constexpr const char* k_migrate_v5 = R"sql(
CREATE TABLE restore_files(restore INTEGER PRIMARY KEY, entries BLOB NOT NULL);
CREATE TRIGGER restores_removed_files AFTER DELETE ON restores BEGIN
  DELETE FROM restore_files WHERE restore = OLD.id;
END;
UPDATE store_info SET value = '5' WHERE key = 'schema_version';
)sql";

// Version 6 (ref_sum): objects.ref_sum is the sum of the ids of the snapshots referencing the
// object, kept beside refcount. When refcount is 1 it is the id of the one snapshot left, which
// is all the unique figures needed refs_by_digest for; with it the index goes. Every deleted ref
// deleted an entry of that index at a random place (~450 MB at 10M refs): 4.7 µs of rm's and
// eviction's cost per ref, and as much again per ref a commit added. Queries of refs by digest
// are now rare (verify and repair reports) and read refs in one pass for all their digests.
// The fill aggregates refs in digest order through the index, before it is dropped.
// Self-contained, so it can be renumbered.
constexpr const char* k_migrate_v6 = R"sql(
ALTER TABLE objects ADD COLUMN ref_sum INTEGER NOT NULL DEFAULT 0;
UPDATE objects SET ref_sum = x.s
  FROM (SELECT digest, sum(snapshot) AS s FROM refs GROUP BY digest) AS x WHERE objects.digest = x.digest;

DROP TRIGGER refs_added;
DROP TRIGGER refs_removed;
CREATE TRIGGER refs_added AFTER INSERT ON refs BEGIN
  SELECT RAISE(ABORT, 'object is being garbage-collected')
    WHERE (SELECT refcount FROM objects WHERE digest = NEW.digest) < 0;
  UPDATE objects SET refcount = refcount + 1, ref_sum = ref_sum + NEW.snapshot WHERE digest = NEW.digest;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE digest = NEW.digest)
    WHERE id = NEW.snapshot AND (SELECT refcount FROM objects WHERE digest = NEW.digest) = 1;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE digest = NEW.digest)
    WHERE id = (SELECT ref_sum - NEW.snapshot FROM objects WHERE digest = NEW.digest AND refcount = 2);
END;
CREATE TRIGGER refs_removed AFTER DELETE ON refs BEGIN
  UPDATE objects SET refcount = refcount - 1, ref_sum = ref_sum - OLD.snapshot,
      orphaned_seq = CASE WHEN refcount = 1 THEN (SELECT seq FROM usage) ELSE orphaned_seq END
    WHERE digest = OLD.digest;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE digest = OLD.digest)
    WHERE id = OLD.snapshot AND (SELECT refcount FROM objects WHERE digest = OLD.digest) = 0;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE digest = OLD.digest)
    WHERE id = (SELECT ref_sum FROM objects WHERE digest = OLD.digest AND refcount = 1);
END;
DROP INDEX refs_by_digest;
UPDATE store_info SET value = '6' WHERE key = 'schema_version';
)sql";

// Version 7 (collecting): an object a collector is deleting moves out of `objects` into its own
// table in the claim's transaction, and that row goes once the files are gone. Before, the claim
// set refcount = -1 in `objects` and the finish deleted the row: two passes of updates at random
// digests over the whole table (100k claimed objects dirtied most of a 1M-object table's pages
// twice: 1.4 s of a 2.8 s gc). Now the claim deletes the rows once and the finish deletes from a
// table that holds only the objects in flight. A row in `objects` still always means "the file
// exists"; objects.collector is left unused. Self-contained, so it can be renumbered.
constexpr const char* k_migrate_v7 = R"sql(
CREATE TABLE collecting(
  digest BLOB PRIMARY KEY, collector INTEGER NOT NULL, disk_bytes INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO collecting(digest, collector, disk_bytes)
  SELECT digest, collector, disk_bytes FROM objects WHERE refcount < 0;
DELETE FROM objects WHERE refcount < 0;
DROP INDEX objects_collecting;
DROP TRIGGER refs_added;
CREATE TRIGGER refs_added AFTER INSERT ON refs BEGIN
  SELECT RAISE(ABORT, 'object is being garbage-collected')
    WHERE EXISTS (SELECT 1 FROM collecting WHERE digest = NEW.digest);
  UPDATE objects SET refcount = refcount + 1, ref_sum = ref_sum + NEW.snapshot WHERE digest = NEW.digest;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE digest = NEW.digest)
    WHERE id = NEW.snapshot AND (SELECT refcount FROM objects WHERE digest = NEW.digest) = 1;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE digest = NEW.digest)
    WHERE id = (SELECT ref_sum - NEW.snapshot FROM objects WHERE digest = NEW.digest AND refcount = 2);
END;
UPDATE store_info SET value = '7' WHERE key = 'schema_version';
)sql";

// Version 8 (object ids): objects get an integer id in the order they were first recorded, and
// refs name objects by it instead of by digest. The digest is random, so the refcount updates of
// an rm or an eviction landed on random pages of the objects B-tree: removing 100k of 1M objects
// rewrote nearly all of its pages (0.7 s of updates and a WAL of the whole table). A snapshot's
// objects were mostly recorded together, by it or by the version before it, so by id they are
// neighbours and the same updates touch a tenth of the pages (measured: 0.69 s -> 0.08 s). refs
// rows shrink from 40 to ~10 bytes. Lookups by digest go through the digest's unique index.
// Ids are never kept outside refs, and an object with refs is never deleted, so an id SQLite
// hands out again after the highest row went cannot be mistaken for the old object. The unused
// objects.collector column goes. Self-contained, so it can be renumbered.
constexpr const char* k_migrate_v8 = R"sql(
CREATE TABLE objects_v8(
  id INTEGER PRIMARY KEY, digest BLOB NOT NULL UNIQUE, size INTEGER NOT NULL,
  created_ns INTEGER NOT NULL, last_used_ns INTEGER NOT NULL, refcount INTEGER NOT NULL DEFAULT 0,
  disk_bytes INTEGER NOT NULL DEFAULT 0, orphaned_seq INTEGER NOT NULL DEFAULT 0,
  quarantined_ns INTEGER NOT NULL DEFAULT 0, ref_sum INTEGER NOT NULL DEFAULT 0);
INSERT INTO objects_v8(digest, size, created_ns, last_used_ns, refcount, disk_bytes, orphaned_seq, quarantined_ns, ref_sum)
  SELECT digest, size, created_ns, last_used_ns, refcount, disk_bytes, orphaned_seq, quarantined_ns, ref_sum
  FROM objects ORDER BY created_ns, digest;
CREATE TABLE refs_v8(
  snapshot INTEGER NOT NULL, object INTEGER NOT NULL, PRIMARY KEY(snapshot, object)) WITHOUT ROWID;
INSERT INTO refs_v8(snapshot, object)
  SELECT r.snapshot, o.id FROM refs r JOIN objects_v8 o ON o.digest = r.digest ORDER BY r.snapshot, o.id;
DROP TABLE refs;
DROP TABLE objects;
ALTER TABLE objects_v8 RENAME TO objects;
ALTER TABLE refs_v8 RENAME TO refs;
CREATE INDEX objects_orphans ON objects(orphaned_seq) WHERE refcount = 0;

CREATE TRIGGER objects_added AFTER INSERT ON objects BEGIN
  UPDATE usage SET objects = objects + 1, disk_bytes = disk_bytes + NEW.disk_bytes,
    orphan_objects = orphan_objects + (NEW.refcount <= 0),
    orphan_bytes = orphan_bytes + (CASE WHEN NEW.refcount <= 0 THEN NEW.disk_bytes ELSE 0 END);
END;
CREATE TRIGGER objects_removed AFTER DELETE ON objects BEGIN
  UPDATE usage SET objects = objects - 1, disk_bytes = disk_bytes - OLD.disk_bytes,
    orphan_objects = orphan_objects - (OLD.refcount <= 0),
    orphan_bytes = orphan_bytes - (CASE WHEN OLD.refcount <= 0 THEN OLD.disk_bytes ELSE 0 END);
END;
CREATE TRIGGER objects_orphaned AFTER UPDATE OF refcount ON objects
WHEN (OLD.refcount <= 0) != (NEW.refcount <= 0) BEGIN
  UPDATE usage SET
    orphan_objects = orphan_objects + (CASE WHEN NEW.refcount <= 0 THEN 1 ELSE -1 END),
    orphan_bytes = orphan_bytes + (CASE WHEN NEW.refcount <= 0 THEN NEW.disk_bytes ELSE -NEW.disk_bytes END);
END;
CREATE TRIGGER objects_integrity_removed AFTER DELETE ON objects BEGIN
  DELETE FROM fingerprints WHERE digest = OLD.digest;
  DELETE FROM quarantine WHERE digest = OLD.digest;
END;
CREATE TRIGGER refs_added AFTER INSERT ON refs BEGIN
  SELECT RAISE(ABORT, 'object is being garbage-collected')
    WHERE EXISTS (SELECT 1 FROM collecting c JOIN objects o ON o.digest = c.digest WHERE o.id = NEW.object);
  UPDATE objects SET refcount = refcount + 1, ref_sum = ref_sum + NEW.snapshot WHERE id = NEW.object;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE id = NEW.object)
    WHERE id = NEW.snapshot AND (SELECT refcount FROM objects WHERE id = NEW.object) = 1;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE id = NEW.object)
    WHERE id = (SELECT ref_sum - NEW.snapshot FROM objects WHERE id = NEW.object AND refcount = 2);
END;
CREATE TRIGGER refs_removed AFTER DELETE ON refs BEGIN
  UPDATE objects SET refcount = refcount - 1, ref_sum = ref_sum - OLD.snapshot,
      orphaned_seq = CASE WHEN refcount = 1 THEN (SELECT seq FROM usage) ELSE orphaned_seq END
    WHERE id = OLD.object;
  UPDATE snapshots SET unique_objects = unique_objects - 1,
      unique_bytes = unique_bytes - (SELECT disk_bytes FROM objects WHERE id = OLD.object)
    WHERE id = OLD.snapshot AND (SELECT refcount FROM objects WHERE id = OLD.object) = 0;
  UPDATE snapshots SET unique_objects = unique_objects + 1,
      unique_bytes = unique_bytes + (SELECT disk_bytes FROM objects WHERE id = OLD.object)
    WHERE id = (SELECT ref_sum FROM objects WHERE id = OLD.object AND refcount = 1);
END;
UPDATE store_info SET value = '8' WHERE key = 'schema_version';
)sql";

struct Migration {
  int to_version;
  const char* sql;
};
constexpr Migration k_migrations[] = {{2, k_migrate_v2}, {3, k_migrate_v3}, {4, k_migrate_v4}, {5, k_migrate_v5},
                                      {6, k_migrate_v6}, {7, k_migrate_v7}, {8, k_migrate_v8}};

Result<int> recorded_version(sqlite3* db) {
  sql::Statement s(db, "SELECT value FROM store_info WHERE key = 'schema_version'");
  TRY(auto row, s.step());
  if (!row) return 0;
  return std::stoi(s.text(0));
}

}  // namespace

Result<void> create_schema(sqlite3* db) {
  TRY_VOID(sql::exec(db, "BEGIN IMMEDIATE"));
  auto made = [&]() -> Result<void> {
    TRY_VOID(sql::exec(db, k_schema_v1));
    return sql::exec(db, "INSERT OR IGNORE INTO store_info(key, value) VALUES('schema_version', '1')");
  }();
  if (!made) {
    (void)sql::exec(db, "ROLLBACK");
    return made;
  }
  TRY_VOID(sql::exec(db, "COMMIT"));
  TRY(auto version, recorded_version(db));
  return migrate_schema(db, version);
}

Result<void> migrate_schema(sqlite3* db, int from_version) { return migrate_schema(db, from_version, k_schema_version); }

Result<void> migrate_schema(sqlite3* db, int from_version, int to_version) {
  for (const auto& m : k_migrations) {
    if (m.to_version <= from_version || m.to_version > to_version) continue;
    TRY_VOID(sql::exec(db, "BEGIN IMMEDIATE"));
    // Another process may have migrated while this one waited for the lock.
    auto done = [&]() -> Result<void> {
      TRY(auto version, recorded_version(db));
      if (version >= m.to_version) return {};
      return sql::exec(db, m.sql);
    }();
    if (!done) {
      (void)sql::exec(db, "ROLLBACK");
      return done;
    }
    TRY_VOID(sql::exec(db, "COMMIT"));
  }
  return {};
}

}  // namespace treesnap
