// The store's metadata in SQLite (WAL mode, so readers never block the writer and several
// processes share one store). Schema and its reasons: docs/format.md, "Metadata database".
// One Database is one connection: use it from one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "treesnap/result.hpp"

namespace treesnap {

inline constexpr int k_schema_version = 1;

struct SnapshotRecord {
  std::int64_t row_id = 0;
  std::string name;
  std::string tag;
  std::string manifest;  // raw digest bytes
  std::int64_t created_ns = 0;
  std::int64_t last_used_ns = 0;
  std::uint64_t entries = 0, files = 0, bytes = 0, new_objects = 0, new_bytes = 0;
};

struct ObjectRecord {
  std::string digest;
  std::uint64_t size = 0;
};

// What the stat cache knows about one source file: if (dev, ino, size, mtime, ctime) still match,
// the content is `digest` and has `ranges` (encoded), without reading the file again.
struct StatRecord {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  std::string digest;
  std::string ranges;
};

class Database {
 public:
  // Opens (and with `create`, creates) the database file.
  static Result<Database> open(const std::string& path, bool create);
  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  ~Database();

  Result<std::optional<std::string>> get_info(const std::string& key);
  Result<void> set_info_if_absent(const std::string& key, const std::string& value);

  // A read transaction around many lookups: one lock and one snapshot of the database instead of
  // one per statement (which costs two fcntl calls and an fstat each).
  Result<void> begin_read();
  Result<void> end_read();

  Result<bool> has_object(const std::string& digest);
  Result<std::vector<ObjectRecord>> all_objects();
  // The digest and ranges cached for this file, if its stat still matches and the object exists.
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

  Result<std::optional<SnapshotRecord>> find_snapshot(const std::string& name, const std::string& tag);
  // Snapshots whose manifest digest (hex) starts with `prefix`.
  Result<std::vector<SnapshotRecord>> find_by_id_prefix(const std::string& hex_prefix);
  Result<std::vector<SnapshotRecord>> list_snapshots();
  Result<void> touch_snapshot(std::int64_t row_id, std::int64_t now_ns);
  // Removes the snapshot row and its references in one transaction; false when absent.
  Result<bool> remove_snapshot(const std::string& name, const std::string& tag);

 private:
  struct StatementCache;
  explicit Database(sqlite3* db);
  Result<void> exec(const char* sql);
  Result<bool> remove_snapshot_rows(const std::string& name, const std::string& tag);
  // Runs `body` inside BEGIN IMMEDIATE … COMMIT, rolling back when it fails.
  template <typename Body>
  auto in_transaction(Body body) -> decltype(body());
  sqlite3* m_db = nullptr;
  std::unique_ptr<StatementCache> m_cache;  // statements of the hot lookups, prepared once
};

}  // namespace treesnap
