// meta/schema: migration of a version-1 database, the trigger-kept figures, and `du` answered
// from them at a million objects.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "meta/database.hpp"
#include "meta/schema.hpp"
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

// Rows whose kept figures differ from a recount from refs: refcount and ref_sum (one pass over
// refs grouped by object), snapshots' unique figures. 0 when triggers and bulk paths agree.
std::int64_t miscounted(sqlite3* db) {
  return query(db, "SELECT count(*) FROM objects o LEFT JOIN "
                   "(SELECT object, count(*) AS n, sum(snapshot) AS ids FROM refs GROUP BY object) AS x "
                   "ON x.object = o.id WHERE o.refcount >= 0 AND "
                   "(o.refcount != coalesce(x.n, 0) OR o.ref_sum != coalesce(x.ids, 0))") +
         query(db, "SELECT count(*) FROM snapshots s WHERE "
                   "unique_objects != (SELECT count(*) FROM refs r JOIN objects o ON o.id = r.object "
                   "WHERE r.snapshot = s.id AND o.refcount = 1) OR "
                   "unique_bytes != (SELECT coalesce(sum(o.disk_bytes), 0) FROM refs r JOIN objects o "
                   "ON o.id = r.object WHERE r.snapshot = s.id AND o.refcount = 1)");
}

// SQL that adds or removes the ref of snapshot `snapshot` to the object of digest x'NN': refs name
// objects by digest up to version 7 and by id from version 8.
std::string ref_change(sqlite3* db, bool add, std::int64_t snapshot, int object) {
  const bool by_id = query(db, "SELECT count(*) FROM pragma_table_info('refs') WHERE name = 'object'") == 1;
  const std::string id = fmt::format("(SELECT id FROM objects WHERE digest = x'{:02x}')", object);
  if (add)
    return by_id ? fmt::format("INSERT OR IGNORE INTO refs(snapshot, object) SELECT {}, id FROM objects WHERE digest = x'{:02x}'",
                               snapshot, object)
                 : fmt::format("INSERT OR IGNORE INTO refs(snapshot, digest) VALUES({}, x'{:02x}')", snapshot, object);
  return by_id ? fmt::format("DELETE FROM refs WHERE snapshot = {} AND object = {}", snapshot, id)
               : fmt::format("DELETE FROM refs WHERE snapshot = {} AND digest = x'{:02x}'", snapshot, object);
}

// A random reference change made with plain SQL, so that the refs triggers do the bookkeeping:
// a ref added to or removed from one of `snapshots` snapshots (ids 1..n) and `objects` objects
// (digests x'00'..).
void random_ref_change(sqlite3* db, std::mt19937& rng, int snapshots, int objects) {
  const int snapshot = static_cast<int>(rng() % static_cast<unsigned>(snapshots)) + 1;
  const int object = static_cast<int>(rng() % static_cast<unsigned>(objects));
  exec(db, ref_change(db, rng() % 3 != 0, snapshot, object).c_str());
}

// Objects x'05'..x'NN' (`objects`) and x'00', snapshots 3..`snapshots`, beside the version-1
// rows; `reverse_recording` records the objects in the reverse of their digests' order.
void add_pool(sqlite3* db, int snapshots, int objects, bool reverse_recording) {
  for (int i = 5; i <= objects; ++i)
    exec(db, fmt::format("INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes) "
                         "VALUES(x'{:02x}', {}, {}, 1, {})", i, 1000 * i, reverse_recording ? 1000 - i : 1,
                         4096 * (1 + i % 4)).c_str());
  exec(db, fmt::format("INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes) "
                       "VALUES(x'00', 1, {}, 1, 4096)", reverse_recording ? 5000 : 1).c_str());
  for (int id = 3; id <= snapshots; ++id)
    exec(db, fmt::format("INSERT INTO snapshots(id, name, tag, manifest, created_ns, last_used_ns, entries, files, "
                         "bytes, new_objects, new_bytes) VALUES({0}, 's{0}', 'latest', x'01', 1, 1, 0, 0, 0, 0, 0)", id)
                 .c_str());
}

// The first column of the first row as text ("" for none or NULL).
std::string text_of(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string out = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0)
                        ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0)) : "";
  sqlite3_finalize(s);
  return out;
}

unsigned test_seed() {
  const unsigned seed = std::random_device{}();
  std::printf("[  SEED    ] %u\n", seed);
  return seed;
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

// Version 6 replaced refs_by_digest with objects.ref_sum: a version-5 store whose figures the
// old triggers kept migrates with ref_sum equal to a recount and the unique figures unchanged,
// and the new triggers keep them from then on.
TEST_F(SchemaTest, MigratesAVersion5DatabaseWithRefSumsARecountGives) {
  const unsigned seed = test_seed();
  std::mt19937 rng(seed);
  const std::string path = (dir() / "treesnap.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  exec(raw, k_v1);
  ASSERT_TRUE(ok(migrate_schema(raw, 1, 5)));
  EXPECT_EQ(query(raw, "SELECT value FROM store_info WHERE key = 'schema_version'"), 5);
  constexpr int k_snapshots = 8, k_objects = 40;
  add_pool(raw, k_snapshots, k_objects, false);
  for (int i = 0; i < 400; ++i) random_ref_change(raw, rng, k_snapshots, k_objects + 1);
  const std::string figures = "SELECT group_concat(id || ':' || unique_objects || ':' || unique_bytes, ',') "
                              "FROM (SELECT * FROM snapshots ORDER BY id)";
  auto text = [&](const char* sql) { return text_of(raw, sql); };
  const std::string before = text(figures.c_str());
  const std::int64_t multiply_referenced = query(raw, "SELECT count(*) FROM objects WHERE refcount >= 2");
  sqlite3_close(raw);

  auto db = Database::open(path, false);
  ASSERT_TRUE(ok(db));
  EXPECT_EQ(**db->get_info("schema_version"), std::to_string(k_schema_version));
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  EXPECT_EQ(miscounted(raw), 0) << "after the migration";
  EXPECT_EQ(text(figures.c_str()), before);
  EXPECT_GT(multiply_referenced, 0);  // the sums were tested on shared objects too
  EXPECT_EQ(query(raw, "SELECT count(*) FROM sqlite_master WHERE name = 'refs_by_digest'"), 0);
  for (int i = 0; i < 400; ++i) {
    random_ref_change(raw, rng, k_snapshots, k_objects + 1);
    ASSERT_EQ(miscounted(raw), 0) << "after change " << i;
  }
  sqlite3_close(raw);
}

// Version 7 moved objects being collected (refcount -1 in objects) to their own table: a version-6
// store a collector stopped in mid-batch migrates with those rows in `collecting` under the same
// collector, gone from objects and from the totals, and a reference to one still aborts.
TEST_F(SchemaTest, MigratesAVersion6DatabaseWithObjectsBeingCollected) {
  const std::string path = (dir() / "treesnap.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  exec(raw, k_v1);
  ASSERT_TRUE(ok(migrate_schema(raw, 1, 6)));
  exec(raw, "INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes, refcount, collector) "
            "VALUES(x'05', 1, 1, 1, 8192, -1, 42)");
  exec(raw, "INSERT INTO fingerprints(name, digest, ino, size, mtime_ns, ctime_ns, mode) "
            "VALUES('objects/05/x', x'05', 1, 1, 1, 1, 33060)");
  sqlite3_close(raw);

  auto db = Database::open(path, false);
  ASSERT_TRUE(ok(db));
  EXPECT_EQ(**db->get_info("schema_version"), std::to_string(k_schema_version));
  auto state = db->object_state(std::string(1, '\x05'));
  ASSERT_TRUE(ok(state));
  EXPECT_EQ(*state, ObjectState::collecting);
  auto collector = db->collector_of(std::string(1, '\x05'));
  ASSERT_TRUE(ok(collector));
  EXPECT_EQ(*collector, std::optional<std::int64_t>{42});
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  EXPECT_EQ(query(raw, "SELECT disk_bytes FROM collecting WHERE digest = x'05'"), 8192);
  EXPECT_EQ(query(raw, "SELECT count(*) FROM objects WHERE refcount < 0"), 0);
  EXPECT_EQ(query(raw, "SELECT count(*) FROM fingerprints WHERE digest = x'05'"), 0);
  EXPECT_EQ(query(raw, "SELECT count(*) FROM sqlite_master WHERE name = 'objects_collecting'"), 0);
  auto usage = db->usage();
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->objects, 4u);  // the v1 rows; the one being collected is no longer counted
  EXPECT_EQ(usage->disk_bytes, 4096u + 8192u + 12288u + 4096u);
  EXPECT_EQ(miscounted(raw), 0);
  // No row in objects, so no ref can name it. A claim leaves the row until its collector drops it
  // (Database::drop_claimed_rows): a reference made in that state still aborts.
  EXPECT_EQ(query(raw, "SELECT count(*) FROM objects WHERE digest = x'05'"), 0);
  exec(raw, "INSERT INTO objects(digest, size, created_ns, last_used_ns, disk_bytes) VALUES(x'05', 1, 1, 1, 8192)");
  char* message = nullptr;
  EXPECT_NE(sqlite3_exec(raw, ref_change(raw, true, 1, 5).c_str(), nullptr, nullptr, &message), SQLITE_OK);
  EXPECT_NE(std::string(message ? message : "").find("being garbage-collected"), std::string::npos);
  sqlite3_free(message);
  sqlite3_close(raw);
}

// Version 8 named objects in refs by an id given in the order objects were recorded: a version-7
// store keeps every (snapshot, digest) reference, its figures and its objects in flight; the ids
// follow created_ns (not the digests' order), and the new triggers and rm keep the figures.
TEST_F(SchemaTest, MigratesAVersion7DatabaseToObjectIdsInTheOrderObjectsWereRecorded) {
  const unsigned seed = test_seed();
  std::mt19937 rng(seed);
  const std::string path = (dir() / "treesnap.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  exec(raw, k_v1);
  ASSERT_TRUE(ok(migrate_schema(raw, 1, 7)));
  constexpr int k_snapshots = 6, k_objects = 40;
  add_pool(raw, k_snapshots, k_objects, true);  // ids must not follow the digests
  for (int i = 0; i < 300; ++i) random_ref_change(raw, rng, k_snapshots, k_objects + 1);
  exec(raw, "INSERT INTO collecting(digest, collector, disk_bytes) VALUES(x'f0', 42, 8192)");
  auto text = [&](const char* sql) { return text_of(raw, sql); };
  const char* figures = "SELECT group_concat(id || ':' || unique_objects || ':' || unique_bytes, ',') "
                        "FROM (SELECT * FROM snapshots ORDER BY id)";
  const char* usage = "SELECT objects || ':' || disk_bytes || ':' || orphan_objects || ':' || orphan_bytes FROM usage";
  const char* counts = "SELECT group_concat(hex(digest) || ':' || refcount || ':' || ref_sum, ',') "
                       "FROM (SELECT * FROM objects ORDER BY digest)";
  const std::string refs_before = text("SELECT group_concat(snapshot || ':' || hex(digest), ',') "
                                       "FROM (SELECT * FROM refs ORDER BY snapshot, digest)");
  const std::string figures_before = text(figures), usage_before = text(usage), counts_before = text(counts);
  ASSERT_GT(query(raw, "SELECT count(*) FROM refs"), 50);
  sqlite3_close(raw);

  auto db = Database::open(path, false);
  ASSERT_TRUE(ok(db));
  EXPECT_EQ(**db->get_info("schema_version"), std::to_string(k_schema_version));
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  EXPECT_EQ(text("SELECT group_concat(snapshot || ':' || hex(digest), ',') FROM "
                 "(SELECT r.snapshot, o.digest FROM refs r JOIN objects o ON o.id = r.object ORDER BY r.snapshot, o.digest)"),
            refs_before);
  EXPECT_EQ(text(figures), figures_before);
  EXPECT_EQ(text(usage), usage_before);
  EXPECT_EQ(text(counts), counts_before);
  EXPECT_EQ(query(raw, "SELECT count(*) FROM objects a JOIN objects b ON a.id < b.id AND a.created_ns > b.created_ns"), 0);
  EXPECT_EQ(query(raw, "SELECT count(*) FROM pragma_table_info('objects') WHERE name = 'collector'"), 0);
  EXPECT_EQ(miscounted(raw), 0);
  auto state = db->object_state(std::string(1, '\xf0'));
  ASSERT_TRUE(ok(state));
  EXPECT_EQ(*state, ObjectState::collecting);
  for (int i = 0; i < 300; ++i) {
    random_ref_change(raw, rng, k_snapshots, k_objects + 1);
    ASSERT_EQ(miscounted(raw), 0) << "after change " << i;
  }
  ASSERT_TRUE(ok(db->remove_snapshot("s3", "latest")));
  EXPECT_EQ(miscounted(raw), 0);
  EXPECT_EQ(query(raw, "SELECT count(*) FROM refs WHERE snapshot = 3"), 0);
  sqlite3_close(raw);
}

// Random commits (with replacement), rm, eviction and single-ref changes on a small pool of
// objects that the snapshots share in every combination: the bulk paths and the triggers keep
// refcount, ref_sum and the unique figures equal to a recount.
TEST_F(SchemaTest, RandomChangesOfSharedObjectsKeepTheUniqueFiguresARecountGives) {
  const unsigned seed = test_seed();
  std::mt19937 rng(seed);
  const std::string path = (dir() / "treesnap.db").string();
  auto db = Database::open(path, true);
  ASSERT_TRUE(ok(db));
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  constexpr int k_objects = 30, k_names = 6;
  auto digest = [](int i) { return std::string(1, static_cast<char>(i)); };
  std::int64_t clock = 1, most_shared = 0;
  for (int step = 0; step < 300; ++step) {
    const std::string name = fmt::format("n{}", rng() % k_names);
    const unsigned op = rng() % 10;
    if (op < 5) {
      std::vector<ObjectRecord> rows;
      const unsigned keep = 2 + rng() % 4;  // each object with probability 1/keep
      for (int i = 0; i < k_objects; ++i)
        if (rng() % keep == 0) rows.push_back({digest(i), static_cast<std::uint64_t>(100 * i), 4096u * (1 + i % 3), std::nullopt, {}});
      if (rows.empty()) rows.push_back({digest(0), 1, 4096, std::nullopt, {}});
      SnapshotRecord record{.name = name, .tag = "latest", .manifest = rows[0].digest, .created_ns = clock,
                            .last_used_ns = clock};
      ++clock;
      ASSERT_TRUE(ok(db->commit_snapshot(record, rows, {}, true)));
    } else if (op < 7) {
      ASSERT_TRUE(ok(db->remove_snapshot(name, "latest")));
    } else if (op < 8) {
      auto order = db->eviction_order();
      ASSERT_TRUE(ok(order));
      std::vector<std::pair<std::int64_t, std::int64_t>> victims;
      for (const auto& r : *order)
        if (rng() % 2 == 0) victims.emplace_back(r.row_id, r.last_used_ns);
      ASSERT_TRUE(ok(db->evict_snapshots(victims)));
    } else {
      const std::int64_t top = query(raw, "SELECT coalesce(max(id), 0) FROM snapshots");
      if (top > 0) {
        // Only to snapshots that exist: a ref to a removed one would never be removed.
        const std::int64_t id = query(raw, fmt::format("SELECT id FROM snapshots ORDER BY id LIMIT 1 OFFSET {}",
                                                       rng() % static_cast<unsigned>(query(raw, "SELECT count(*) FROM snapshots"))));
        const int object = static_cast<int>(rng() % k_objects);
        exec(raw, ref_change(raw, rng() % 2 != 0, id, object).c_str());
      }
    }
    ASSERT_EQ(miscounted(raw), 0) << "after step " << step << " (operation " << op << ")";
    most_shared = std::max(most_shared, query(raw, "SELECT coalesce(max(refcount), 0) FROM objects"));
  }
  EXPECT_GE(most_shared, 3);  // objects were shared three ways and more on the way
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
  sqlite3_prepare_v2(raw, "INSERT INTO refs(snapshot, object) SELECT ?, id FROM objects WHERE digest = ?", -1, &ref, nullptr);
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
            query(raw, "SELECT sum(o.disk_bytes) FROM refs r JOIN objects o ON o.id = r.object "
                       "WHERE r.snapshot = 2 AND o.refcount = 1"));
  sqlite3_close(raw);
}

}  // namespace
}  // namespace treesnap
