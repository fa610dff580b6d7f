// meta/schema: migration of a version-1 database, the trigger-kept figures, and `du` answered
// from them at a million objects.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "meta/database.hpp"
#include "store_fixture.hpp"

namespace treesnap {
namespace {

using test::ok;

// The version-1 schema as released, spelled out here so that a change to it shows up as a test
// that no longer describes real stores.
constexpr const char* k_v1 = R"sql(
CREATE TABLE store_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE objects(digest BLOB PRIMARY KEY, size INTEGER NOT NULL,
  created_ns INTEGER NOT NULL, last_used_ns INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE snapshots(id INTEGER PRIMARY KEY, name TEXT NOT NULL, tag TEXT NOT NULL, manifest BLOB NOT NULL,
  created_ns INTEGER NOT NULL, last_used_ns INTEGER NOT NULL, entries INTEGER NOT NULL, files INTEGER NOT NULL,
  bytes INTEGER NOT NULL, new_objects INTEGER NOT NULL, new_bytes INTEGER NOT NULL, UNIQUE(name, tag));
CREATE TABLE refs(snapshot INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY(snapshot, digest)) WITHOUT ROWID;
CREATE INDEX refs_by_digest ON refs(digest);
CREATE TABLE stat_cache(dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, digest BLOB NOT NULL, ranges BLOB,
  PRIMARY KEY(dev, ino)) WITHOUT ROWID;
INSERT INTO store_info VALUES('schema_version', '1'), ('digest', 'sha256');
INSERT INTO objects VALUES(x'01', 100, 1, 1), (x'02', 5000, 1, 1), (x'03', 10000, 1, 1), (x'04', 1, 1, 1);
INSERT INTO snapshots VALUES(1, 's1', 'latest', x'01', 10, 10, 1, 1, 1, 1, 1);
INSERT INTO snapshots VALUES(2, 's2', 'latest', x'03', 20, 20, 1, 1, 1, 1, 1);
INSERT INTO refs VALUES(1, x'01'), (1, x'02'), (2, x'02'), (2, x'03');
)sql";

void exec(sqlite3* db, const char* text) {
  char* message = nullptr;
  ASSERT_EQ(sqlite3_exec(db, text, nullptr, nullptr, &message), SQLITE_OK) << (message ? message : "");
}

std::int64_t query(sqlite3* db, const std::string& text) {
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, text.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::int64_t value = -999;
  if (sqlite3_step(s) == SQLITE_ROW) value = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return value;
}

class SchemaTest : public test::TempDirTest {};

TEST_F(SchemaTest, MigratesAVersion1DatabaseAndKeepsItsFiguresAfterwards) {
  const std::string path = (dir() / "treesnap.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  exec(raw, k_v1);
  sqlite3_close(raw);

  auto db = Database::open(path, false);
  ASSERT_TRUE(ok(db));
  EXPECT_EQ(**db->get_info("schema_version"), std::to_string(k_schema_version));
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  EXPECT_EQ(query(raw, "SELECT refcount FROM objects WHERE digest = x'01'"), 1);
  EXPECT_EQ(query(raw, "SELECT refcount FROM objects WHERE digest = x'02'"), 2);
  EXPECT_EQ(query(raw, "SELECT refcount FROM objects WHERE digest = x'03'"), 1);
  EXPECT_EQ(query(raw, "SELECT refcount FROM objects WHERE digest = x'04'"), 0);
  auto usage = db->usage();
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->objects, 4u);
  EXPECT_EQ(usage->disk_bytes, 4096u + 8192u + 12288u + 4096u);  // sizes rounded up to 4 KiB
  EXPECT_EQ(usage->orphan_objects, 1u);
  EXPECT_EQ(usage->orphan_bytes, 4096u);
  auto s1 = db->find_snapshot("s1", "latest");
  ASSERT_TRUE(ok(s1));
  EXPECT_EQ((*s1)->unique_objects, 1u);
  EXPECT_EQ((*s1)->unique_bytes, 4096u);

  // Opening again migrates nothing twice; the triggers keep the figures from now on.
  db = Database::open(path, false);
  ASSERT_TRUE(ok(db));
  auto removed = db->remove_snapshot("s1", "latest");
  ASSERT_TRUE(ok(removed));
  EXPECT_EQ(query(raw, "SELECT refcount FROM objects WHERE digest = x'02'"), 1);
  auto s2 = db->find_snapshot("s2", "latest");
  ASSERT_TRUE(ok(s2));
  EXPECT_EQ((*s2)->unique_objects, 2u);
  EXPECT_EQ((*s2)->unique_bytes, 8192u + 12288u);
  usage = db->usage();
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->orphan_objects, 2u);
  EXPECT_EQ(usage->orphan_bytes, 8192u);
  // The figures equal a full recount.
  EXPECT_EQ(query(raw, "SELECT sum(disk_bytes) FROM objects WHERE refcount <= 0"), 8192);
  sqlite3_close(raw);
}

// `du` reads totals, not objects: at a million objects it answers in milliseconds. The rows are
// inserted directly (with the triggers running, as a snapshot's commit would); the object count
// can be lowered with TREESNAP_DU_OBJECTS for quick runs.
// du's figures come from counters kept by the triggers and the bulk paths; at a million objects
// they must still equal a recount. Its speed (the issue's < 100 ms) is a benchmark's figure,
// bench/gc_scale.sh, not an assertion here: a shared CI machine would make it flaky.
TEST_F(SchemaTest, UsageOfAMillionObjectStoreEqualsARecount) {
  const char* env = std::getenv("TREESNAP_DU_OBJECTS");
  const std::int64_t objects = env ? std::atoll(env) : 1'000'000;
  const std::int64_t snapshots = 20, per_snapshot = objects / snapshots;
  auto store = Store::open(dir() / "store", {});
  ASSERT_TRUE(ok(store));
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir() / "store/treesnap.db").c_str(), &raw), SQLITE_OK);
  const auto fill_start = std::chrono::steady_clock::now();
  exec(raw, "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; BEGIN");
  sqlite3_stmt* obj = nullptr;
  sqlite3_stmt* snap = nullptr;
  sqlite3_stmt* ref = nullptr;
  sqlite3_prepare_v2(raw, "INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes) VALUES(?, ?, 1, 1, ?)",
                     -1, &obj, nullptr);
  sqlite3_prepare_v2(raw, "INSERT INTO snapshots(id, name, tag, manifest, created_ns, last_used_ns, entries, files, bytes, "
                          "new_objects, new_bytes) VALUES(?, ?, 'latest', ?, 1, ?, 0, 0, 0, 0, 0)", -1, &snap, nullptr);
  sqlite3_prepare_v2(raw, "INSERT INTO refs(snapshot, digest) VALUES(?, ?)", -1, &ref, nullptr);
  // Big-endian counters: rows arrive in key order, so filling costs B-tree appends rather than
  // random page visits (the figure measured is du's, which does not depend on the order).
  auto digest = [](std::int64_t i) {
    std::string d(32, '\0');
    for (int b = 0; b < 8; ++b) d[static_cast<std::size_t>(7 - b)] = static_cast<char>((i >> (8 * b)) & 0xff);
    return d;
  };
  for (std::int64_t i = 0; i < objects; ++i) {
    std::string d = digest(i);
    sqlite3_bind_blob(obj, 1, d.data(), 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(obj, 2, 1000 + i % 5000);
    sqlite3_bind_int64(obj, 3, 4096 * (1 + i % 3));
    ASSERT_EQ(sqlite3_step(obj), SQLITE_DONE);
    sqlite3_reset(obj);
  }
  for (std::int64_t s = 0; s < snapshots; ++s) {
    std::string name = "snap" + std::to_string(s), manifest = digest(s * per_snapshot);
    sqlite3_bind_int64(snap, 1, s + 1);
    sqlite3_bind_text(snap, 2, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(snap, 3, manifest.data(), 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(snap, 4, 100 + s);
    ASSERT_EQ(sqlite3_step(snap), SQLITE_DONE);
    sqlite3_reset(snap);
    // Each snapshot's own slice, and the first 1000 objects shared by all.
    auto add_ref = [&](std::int64_t i) {
      std::string d = digest(i);
      sqlite3_bind_int64(ref, 1, s + 1);
      sqlite3_bind_blob(ref, 2, d.data(), 32, SQLITE_TRANSIENT);
      int rc = sqlite3_step(ref);
      sqlite3_reset(ref);
      return rc;
    };
    for (std::int64_t i = s * per_snapshot; i < (s + 1) * per_snapshot; ++i) ASSERT_EQ(add_ref(i), SQLITE_DONE);
    if (s > 0)
      for (std::int64_t i = 0; i < 1000; ++i) ASSERT_EQ(add_ref(i), SQLITE_DONE);
  }
  sqlite3_finalize(obj);
  sqlite3_finalize(snap);
  sqlite3_finalize(ref);
  exec(raw, "COMMIT");
  const double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count();

  const auto start = std::chrono::steady_clock::now();
  auto usage = store->usage({});
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(ok(usage));
  std::printf("[  FIGURE  ] du of %lld objects: %.2f ms (filling the database took %.1f s)\n",
              static_cast<long long>(objects), ms, fill_s);
  EXPECT_EQ(usage->objects, static_cast<std::uint64_t>(objects));
  EXPECT_EQ(static_cast<std::int64_t>(usage->store_bytes), query(raw, "SELECT sum(disk_bytes) FROM objects"));
  EXPECT_EQ(static_cast<std::int64_t>(usage->shared_bytes),
            query(raw, "SELECT sum(disk_bytes) FROM objects WHERE refcount >= 2"));
  EXPECT_EQ(static_cast<std::int64_t>(usage->snapshots[1].unique_bytes),
            query(raw, "SELECT sum(o.disk_bytes) FROM refs r JOIN objects o ON o.digest = r.digest "
                       "WHERE r.snapshot = 2 AND o.refcount = 1"));
  sqlite3_close(raw);
}

}  // namespace
}  // namespace treesnap
