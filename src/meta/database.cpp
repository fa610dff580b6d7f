#include "meta/database.hpp"

#include <chrono>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "util/error.hpp"

namespace treesnap {
namespace {

// Writers wait this long for the lock before `busy` surfaces; SQLite's busy handler sleeps with
// backoff in between, so concurrent snapshots queue instead of failing.
constexpr int k_busy_timeout_ms = 60'000;

constexpr const char* k_schema = R"sql(
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

Error db_error(sqlite3* db, std::string_view what) {
  int code = sqlite3_errcode(db);
  ErrorCode mapped = ErrorCode::io;
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) mapped = ErrorCode::busy;
  else if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) mapped = ErrorCode::corrupt;
  else if (code == SQLITE_FULL) mapped = ErrorCode::no_space;
  else if (code == SQLITE_CONSTRAINT) mapped = ErrorCode::exists;
  return make_error(mapped, fmt::format("database: {}: {}", what, sqlite3_errmsg(db)));
}

// A prepared statement with positional binding; finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : m_db(db) {
    m_ok = sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr) == SQLITE_OK;
  }
  ~Statement() { sqlite3_finalize(m_stmt); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return m_ok; }
  Statement& bind(int i, std::int64_t v) { sqlite3_bind_int64(m_stmt, i, v); return *this; }
  Statement& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
  Statement& bind_text(int i, const std::string& v) {
    sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind_blob(int i, const std::string& v) {
    sqlite3_bind_blob(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false.
  Result<bool> step() {
    if (!m_ok) return std::unexpected(db_error(m_db, "prepare"));
    int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return std::unexpected(db_error(m_db, "step"));
  }
  Result<void> run() {
    TRY(auto row, step());
    (void)row;
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
    return {};
  }
  void reset() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
  }
  std::int64_t i64(int col) const { return sqlite3_column_int64(m_stmt, col); }
  std::uint64_t u64(int col) const { return static_cast<std::uint64_t>(i64(col)); }
  std::string blob(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(m_stmt, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string();
  }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string();
  }

 private:
  sqlite3* m_db;
  sqlite3_stmt* m_stmt = nullptr;
  bool m_ok = false;
};

constexpr const char* k_snapshot_columns =
    "id, name, tag, manifest, created_ns, last_used_ns, entries, files, bytes, new_objects, new_bytes";

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
  return r;
}

Result<std::vector<SnapshotRecord>> query_snapshots(sqlite3* db, const std::string& sql,
                                                    const std::string& text_arg = {}) {
  Statement s(db, sql.c_str());
  if (!text_arg.empty()) s.bind_text(1, text_arg);
  std::vector<SnapshotRecord> out;
  for (;;) {
    TRY(auto row, s.step());
    if (!row) break;
    out.push_back(read_snapshot(s));
  }
  return out;
}

}  // namespace

struct Database::StatementCache {
  std::unique_ptr<Statement> has_object, lookup_stat;
};

Database::Database(sqlite3* db) : m_db(db), m_cache(std::make_unique<StatementCache>()) {}

Result<void> Database::begin_read() { return exec("BEGIN"); }
Result<void> Database::end_read() { return exec("COMMIT"); }

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
  TRY_VOID(db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  if (create) {
    TRY_VOID(db.exec("BEGIN IMMEDIATE"));
    auto made = db.exec(k_schema);
    if (!made) {
      (void)db.exec("ROLLBACK");
      return std::unexpected(made.error());
    }
    TRY_VOID(db.exec("COMMIT"));
    TRY_VOID(db.set_info_if_absent("schema_version", std::to_string(k_schema_version)));
  }
  TRY(auto version, db.get_info("schema_version"));
  if (!version) return std::unexpected(make_error(ErrorCode::invalid, path + " is not a treesnap store"));
  if (std::stoi(*version) > k_schema_version)
    return std::unexpected(make_error(ErrorCode::unsupported,
                                      fmt::format("store schema {} is newer than this treesnap ({})", *version, k_schema_version)));
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

Result<void> Database::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(m_db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    Error error = db_error(m_db, message ? message : sql);
    sqlite3_free(message);
    return std::unexpected(error);
  }
  return {};
}

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

Result<bool> Database::has_object(const std::string& digest) {
  auto& s = m_cache->has_object;
  if (!s) s = std::make_unique<Statement>(m_db, "SELECT 1 FROM objects WHERE digest = ?");
  s->bind_blob(1, digest);
  auto row = s->step();
  s->reset();
  return row;
}

Result<std::vector<ObjectRecord>> Database::all_objects() {
  Statement s(m_db, "SELECT digest, size FROM objects ORDER BY digest");
  std::vector<ObjectRecord> out;
  for (;;) {
    TRY(auto row, s.step());
    if (!row) break;
    out.push_back({s.blob(0), s.u64(1)});
  }
  return out;
}

Result<std::optional<StatRecord>> Database::lookup_stat(const StatRecord& key) {
  auto& s = m_cache->lookup_stat;
  if (!s)
    s = std::make_unique<Statement>(
        m_db, "SELECT s.digest, s.ranges FROM stat_cache s JOIN objects o ON o.digest = s.digest "
              "WHERE s.dev = ? AND s.ino = ? AND s.size = ? AND s.mtime_ns = ? AND s.ctime_ns = ?");
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

template <typename Body>
auto Database::in_transaction(Body body) -> decltype(body()) {
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
    Statement object(m_db, "INSERT INTO objects(digest, size, created_ns, last_used_ns) VALUES(?, ?, ?, ?) "
                           "ON CONFLICT(digest) DO UPDATE SET last_used_ns = excluded.last_used_ns");
    for (std::size_t i = 0; i < object_count; ++i) {
      const ObjectRecord o = object_row(i);
      TRY_VOID(object.bind_blob(1, o.digest).bind(2, o.size).bind(3, snap.created_ns).bind(4, snap.created_ns).run());
    }
    Statement insert(m_db, "INSERT INTO snapshots(name, tag, manifest, created_ns, last_used_ns, entries, files, "
                           "bytes, new_objects, new_bytes) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bind_text(1, snap.name).bind_text(2, snap.tag).bind_blob(3, snap.manifest);
    insert.bind(4, snap.created_ns).bind(5, snap.last_used_ns).bind(6, snap.entries).bind(7, snap.files);
    insert.bind(8, snap.bytes).bind(9, snap.new_objects).bind(10, snap.new_bytes);
    TRY_VOID(insert.run());
    std::int64_t row_id = sqlite3_last_insert_rowid(m_db);
    Statement ref(m_db, "INSERT OR IGNORE INTO refs(snapshot, digest) VALUES(?, ?)");
    for (std::size_t i = 0; i < object_count; ++i) TRY_VOID(ref.bind(1, row_id).bind_blob(2, object_row(i).digest).run());
    Statement cache(m_db, "INSERT OR REPLACE INTO stat_cache(dev, ino, size, mtime_ns, ctime_ns, digest, ranges) "
                          "VALUES(?, ?, ?, ?, ?, ?, ?)");
    for (std::size_t i = 0; i < stat_count; ++i) {
      const StatRecord r = stat_row(i);
      cache.bind(1, r.dev).bind(2, r.ino).bind(3, r.size).bind(4, r.mtime_ns).bind(5, r.ctime_ns);
      TRY_VOID(cache.bind_blob(6, r.digest).bind_blob(7, r.ranges).run());
    }
    return {};
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

Result<bool> Database::remove_snapshot_rows(const std::string& name, const std::string& tag) {
  TRY(auto found, find_snapshot(name, tag));
  if (!found) return false;
  Statement refs(m_db, "DELETE FROM refs WHERE snapshot = ?");
  TRY_VOID(refs.bind(1, found->row_id).run());
  Statement snap(m_db, "DELETE FROM snapshots WHERE id = ?");
  TRY_VOID(snap.bind(1, found->row_id).run());
  return true;
}

}  // namespace treesnap
