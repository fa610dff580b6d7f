#include "meta/database.hpp"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "meta/schema.hpp"
#include "meta/statement.hpp"
#include "util/error.hpp"

namespace treesnap {
namespace {

// Writers wait this long for the lock before `busy` surfaces; SQLite's busy handler sleeps with
// backoff in between, so concurrent snapshots queue instead of failing.
constexpr int k_busy_timeout_ms = 60'000;

using sql::db_error;
using sql::Statement;

constexpr const char* k_snapshot_columns =
    "id, name, tag, manifest, created_ns, last_used_ns, entries, files, bytes, new_objects, new_bytes, "
    "pinned, unique_objects, unique_bytes, source";

SnapshotRecord read_snapshot(const Statement& s) {
  SnapshotRecord r;
  r.row_id = s.i64(0);
  r.name = s.text(1);
  r.tag = s.text(2);
  r.manifest = s.blob(3);
  r.created_ns = s.i64(4);
  r.last_used_ns = s.i64(5);
  r.entries = s.u64(6);
  r.files = s.u64(7);
  r.bytes = s.u64(8);
  r.new_objects = s.u64(9);
  r.new_bytes = s.u64(10);
  r.pinned = s.i64(11) != 0;
  r.unique_objects = s.u64(12);
  r.unique_bytes = s.u64(13);
  r.source = s.text(14);
  return r;
}

Result<std::vector<SnapshotRecord>> query_snapshots(sqlite3* db, const std::string& sql,
                                                    const std::string& text_arg = {}) {
  Statement s(db, sql.c_str());
  if (!text_arg.empty()) s.bind_text(1, text_arg);
  return sql::collect_rows(s, read_snapshot);
}

}  // namespace

struct Database::StatementCache {
  std::unique_ptr<Statement> has_object, object_state, lookup_stat, object_counts;
};

Database::Database(sqlite3* db) : m_db(db), m_cache(std::make_unique<StatementCache>()) {}

Result<void> Database::begin_read() { return exec("BEGIN"); }
Result<void> Database::end_read() { return exec("COMMIT"); }
Result<void> Database::begin_write() { return exec("BEGIN IMMEDIATE"); }
Result<void> Database::end_write() { return exec("COMMIT"); }

Result<Database> Database::open(const std::string& path, bool create) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(path.c_str(), &raw, flags, nullptr) != SQLITE_OK) {
    Error error = make_error(ErrorCode::io, fmt::format("open database {}: {}", path,
                                                        raw ? sqlite3_errmsg(raw) : "out of memory"));
    sqlite3_close(raw);
    return std::unexpected(error);
  }
  Database db(raw);
  sqlite3_busy_timeout(raw, k_busy_timeout_ms);
  // WAL: concurrent readers and one writer across processes. synchronous=FULL: a snapshot that
  // reported success survives power loss.
  // cache_size 64 MiB (an upper bound, allocated as used): a snapshot's commit touches the objects
  // B-tree at random digests, and the refcount updates touch it again; with the default 2 MiB
  // cache that commit ran 1.8x slower at 200k objects (measured when refs_by_digest existed).
  TRY_VOID(db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"));
  if (create) TRY_VOID(create_schema(raw));
  TRY(auto version, db.get_info("schema_version"));
  if (!version) return std::unexpected(make_error(ErrorCode::invalid, path + " is not a treesnap store"));
  const int recorded = std::stoi(*version);
  if (recorded > k_schema_version)
    return std::unexpected(make_error(ErrorCode::unsupported,
                                      fmt::format("store schema {} is newer than this treesnap ({})", *version, k_schema_version)));
  if (recorded < k_schema_version) TRY_VOID(migrate_schema(raw, recorded));
  return db;
}

Database::Database(Database&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr)), m_cache(std::move(other.m_cache)) {}
Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    m_cache.reset();
    sqlite3_close(m_db);
    m_db = std::exchange(other.m_db, nullptr);
    m_cache = std::move(other.m_cache);
  }
  return *this;
}
Database::~Database() {
  m_cache.reset();  // statements must be finalized before the connection closes
  sqlite3_close(m_db);
}

Result<void> Database::exec(const char* text) { return sql::exec(m_db, text); }

Result<std::optional<std::string>> Database::get_info(const std::string& key) {
  Statement s(m_db, "SELECT value FROM store_info WHERE key = ?");
  s.bind_text(1, key);
  auto row = s.step();
  if (!row) {
    // A file that is not a SQLite database, or has no treesnap tables.
    return std::unexpected(make_error(ErrorCode::invalid, "not a treesnap store database"));
  }
  if (!*row) return std::optional<std::string>{};
  return std::optional<std::string>{s.text(0)};
}

Result<void> Database::set_info_if_absent(const std::string& key, const std::string& value) {
  Statement s(m_db, "INSERT OR IGNORE INTO store_info(key, value) VALUES(?, ?)");
  return s.bind_text(1, key).bind_text(2, value).run();
}

Result<std::optional<ProbeRecord>> Database::find_probe(const std::string& store_fsid,
                                                        const std::string& target_fsid) {
  Statement s(m_db,
              "SELECT store_fs, target_fs, link_errno, reflink_errno, copy_range_errno, probed_ns "
              "FROM fs_probes WHERE store_fsid = ? AND target_fsid = ?");
  s.bind_text(1, store_fsid).bind_text(2, target_fsid);
  TRY(auto row, s.step());
  if (!row) return std::optional<ProbeRecord>{};
  ProbeRecord r{store_fsid, target_fsid, s.text(0), s.text(1), static_cast<int>(s.i64(2)),
                static_cast<int>(s.i64(3)), static_cast<int>(s.i64(4)), s.i64(5)};
  return std::optional<ProbeRecord>{std::move(r)};
}

Result<void> Database::record_probe(const ProbeRecord& p) {
  Statement s(m_db,
              "INSERT OR REPLACE INTO fs_probes(store_fsid, target_fsid, store_fs, target_fs, link_errno, "
              "reflink_errno, copy_range_errno, probed_ns) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  s.bind_text(1, p.store_fsid).bind_text(2, p.target_fsid).bind_text(3, p.store_fs).bind_text(4, p.target_fs);
  s.bind(5, std::int64_t{p.link_errno}).bind(6, std::int64_t{p.reflink_errno}).bind(7, std::int64_t{p.copy_range_errno});
  s.bind(8, p.probed_ns);
  return s.run();
}

Result<bool> Database::has_object(const std::string& digest) {
  auto& s = m_cache->has_object;
  if (!s) s = std::make_unique<Statement>(m_db, "SELECT 1 FROM objects WHERE digest = ? AND refcount > 0 AND quarantined_ns = 0");
  s->bind_blob(1, digest);
  auto row = s->step();
  s->reset();
  return row;
}

// One statement, so the two tables are read in one snapshot: a claim moves a row between them.
// `collecting` first: a claimed object keeps its `objects` row until the collector drops it.
Result<ObjectState> Database::object_state(const std::string& digest) {
  auto& s = m_cache->object_state;
  if (!s)
    s = std::make_unique<Statement>(m_db, "SELECT -1, 0 FROM collecting WHERE digest = ?1 "
                                          "UNION ALL SELECT refcount, quarantined_ns FROM objects WHERE digest = ?1");
  s->bind_blob(1, digest);
  auto row = s->step();
  if (!row) {
    s->reset();
    return std::unexpected(row.error());
  }
  ObjectState state = !*row ? ObjectState::absent
                      : s->i64(0) >= 0 && s->i64(1) != 0 ? ObjectState::quarantined
                      : s->i64(0) > 0  ? ObjectState::live
                      : s->i64(0) == 0 ? ObjectState::orphan
                                       : ObjectState::collecting;
  s->reset();
  return state;
}

Result<std::optional<Database::ObjectCounts>> Database::object_counts(std::int64_t id) {
  auto& s = m_cache->object_counts;
  if (!s) s = std::make_unique<Statement>(m_db, "SELECT digest, refcount, disk_bytes FROM objects WHERE id = ?");
  s->bind(1, id);
  auto row = s->step();
  std::optional<ObjectCounts> out;
  if (row && *row) out = ObjectCounts{s->blob(0), s->i64(1), s->u64(2)};
  s->reset();
  if (!row) return std::unexpected(row.error());
  return out;
}

Result<std::optional<std::int64_t>> Database::object_id(const std::string& digest) {
  Statement s(m_db, "SELECT id FROM objects WHERE digest = ?");
  TRY(auto row, s.bind_blob(1, digest).step());
  if (!row) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{s.i64(0)};
}

Result<std::vector<ObjectRecord>> Database::all_objects() {
  Statement s(m_db, "SELECT digest, size, disk_bytes FROM objects ORDER BY digest");
  return sql::collect_rows(s, [](const Statement& r) {
    return ObjectRecord{r.blob(0), r.u64(1), r.u64(2), std::nullopt, {}};
  });
}

Result<std::optional<StatRecord>> Database::lookup_stat(const StatRecord& key) {
  auto& s = m_cache->lookup_stat;
  if (!s)
    s = std::make_unique<Statement>(
        m_db, "SELECT s.digest, s.ranges FROM stat_cache s JOIN objects o ON o.digest = s.digest "
              "WHERE s.dev = ? AND s.ino = ? AND s.size = ? AND s.mtime_ns = ? AND s.ctime_ns = ? AND o.refcount > 0 "
              "AND o.quarantined_ns = 0");
  s->bind(1, key.dev).bind(2, key.ino).bind(3, key.size).bind(4, key.mtime_ns).bind(5, key.ctime_ns);
  auto row = s->step();
  if (!row || !*row) {
    s->reset();
    if (!row) return std::unexpected(row.error());
    return std::optional<StatRecord>{};
  }
  StatRecord found = key;
  found.digest = s->blob(0);
  found.ranges = s->blob(1);
  s->reset();
  return std::optional<StatRecord>{std::move(found)};
}

Result<void> Database::commit_snapshot(const SnapshotRecord& snap, std::size_t object_count,
                                       const std::function<ObjectRecord(std::size_t)>& object_row,
                                       std::size_t stat_count,
                                       const std::function<StatRecord(std::size_t)>& stat_row, bool replace) {
  return in_transaction([&]() -> Result<void> {
    TRY(auto existing, find_snapshot(snap.name, snap.tag));
    if (existing) {
      if (!replace)
        return std::unexpected(make_error(ErrorCode::exists,
                                          fmt::format("snapshot {}:{} already exists (use --force to replace it)", snap.name, snap.tag)));
      TRY(auto removed, remove_snapshot_rows(snap.name, snap.tag));
      (void)removed;
    }
    Statement object(m_db, "INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes) VALUES(?, ?, ?, ?, ?) "
                           "ON CONFLICT(digest) DO UPDATE SET last_used_ns = excluded.last_used_ns");
    for (std::size_t i = 0; i < object_count; ++i) {
      const ObjectRecord o = object_row(i);
      const std::uint64_t disk = o.disk_bytes ? o.disk_bytes : (o.size + 4095) / 4096 * 4096;
      TRY_VOID(object.bind_blob(1, o.digest).bind(2, o.size).bind(3, snap.created_ns).bind(4, snap.created_ns)
                   .bind(5, disk).run());
      if (o.stamp) TRY_VOID(put_published(o.digest, o.fingerprint_name, *o.stamp));
    }
    Statement insert(m_db, "INSERT INTO snapshots(name, tag, manifest, created_ns, last_used_ns, entries, files, "
                           "bytes, new_objects, new_bytes, source) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bind_text(1, snap.name).bind_text(2, snap.tag).bind_blob(3, snap.manifest);
    insert.bind(4, snap.created_ns).bind(5, snap.last_used_ns).bind(6, snap.entries).bind(7, snap.files);
    insert.bind(8, snap.bytes).bind(9, snap.new_objects).bind(10, snap.new_bytes).bind_text(11, snap.source);
    TRY_VOID(insert.run());
    TRY_VOID(add_snapshot_refs(sqlite3_last_insert_rowid(m_db), object_count, object_row));
    return put_stat_rows(stat_count, stat_row);
  });
}

// The refs_added trigger costs ~6 B-tree lookups and an update of the snapshot's row per
// reference: 0.7 s of a first snapshot's 1 s commit on the Python stdlib. A new snapshot's refs are
// all added at once, so they go in with triggers off (this connection only, this statement only:
// SQLite builds triggers into a statement when it is prepared) and the trigger's three effects
// follow as three set statements. What stays per row is the objects_orphaned trigger, which keeps
// the store's orphan totals as refcounts pass 0 -> 1.
Result<void> Database::add_snapshot_refs(std::int64_t snapshot, std::size_t count,
                                         const std::function<ObjectRecord(std::size_t)>& row) {
  {
    sql::TriggersOff off(m_db);
    Statement ref(m_db, "INSERT OR IGNORE INTO refs(snapshot, object) SELECT ?, id FROM objects WHERE digest = ?");
    for (std::size_t i = 0; i < count; ++i) TRY_VOID(ref.bind(1, snapshot).bind_blob(2, row(i).digest).run());
  }
  // The trigger's guard: a reference to an object a collector is deleting aborts the commit.
  Statement collecting(m_db, "SELECT 1 FROM refs r JOIN objects o ON o.id = r.object JOIN collecting c ON c.digest = o.digest "
                             "WHERE r.snapshot = ? LIMIT 1");
  TRY(auto found, collecting.bind(1, snapshot).step());
  if (found) return std::unexpected(make_error(ErrorCode::exists, "database: object is being garbage-collected"));
  // An object only one other snapshot referenced (its ref_sum names it) is no longer unique to it...
  Statement shared(m_db, "UPDATE snapshots SET unique_objects = unique_objects - x.n, unique_bytes = unique_bytes - x.b "
                         "FROM (SELECT o.ref_sum AS id, count(*) AS n, sum(o.disk_bytes) AS b FROM refs r "
                         "JOIN objects o ON o.id = r.object AND o.refcount = 1 "
                         "WHERE r.snapshot = ?1 GROUP BY o.ref_sum) AS x WHERE snapshots.id = x.id");
  TRY_VOID(shared.bind(1, snapshot).run());
  // ...every referenced object gains one reference...
  Statement counts(m_db, "UPDATE objects SET refcount = refcount + 1, ref_sum = ref_sum + ?1 "
                         "WHERE id IN (SELECT object FROM refs WHERE snapshot = ?1)");
  TRY_VOID(counts.bind(1, snapshot).run());
  // ...and the new snapshot's unique figures are those now referenced once.
  Statement unique(m_db, "UPDATE snapshots SET (unique_objects, unique_bytes) = (SELECT count(*), coalesce(sum(o.disk_bytes), 0) "
                         "FROM refs r JOIN objects o ON o.id = r.object WHERE r.snapshot = ?1 AND o.refcount = 1) "
                         "WHERE id = ?1");
  return unique.bind(1, snapshot).run();
}

// The mirror image for rm and eviction, for any number of snapshots at once: refs_removed ran
// four subqueries per reference (3.7 s to rm a 100k-object snapshot in the GC at scale
// benchmark), and eviction ran this once per victim. Here the refs to drop are grouped by object
// first (an object several victims share loses all their references in one update), then each
// effect is one statement. The snapshots' own figures need no update: their rows go too.
// The temporary tables have no statistics, so the joins name their order (CROSS JOIN, IN): left to
// itself SQLite scanned all of objects and refs for a 100k-ref rm, 0.5 s more on a 400k store.
Result<void> Database::remove_snapshots(const std::vector<std::int64_t>& snapshots, std::vector<DroppedRefs>* dropped) {
  TRY_VOID(exec("CREATE TEMP TABLE IF NOT EXISTS gone_snapshots(id INTEGER PRIMARY KEY);"
                "CREATE TEMP TABLE IF NOT EXISTS gone_refs(object INTEGER PRIMARY KEY, k INTEGER NOT NULL, "
                "ids INTEGER NOT NULL);"
                "DELETE FROM gone_snapshots; DELETE FROM gone_refs;"));
  Statement gone(m_db, "INSERT OR IGNORE INTO gone_snapshots(id) VALUES(?)");
  for (const auto id : snapshots) TRY_VOID(gone.bind(1, id).run());
  if (dropped) {
    // In id order, so the inserts append to gone_refs' B-tree. Counting 1.46M refs again here
    // (GROUP BY: a sort) was 1.3 s of a 2 s eviction at 1M objects; gc's plan had the counts.
    std::sort(dropped->begin(), dropped->end(), [](const auto& a, const auto& b) { return a.object < b.object; });
    Statement insert(m_db, "INSERT INTO gone_refs(object, k, ids) VALUES(?, ?, ?)");
    for (const auto& d : *dropped) TRY_VOID(insert.bind(1, d.object).bind(2, d.count).bind(3, d.id_sum).run());
  } else {
    Statement count(m_db, "INSERT INTO gone_refs(object, k, ids) SELECT object, count(*), sum(snapshot) FROM refs "
                          "WHERE snapshot IN (SELECT id FROM gone_snapshots) GROUP BY object");
    TRY_VOID(count.run());
  }
  // An object left with one reference becomes unique to the snapshot holding it, whose id is
  // what remains of ref_sum once the victims' ids are taken out...
  Statement alone(m_db, "UPDATE snapshots SET unique_objects = unique_objects + x.n, unique_bytes = unique_bytes + x.b "
                        "FROM (SELECT o.ref_sum - g.ids AS id, count(*) AS n, sum(o.disk_bytes) AS b "
                        "FROM gone_refs g CROSS JOIN objects o "
                        "WHERE o.id = g.object AND o.refcount = g.k + 1 "
                        "GROUP BY o.ref_sum - g.ids) AS x WHERE snapshots.id = x.id");
  TRY_VOID(alone.run());
  // ...every object loses the dropped references, and one that reaches 0 is orphaned now. The
  // objects_orphaned trigger would update the usage row once per new orphan (100k times for a
  // big snapshot): it is off, and one statement adds the new orphans to the totals instead.
  {
    sql::TriggersOff off(m_db);
    Statement counts(m_db, "UPDATE objects SET refcount = refcount - (SELECT k FROM gone_refs g WHERE g.object = objects.id), "
                           "ref_sum = ref_sum - (SELECT ids FROM gone_refs g WHERE g.object = objects.id), "
                           "orphaned_seq = CASE WHEN refcount = (SELECT k FROM gone_refs g WHERE g.object = objects.id) "
                           "THEN (SELECT seq FROM usage WHERE id = 0) ELSE orphaned_seq END "
                           "WHERE id IN (SELECT object FROM gone_refs)");
    TRY_VOID(counts.run());
  }
  Statement orphans(m_db, "UPDATE usage SET orphan_objects = orphan_objects + x.n, orphan_bytes = orphan_bytes + x.b "
                          "FROM (SELECT count(*) AS n, coalesce(sum(o.disk_bytes), 0) AS b FROM gone_refs g "
                          "CROSS JOIN objects o WHERE o.id = g.object AND o.refcount = 0) AS x WHERE usage.id = 0");
  TRY_VOID(orphans.run());
  // ...and the rows go without refs_removed.
  {
    sql::TriggersOff off(m_db);
    Statement refs(m_db, "DELETE FROM refs WHERE snapshot IN (SELECT id FROM gone_snapshots)");
    TRY_VOID(refs.run());
  }
  Statement rows(m_db, "DELETE FROM snapshots WHERE id IN (SELECT id FROM gone_snapshots)");
  return rows.run();
}

Result<void> Database::put_stat_rows(std::size_t count, const std::function<StatRecord(std::size_t)>& row) {
  Statement cache(m_db, "INSERT OR REPLACE INTO stat_cache(dev, ino, size, mtime_ns, ctime_ns, digest, ranges) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?)");
  for (std::size_t i = 0; i < count; ++i) {
    const StatRecord r = row(i);
    cache.bind(1, r.dev).bind(2, r.ino).bind(3, r.size).bind(4, r.mtime_ns).bind(5, r.ctime_ns);
    TRY_VOID(cache.bind_blob(6, r.digest).bind_blob(7, r.ranges).run());
  }
  return {};
}

Result<bool> Database::refresh_snapshot(const SnapshotRecord& snapshot, std::int64_t now, std::size_t stat_count,
                                        const std::function<StatRecord(std::size_t)>& stat_row) {
  return in_transaction([&]() -> Result<bool> {
    TRY(auto current, find_snapshot(snapshot.name, snapshot.tag));
    if (!current || current->manifest != snapshot.manifest) return false;
    TRY_VOID(touch_snapshot(current->row_id, now));
    TRY_VOID(put_stat_rows(stat_count, stat_row));
    return true;
  });
}

Result<std::optional<SnapshotRecord>> Database::find_snapshot(const std::string& name, const std::string& tag) {
  Statement s(m_db, fmt::format("SELECT {} FROM snapshots WHERE name = ? AND tag = ?", k_snapshot_columns).c_str());
  s.bind_text(1, name).bind_text(2, tag);
  TRY(auto row, s.step());
  if (!row) return std::optional<SnapshotRecord>{};
  return std::optional<SnapshotRecord>{read_snapshot(s)};
}

Result<std::vector<SnapshotRecord>> Database::find_by_id_prefix(const std::string& hex_prefix) {
  return query_snapshots(m_db,
                         fmt::format("SELECT {} FROM snapshots WHERE lower(hex(manifest)) LIKE ? || '%'", k_snapshot_columns),
                         hex_prefix);
}

Result<std::vector<SnapshotRecord>> Database::list_snapshots() {
  return query_snapshots(m_db, fmt::format("SELECT {} FROM snapshots ORDER BY name, tag", k_snapshot_columns));
}

Result<void> Database::touch_snapshot(std::int64_t row_id, std::int64_t now) {
  Statement s(m_db, "UPDATE snapshots SET last_used_ns = ? WHERE id = ?");
  return s.bind(1, now).bind(2, row_id).run();
}

Result<bool> Database::remove_snapshot(const std::string& name, const std::string& tag) {
  return in_transaction([&] { return remove_snapshot_rows(name, tag); });
}

Result<bool> Database::set_pinned(const std::string& name, const std::string& tag, bool pinned) {
  Statement s(m_db, "UPDATE snapshots SET pinned = ? WHERE name = ? AND tag = ?");
  TRY_VOID(s.bind(1, std::int64_t{pinned}).bind_text(2, name).bind_text(3, tag).run());
  return sqlite3_changes(m_db) > 0;
}

Result<bool> Database::remove_snapshot_rows(const std::string& name, const std::string& tag) {
  TRY(auto found, find_snapshot(name, tag));
  if (!found) return false;
  TRY_VOID(remove_snapshots({found->row_id}));
  return true;
}

}  // namespace treesnap
