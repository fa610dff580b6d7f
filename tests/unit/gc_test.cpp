// Garbage collection through the public Store API on real files and a real database: reference
// counts, orphan removal with variants, leases, eviction order and pins, dry runs, hardlinked
// objects that free nothing, stale staging files, and `du` figures computed by hand.
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "meta/database.hpp"
#include "meta/lease.hpp"
#include "store_fixture.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

using test::ok;
namespace fs = std::filesystem;

constexpr std::int64_t k_hour_ns = 3'600'000'000'000;

std::string sha(std::string_view content) { return hash_bytes(DigestAlgorithm::sha256, content); }

// `len` bytes that no other call with another seed produces.
std::string content(int seed, std::size_t len) {
  std::string s(len, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(seed + 1);
  for (auto& c : s) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

// A pid that certainly ran on this boot and no longer does.
std::int64_t dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

class GcTest : public test::StoreTest {
 protected:

  std::string db_path() const { return (store_dir() / "treesnap.db").string(); }

  // refcount of the object, or nullopt when it has no row: read with plain SQL, not through
  // the code under test.
  std::optional<std::int64_t> refcount(const std::string& digest) {
    return column_of(digest, "SELECT refcount FROM objects WHERE digest = ?");
  }
  // The lease id of the collector deleting the object, or nullopt when none is.
  std::optional<std::int64_t> collector(const std::string& digest) {
    return column_of(digest, "SELECT collector FROM collecting WHERE digest = ?");
  }
  std::optional<std::int64_t> column_of(const std::string& digest, const char* sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    sqlite3_bind_blob(s, 1, digest.data(), static_cast<int>(digest.size()), SQLITE_TRANSIENT);
    std::optional<std::int64_t> out;
    if (sqlite3_step(s) == SQLITE_ROW) out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
  }

  fs::path object(const std::string& digest) const { return test::object_path(store_dir(), to_hex(digest)); }

  std::vector<std::string> variants_of(const std::string& digest) const {
    std::vector<std::string> out;
    const std::string hex = to_hex(digest);
    for (const auto& name : test::list_dir(store_dir() / "variants" / hex.substr(0, 2)))
      if (name.starts_with(hex + ".")) out.push_back(name);
    return out;
  }

  void snapshot(const std::string& name, const std::map<std::string, std::string>& files, mode_t mode = 0644) {
    test::force_remove(src());
    test::make_dir(src());
    for (const auto& [file, data] : files) test::write_file(src(file), data, mode);
    auto done = store().snapshot(src(), {.name = name, .replace = true});
    ASSERT_TRUE(ok(done));
  }

  // One number from plain SQL on the store's database.
  std::int64_t query(const std::string& text) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, text.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    std::int64_t value = -999;
    if (sqlite3_step(s) == SQLITE_ROW) value = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return value;
  }

  // Rows whose kept figures differ from a recount from refs: refcounts and ref_sums, snapshots' unique
  // figures, and the usage row. 0 when the triggers and the bulk path of commit agree.
  std::int64_t miscounted() {
    const std::string unique = "(SELECT count(*) FROM refs r JOIN objects o ON o.id = r.object "
                               "WHERE r.snapshot = s.id AND o.refcount = 1)";
    const std::string unique_bytes = "(SELECT coalesce(sum(o.disk_bytes), 0) FROM refs r JOIN objects o "
                                     "ON o.id = r.object WHERE r.snapshot = s.id AND o.refcount = 1)";
    return query("SELECT count(*) FROM objects o LEFT JOIN "
                 "(SELECT object, count(*) AS n, sum(snapshot) AS ids FROM refs GROUP BY object) AS x "
                 "ON x.object = o.id WHERE o.refcount >= 0 AND "
                 "(o.refcount != coalesce(x.n, 0) OR o.ref_sum != coalesce(x.ids, 0))") +
           query(fmt::format("SELECT count(*) FROM snapshots s WHERE unique_objects != {} OR unique_bytes != {}",
                             unique, unique_bytes)) +
           query("SELECT count(*) FROM usage WHERE objects != (SELECT count(*) FROM objects) OR "
                 "disk_bytes != (SELECT coalesce(sum(disk_bytes), 0) FROM objects) OR "
                 "orphan_objects != (SELECT count(*) FROM objects WHERE refcount <= 0) OR "
                 "orphan_bytes != (SELECT coalesce(sum(disk_bytes), 0) FROM objects WHERE refcount <= 0)");
  }

  std::uint64_t blocks(const fs::path& p) const { return static_cast<std::uint64_t>(test::lstat_path(p).st_blocks) * 512; }
};

TEST_F(GcTest, RefcountsFollowSnapshotReplaceAndRemove) {
  const std::string shared = content(1, 5000), only_a = content(2, 6000), only_b = content(3, 7000);
  snapshot("a", {{"s", shared}, {"x", only_a}});
  snapshot("b", {{"s", shared}, {"y", only_b}, {"y2", only_b}});  // two names, one reference
  EXPECT_EQ(refcount(sha(shared)), 2);
  EXPECT_EQ(refcount(sha(only_a)), 1);
  EXPECT_EQ(refcount(sha(only_b)), 1);

  // Replacing "a" drops x: shared stays referenced twice, x becomes an orphan.
  const std::string new_a = content(4, 100);
  snapshot("a", {{"s", shared}, {"z", new_a}});
  EXPECT_EQ(refcount(sha(shared)), 2);
  EXPECT_EQ(refcount(sha(only_a)), 0);
  EXPECT_EQ(refcount(sha(new_a)), 1);

  ASSERT_TRUE(ok(store().remove("b")));
  EXPECT_EQ(refcount(sha(shared)), 1);
  EXPECT_EQ(refcount(sha(only_b)), 0);
  auto usage = store().usage({});
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->orphan_objects, 4u);  // x, y, b's manifest and a's replaced one
}

// A snapshot's refs are added and removed in bulk (meta/database.cpp, add_snapshot_refs and
// remove_snapshots) rather than through the refs triggers: the figures must still equal a
// recount, after commits, replacements, rm and eviction.
TEST_F(GcTest, BulkRefChangesKeepTheFiguresARecountGives) {
  std::map<std::string, std::string> pool;
  for (int i = 0; i < 40; ++i) pool[fmt::format("f{:02}", i)] = content(100 + i, 100 + 300 * static_cast<std::size_t>(i));
  auto slice = [&](int first, int count) {
    std::map<std::string, std::string> out;
    for (int i = first; i < first + count; ++i) out.emplace(fmt::format("f{:02}", i), pool[fmt::format("f{:02}", i)]);
    return out;
  };
  snapshot("a", slice(0, 20));
  EXPECT_EQ(miscounted(), 0) << "first snapshot";
  snapshot("b", slice(10, 20));  // shares f10-f19 with a: both lose them from their unique figures
  EXPECT_EQ(miscounted(), 0) << "overlapping snapshot";
  snapshot("c", slice(15, 10));  // f15-f24: shared three ways and two ways
  EXPECT_EQ(miscounted(), 0) << "third snapshot";
  EXPECT_EQ(refcount(sha(pool["f15"])), 3);
  snapshot("a", slice(5, 10));  // replace: the old refs go and the new ones come in one commit
  EXPECT_EQ(miscounted(), 0) << "replaced snapshot";
  ASSERT_TRUE(ok(store().remove("b")));
  EXPECT_EQ(miscounted(), 0) << "after rm";
  ASSERT_TRUE(ok(store().gc({})));
  snapshot("d", slice(0, 40));  // orphans collected above come back as new objects
  EXPECT_EQ(miscounted(), 0) << "after gc and a snapshot of everything";
  EXPECT_EQ(query("SELECT count(*) FROM snapshots WHERE name = 'd' AND unique_objects > 0"), 1);
  snapshot("f", slice(30, 10));
  ASSERT_TRUE(ok(store().pin("f", true)));
  auto evicted = store().gc({.max_size = 1});  // evicts a, c and d: f shares f30-f39 with d
  ASSERT_TRUE(ok(evicted));
  EXPECT_EQ(evicted->evicted.size(), 3u);
  EXPECT_EQ(miscounted(), 0) << "after eviction";
  EXPECT_EQ(query("SELECT unique_objects FROM snapshots WHERE name = 'f'"), 11);  // its ten files and manifest

  // The trigger's guard holds in bulk too: a reference to an object being collected aborts the
  // commit and nothing of it stays.
  auto db = Database::open(db_path(), false);
  ASSERT_TRUE(ok(db));
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "INSERT INTO collecting(digest, collector, disk_bytes) VALUES(x'ee', 7, 4096)", nullptr,
                           nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  SnapshotRecord record{.name = "e", .tag = "latest", .manifest = sha(pool["f00"])};
  std::vector<ObjectRecord> rows{{sha(pool["f00"]), 100, 0, std::nullopt, {}}, {std::string(1, '\xee'), 1, 4096, std::nullopt, {}}};
  auto committed = db->commit_snapshot(record, rows, {}, false);
  ASSERT_FALSE(committed);
  EXPECT_NE(committed.error().message().find("being garbage-collected"), std::string::npos) << committed.error().message();
  EXPECT_EQ(query("SELECT count(*) FROM snapshots WHERE name = 'e'"), 0);
  EXPECT_EQ(query("SELECT collector FROM collecting WHERE digest = x'ee'"), 7);
  EXPECT_EQ(query("SELECT count(*) FROM objects WHERE digest = x'ee'"), 0);  // the commit's new row went too
  EXPECT_EQ(miscounted(), 0) << "after the aborted commit";
}

// Eviction takes the plan's count of the victims' refs only when every victim still goes; when
// one was used since the plan, the refs of those that go are counted again.
TEST_F(GcTest, EvictionRecountsDroppedRefsWhenAVictimWasUsedSinceThePlan) {
  const std::string shared = content(50, 3000), only_a = content(51, 4000), only_b = content(52, 5000);
  snapshot("a", {{"s", shared}, {"x", only_a}});
  snapshot("b", {{"s", shared}, {"y", only_b}});
  const auto a = query("SELECT id FROM snapshots WHERE name = 'a'");
  const auto b = query("SELECT id FROM snapshots WHERE name = 'b'");
  const auto a_used = query("SELECT last_used_ns FROM snapshots WHERE name = 'a'");
  const auto b_used = query("SELECT last_used_ns FROM snapshots WHERE name = 'b'");
  auto db = Database::open(db_path(), false);
  ASSERT_TRUE(ok(db));
  // Deliberately wrong counts: taking them would leave `shared` with refcount 2 - 5.
  const std::string shared_digest = sha(shared);
  auto shared_id = db->object_id(shared_digest);
  ASSERT_TRUE(ok(shared_id) && shared_id->has_value());
  std::vector<Database::DroppedRefs> wrong{{**shared_id, 5, a + b + 99}};
  auto evicted = db->evict_snapshots({{a, a_used}, {b, b_used + 1}}, wrong);  // b "used since"
  ASSERT_TRUE(ok(evicted));
  EXPECT_EQ(*evicted, (std::vector<bool>{true, false}));
  EXPECT_EQ(miscounted(), 0);
  EXPECT_EQ(refcount(shared_digest), 1);
  EXPECT_EQ(refcount(sha(only_a)), 0);
  EXPECT_EQ(query("SELECT unique_objects FROM snapshots WHERE name = 'b'"), 3);  // s, y and its manifest
}

TEST_F(GcTest, RemovesExactlyTheOrphansTheirRowsAndTheirVariants) {
  const std::string keep = content(1, 9000), lose = content(2, 9000);
  // Two read-only names of one content with different mtimes: a strict-metadata hardlink restore
  // links the second through a variant carrying its own mtime.
  test::write_file(src("keep"), keep, 0444);
  test::write_file(src("lose1"), lose, 0444);
  test::write_file(src("lose2"), lose, 0444);
  test::set_mtime(src("lose2"), 1'600'000'000'000'000'000);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "old"})));
  ASSERT_TRUE(ok(store().restore("old", dir() / "out", {.strategy = Strategy::hardlink, .strict_metadata = true})));
  ASSERT_EQ(variants_of(sha(lose)).size(), 1u);
  test::force_remove(dir() / "out");
  test::force_remove(src("lose1"));
  test::force_remove(src("lose2"));
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "new"})));
  ASSERT_TRUE(ok(store().remove("old")));

  auto report = store().gc({});
  ASSERT_TRUE(ok(report));
  EXPECT_EQ(report->objects_removed, 2u);  // `lose` and old's manifest
  EXPECT_EQ(report->variants_removed, 1u);
  EXPECT_FALSE(test::exists_nofollow(object(sha(lose))));
  EXPECT_TRUE(variants_of(sha(lose)).empty());
  EXPECT_EQ(refcount(sha(lose)), std::nullopt);
  EXPECT_TRUE(test::exists_nofollow(object(sha(keep))));
  EXPECT_EQ(refcount(sha(keep)), 1);
  auto verify = store().verify({});
  ASSERT_TRUE(ok(verify));
  EXPECT_TRUE(verify->bad.empty());
  ASSERT_TRUE(ok(store().restore("new", dir() / "again", {})));
  EXPECT_EQ(test::read_file(dir() / "again/keep"), keep);

  auto second = store().gc({});  // nothing left to do
  ASSERT_TRUE(ok(second));
  EXPECT_EQ(second->objects_removed, 0u);
}

TEST_F(GcTest, ALiveLeaseProtectsObjectsOrphanedWhileItRuns) {
  const std::string data = content(7, 4000);
  snapshot("s", {{"f", data}});
  {
    // A restore in flight: taken before the rm, so the rm's orphans are protected.
    auto lease = Lease::acquire(db_path(), "restore");
    ASSERT_TRUE(ok(lease));
    ASSERT_TRUE(ok(store().remove("s")));
    auto report = store().gc({});
    ASSERT_TRUE(ok(report));
    EXPECT_EQ(report->objects_removed, 0u);
    EXPECT_EQ(report->orphans_kept, 2u);
    EXPECT_TRUE(test::exists_nofollow(object(sha(data))));
  }
  auto report = store().gc({});
  ASSERT_TRUE(ok(report));
  EXPECT_EQ(report->objects_removed, 2u);
  EXPECT_FALSE(test::exists_nofollow(object(sha(data))));
}

TEST_F(GcTest, LeasesOfDeadProcessesAreIgnoredAndCleaned) {
  struct Case {
    const char* what;
    std::int64_t pid;
    std::string boot;
    std::int64_t expires;
    bool dead;
  };
  const std::int64_t now = now_ns();
  const std::vector<Case> cases = {
      {"alive", ::getpid(), boot_id(), now + k_hour_ns, false},
      {"pid gone", dead_pid(), boot_id(), now + k_hour_ns, true},
      {"other boot", ::getpid(), "00000000-0000-0000-0000-000000000000", now + k_hour_ns, true},
      {"expired", ::getpid(), boot_id(), now - 1, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string data = content(static_cast<int>(c.pid % 1000) + static_cast<int>(c.expires % 7), 3000) + c.what;
    snapshot("s", {{"f", data}});
    auto db = Database::open(db_path(), false);
    ASSERT_TRUE(ok(db));
    auto lease = db->add_lease("snapshot", c.pid, host_name(), c.boot, now, c.expires);
    ASSERT_TRUE(ok(lease));
    ASSERT_TRUE(ok(store().remove("s")));
    auto report = store().gc({});
    ASSERT_TRUE(ok(report));
    EXPECT_EQ(test::exists_nofollow(object(sha(data))), !c.dead);
    EXPECT_EQ(report->leases_cleaned, c.dead ? 1u : 0u);
    if (!c.dead) ASSERT_TRUE(ok(db->remove_lease(lease->id)));
    ASSERT_TRUE(ok(store().gc({})));
    EXPECT_FALSE(test::exists_nofollow(object(sha(data))));
  }
}

TEST_F(GcTest, HoldingAnOrphanProtectsItAndAnAbandonedCollectionIsDropped) {
  const std::string data = content(9, 2000);
  snapshot("s", {{"f", data}});
  ASSERT_TRUE(ok(store().remove("s")));
  {
    // The snapshot's path when it deduplicates against an orphan older than its lease.
    auto lease = Lease::acquire(db_path(), "snapshot");
    ASSERT_TRUE(ok(lease));
    auto held = (*lease)->hold(sha(data));
    ASSERT_TRUE(ok(held));
    EXPECT_TRUE(*held);
    auto report = store().gc({});
    ASSERT_TRUE(ok(report));
    EXPECT_EQ(report->objects_removed, 1u);  // the manifest, which nobody held
    EXPECT_TRUE(test::exists_nofollow(object(sha(data))));
    EXPECT_EQ(refcount(sha(data)), 0);
  }
  // A collector that died after marking the object: a holder drops the row and stores anew.
  auto db = Database::open(db_path(), false);
  ASSERT_TRUE(ok(db));
  auto dead = db->add_lease("gc", dead_pid(), host_name(), boot_id(), now_ns(), now_ns() + k_hour_ns);
  ASSERT_TRUE(ok(dead));
  auto claimed = db->claim_orphans(dead->id, 10);
  ASSERT_TRUE(ok(claimed));
  ASSERT_EQ(claimed->size(), 1u);
  // Claimed, its `objects` row not dropped yet: it reads as being collected, not as an orphan.
  EXPECT_EQ(refcount(sha(data)), 0);
  EXPECT_EQ(collector(sha(data)), dead->id);
  auto state = db->object_state(sha(data));
  ASSERT_TRUE(ok(state));
  EXPECT_EQ(*state, ObjectState::collecting);
  auto lease = Lease::acquire(db_path(), "snapshot");
  ASSERT_TRUE(ok(lease));
  auto held = (*lease)->hold(sha(data));
  ASSERT_TRUE(ok(held));
  EXPECT_FALSE(*held);
  EXPECT_EQ(refcount(sha(data)), std::nullopt);  // both rows went, the usage row already agreed
  EXPECT_EQ(collector(sha(data)), std::nullopt);
  EXPECT_EQ(miscounted(), 0);
  snapshot("again", {{"f", data}});  // stored anew
  EXPECT_EQ(refcount(sha(data)), 1);
  EXPECT_EQ(miscounted(), 0);
}

// verify hashes an object a gc has claimed but not yet unlinked: the claim deleted its
// fingerprints, and none may come back for a file that is about to go.
TEST_F(GcTest, VerifyRecordsNoFingerprintForAnObjectBeingCollected) {
  const std::string data = content(11, 3000);
  snapshot("s", {{"f", data}});
  ASSERT_TRUE(ok(store().remove("s")));
  auto db = Database::open(db_path(), false);
  ASSERT_TRUE(ok(db));
  auto collector = db->add_lease("gc", ::getpid(), host_name(), boot_id(), now_ns(), now_ns() + k_hour_ns);
  ASSERT_TRUE(ok(collector));
  ASSERT_TRUE(ok(db->claim_orphans(collector->id, 10)));
  const char* fingerprints = "SELECT count(*) FROM fingerprints WHERE digest = ?";
  EXPECT_EQ(column_of(sha(data), fingerprints), 0);
  auto verify = store().verify({});
  ASSERT_TRUE(ok(verify));
  EXPECT_TRUE(verify->bad.empty());
  EXPECT_EQ(column_of(sha(data), fingerprints), 0);
  ASSERT_TRUE(ok(db->remove_lease(collector->id)));
  ASSERT_TRUE(ok(store().gc({})));
  EXPECT_EQ(column_of(sha(data), fingerprints), 0);
  EXPECT_FALSE(test::exists_nofollow(object(sha(data))));
}

TEST_F(GcTest, AbandonedCollectionIsFinishedByTheNextGc) {
  const std::string data = content(10, 2000);
  snapshot("s", {{"f", data}});
  ASSERT_TRUE(ok(store().remove("s")));
  auto db = Database::open(db_path(), false);
  ASSERT_TRUE(ok(db));
  auto dead = db->add_lease("gc", dead_pid(), host_name(), boot_id(), now_ns(), now_ns() + k_hour_ns);
  ASSERT_TRUE(ok(dead));
  ASSERT_TRUE(ok(db->claim_orphans(dead->id, 10)));
  // It died after unlinking the file, before dropping the `objects` row: verify is not fooled.
  ASSERT_TRUE(fs::remove(object(sha(data))));
  auto verify = store().verify({});
  ASSERT_TRUE(ok(verify));
  EXPECT_TRUE(verify->bad.empty());
  auto dry = store().gc({.dry_run = true});  // what a claim holds is not an orphan to collect again
  ASSERT_TRUE(ok(dry));
  EXPECT_EQ(dry->objects_removed, 0u);
  auto report = store().gc({});
  ASSERT_TRUE(ok(report));
  EXPECT_EQ(report->objects_removed, 2u);
  EXPECT_FALSE(test::exists_nofollow(object(sha(data))));
  EXPECT_EQ(refcount(sha(data)), std::nullopt);
  EXPECT_EQ(collector(sha(data)), std::nullopt);
  EXPECT_EQ(miscounted(), 0);
  auto usage = store().usage({});
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->objects, 0u);
  EXPECT_EQ(usage->store_bytes, 0u);
}

TEST_F(GcTest, EvictsLeastRecentlyUsedFirstKeepsPinnedAndDryRunMatchesTheRealRun) {
  snapshot("one", {{"f", content(1, 40000)}});
  snapshot("two", {{"f", content(2, 40000)}});
  snapshot("three", {{"f", content(3, 40000)}});
  snapshot("four", {{"f", content(4, 40000)}});
  ASSERT_TRUE(ok(store().restore("one", dir() / "r1", {.strategy = Strategy::copy})));  // one is now the newest
  ASSERT_TRUE(ok(store().pin("two", true)));
  auto usage = store().usage({});
  ASSERT_TRUE(ok(usage));
  ASSERT_EQ(usage->snapshots.size(), 4u);
  EXPECT_EQ(usage->snapshots.front().name, "two:latest");  // LRU order, pins included in du
  EXPECT_TRUE(usage->snapshots.front().pinned);

  // Room for about two snapshots: three (the LRU unpinned) and then four must go.
  const std::uint64_t per = usage->snapshots[1].unique_bytes;
  GcOptions options{.dry_run = true, .max_size = usage->store_bytes - per - per / 2};
  auto planned = store().gc(options);
  ASSERT_TRUE(ok(planned));
  ASSERT_EQ(planned->evicted.size(), 2u);
  EXPECT_EQ(planned->evicted[0].name, "three:latest");
  EXPECT_EQ(planned->evicted[1].name, "four:latest");
  EXPECT_TRUE(planned->target_met);
  auto listed = store().list();
  ASSERT_TRUE(ok(listed));
  EXPECT_EQ(listed->size(), 4u);  // the dry run removed nothing
  EXPECT_TRUE(test::exists_nofollow(object(sha(content(3, 40000)))));

  options.dry_run = false;
  auto done = store().gc(options);
  ASSERT_TRUE(ok(done));
  ASSERT_EQ(done->evicted.size(), 2u);
  EXPECT_EQ(done->evicted[0].name, planned->evicted[0].name);
  EXPECT_EQ(done->objects_removed, planned->objects_removed);
  EXPECT_EQ(done->bytes_removed, planned->bytes_removed);
  EXPECT_EQ(done->bytes_freed, planned->bytes_freed);
  EXPECT_EQ(done->store_bytes_after, planned->store_bytes_after);
  EXPECT_FALSE(test::exists_nofollow(object(sha(content(3, 40000)))));
  listed = store().list();
  ASSERT_TRUE(ok(listed));
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "one:latest");
  EXPECT_EQ((*listed)[1].name, "two:latest");

  // Only pinned snapshots left besides "one": a target of 0 bytes evicts "one" and stops there.
  auto all = store().gc({.max_size = 1});
  ASSERT_TRUE(ok(all));
  EXPECT_FALSE(all->target_met);
  listed = store().list();
  ASSERT_TRUE(ok(listed));
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "two:latest");
  ASSERT_TRUE(ok(store().restore("two", dir() / "r2", {})));
  EXPECT_EQ(test::read_file(dir() / "r2/f"), content(2, 40000));
}

// The plan counts an object freed by the victim whose eviction drops its last reference: once when
// two victims share it, never when a kept snapshot shares it. For both digest sizes, as the plan
// keys its counts by the digest's bytes.
// A free-space target is met by what removal really frees, measured in the plan even when it
// is not a dry run (a size target alone skips those stats). Snapshots of 64 MiB and a target 96
// MiB above the free space now: the two least recently used must go, not the third, and the
// margin absorbs 32 MiB of other writers on the file system either way.
TEST_F(GcTest, AFreeSpaceTargetEvictsUntilWhatRemovalFreesMeetsIt) {
  constexpr std::size_t k_size = 64u << 20;
  snapshot("a", {{"f", content(21, k_size)}});
  snapshot("b", {{"f", content(22, k_size)}});
  snapshot("c", {{"f", content(23, k_size)}});
  auto before = store().gc({.dry_run = true});
  ASSERT_TRUE(ok(before));
  auto done = store().gc({.min_free_bytes = before->fs_free_before + (96u << 20)});
  ASSERT_TRUE(ok(done));
  ASSERT_EQ(done->evicted.size(), 2u);
  EXPECT_EQ(done->evicted[0].name, "a:latest");
  EXPECT_EQ(done->evicted[1].name, "b:latest");
  EXPECT_TRUE(done->target_met);
  EXPECT_GE(done->bytes_freed, 2 * k_size);
  auto listed = store().list();
  ASSERT_TRUE(ok(listed));
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "c:latest");
}

TEST_F(GcTest, EvictionFreesAnObjectOnceWhenVictimsShareItAndNeverWhenAKeptSnapshotDoes) {
  for (auto algorithm : {DigestAlgorithm::sha256, DigestAlgorithm::xxh3_128}) {
    SCOPED_TRACE(to_string(algorithm));
    const fs::path root = dir() / to_string(algorithm);
    auto opened = Store::open(root, {.digest = algorithm});
    ASSERT_TRUE(ok(opened));
    test::write_file(root / "treesnap.toml", "[gc]\nhigh_watermark = 100\nlow_watermark = 99\n");
    const Store& s = *opened;
    auto take = [&](const std::string& name, const std::map<std::string, std::string>& files) {
      test::force_remove(src());
      test::make_dir(src());
      for (const auto& [file, data] : files) test::write_file(src(file), data);
      ASSERT_TRUE(ok(s.snapshot(src(), {.name = name})));
    };
    const std::string shared_by_victims = content(1, 20000), shared_with_kept = content(2, 30000);
    const std::string only_a = content(3, 40000), only_b = content(4, 50000);
    take("a", {{"v", shared_by_victims}, {"k", shared_with_kept}, {"a", only_a}});
    take("b", {{"v", shared_by_victims}, {"b", only_b}});
    take("kept", {{"k", shared_with_kept}});
    ASSERT_TRUE(ok(s.pin("kept", true)));
    auto on_disk = [&](std::string_view data) {
      return blocks(test::object_path(root, to_hex(hash_bytes(algorithm, data))));
    };
    auto manifest_on_disk = [&](const std::string& name) {
      auto shown = s.show(name);
      return shown ? blocks(test::object_path(root, shown->id)) : 0;
    };
    const std::uint64_t a_bytes = on_disk(only_a) + manifest_on_disk("a");
    const std::uint64_t b_bytes = on_disk(shared_by_victims) + on_disk(only_b) + manifest_on_disk("b");

    auto planned = s.gc({.dry_run = true, .max_size = 1});  // unmet: every unpinned snapshot goes
    ASSERT_TRUE(ok(planned));
    ASSERT_EQ(planned->evicted.size(), 2u);
    EXPECT_EQ(planned->evicted[0].name, "a:latest");
    EXPECT_EQ(planned->evicted[0].objects, 2u);  // only_a and its manifest
    EXPECT_EQ(planned->evicted[0].bytes, a_bytes);
    EXPECT_EQ(planned->evicted[1].name, "b:latest");
    EXPECT_EQ(planned->evicted[1].objects, 3u);  // shared_by_victims, only_b and its manifest
    EXPECT_EQ(planned->evicted[1].bytes, b_bytes);
    EXPECT_EQ(planned->objects_removed, 5u);
    EXPECT_EQ(planned->bytes_removed, a_bytes + b_bytes);
    EXPECT_EQ(planned->bytes_freed, a_bytes + b_bytes);

    auto done = s.gc({.max_size = 1});
    ASSERT_TRUE(ok(done));
    EXPECT_EQ(done->objects_removed, planned->objects_removed);
    EXPECT_EQ(done->bytes_freed, planned->bytes_freed);
    EXPECT_FALSE(test::exists_nofollow(test::object_path(root, to_hex(hash_bytes(algorithm, shared_by_victims)))));
    EXPECT_TRUE(test::exists_nofollow(test::object_path(root, to_hex(hash_bytes(algorithm, shared_with_kept)))));
  }
}

TEST_F(GcTest, AnObjectHardlinkedFromARestoredTreeFreesNothing) {
  const std::string linked = content(5, 64 * 1024), copied = content(6, 64 * 1024);
  test::write_file(src("linked"), linked, 0444);
  test::write_file(src("copied"), copied, 0644);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "s"})));
  ASSERT_TRUE(ok(store().restore("s", dir() / "out", {})));  // auto: hardlinks read-only files
  struct stat out_st = test::lstat_path(dir() / "out/linked");
  if (out_st.st_ino != test::lstat_path(object(sha(linked))).st_ino) GTEST_SKIP() << "restore did not hardlink here";
  const std::uint64_t copied_blocks = blocks(object(sha(copied)));
  auto summary = store().show("s");
  ASSERT_TRUE(ok(summary));
  const std::uint64_t manifest_blocks = blocks(test::object_path(store_dir(), summary->id));
  ASSERT_TRUE(ok(store().remove("s")));

  auto planned = store().gc({.dry_run = true});
  ASSERT_TRUE(ok(planned));
  EXPECT_EQ(planned->objects_removed, 3u);
  EXPECT_EQ(planned->bytes_freed, copied_blocks + manifest_blocks);  // "linked" frees 0
  auto done = store().gc({});
  ASSERT_TRUE(ok(done));
  EXPECT_EQ(done->bytes_freed, planned->bytes_freed);
  EXPECT_GT(done->bytes_removed, done->bytes_freed);
  EXPECT_EQ(test::read_file(dir() / "out/linked"), linked);  // the restored tree is intact
}

TEST_F(GcTest, StaleStagingFilesGoAfterTheGracePeriod) {
  const fs::path tmp = store_dir() / "tmp";
  const std::int64_t old = now_ns() - 2 * k_hour_ns;
  const std::string gone = fmt::format("stage-{}-aaaa", dead_pid());
  const std::string young = fmt::format("stage-{}-bbbb", dead_pid());
  const std::string live = fmt::format("replace-{}-cccc", ::getpid());
  const std::string unnamed = "leftover";
  for (const auto& n : {gone, young, live, unnamed}) test::write_file(tmp / n, "partial");
  for (const auto& n : {gone, live, unnamed}) test::set_mtime(tmp / n, old);

  auto planned = store().gc({.dry_run = true});
  ASSERT_TRUE(ok(planned));
  EXPECT_EQ(planned->staging_removed, 2u);
  EXPECT_EQ(test::list_dir(tmp).size(), 4u);
  auto report = store().gc({});
  ASSERT_TRUE(ok(report));
  EXPECT_EQ(report->staging_removed, 2u);
  auto left = test::list_dir(tmp);
  std::vector<std::string> expected{young, live};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(left, expected);
  auto strict = store().gc({.grace_seconds = 0});
  ASSERT_TRUE(ok(strict));
  EXPECT_EQ(test::list_dir(tmp), std::vector<std::string>{live});  // its writer still runs
}

TEST_F(GcTest, FullSweepRemovesOldUnrecordedFilesOnly) {
  const std::string data = content(11, 3000);
  snapshot("s", {{"f", data}});
  const std::string stray = content(12, 3000);
  const fs::path stray_path = object(sha(stray));
  test::write_file(stray_path, stray, 0444);
  auto young = store().gc({.full = true});
  ASSERT_TRUE(ok(young));
  EXPECT_EQ(young->unrecorded_removed, 0u);  // younger than the grace period (by ctime)
  auto report = store().gc({.grace_seconds = 0, .full = true});
  ASSERT_TRUE(ok(report));
  EXPECT_EQ(report->unrecorded_removed, 1u);
  EXPECT_FALSE(test::exists_nofollow(stray_path));
  EXPECT_TRUE(test::exists_nofollow(object(sha(data))));
}

TEST_F(GcTest, DuFiguresEqualWhatTheFilesSay) {
  const std::string shared = content(1, 10000), a = content(2, 20000), b = content(3, 30000);
  snapshot("a", {{"s", shared}, {"x", a}});
  snapshot("b", {{"s", shared}, {"y", b}});
  auto ids = store().list();
  ASSERT_TRUE(ok(ids));
  // Manifests are recorded as their size rounded up to 4 KiB; content objects as their blocks.
  auto manifest = [&](int i) {
    return (test::lstat_path(test::object_path(store_dir(), (*ids)[static_cast<std::size_t>(i)].id)).st_size + 4095) / 4096 * 4096;
  };
  const std::uint64_t ua = blocks(object(sha(a))) + static_cast<std::uint64_t>(manifest(0));
  const std::uint64_t ub = blocks(object(sha(b))) + static_cast<std::uint64_t>(manifest(1));
  const std::uint64_t us = blocks(object(sha(shared)));
  auto usage = store().usage({});
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->objects, 5u);
  EXPECT_EQ(usage->store_bytes, ua + ub + us);
  EXPECT_EQ(usage->shared_bytes, us);
  EXPECT_EQ(usage->orphan_bytes, 0u);
  ASSERT_EQ(usage->snapshots.size(), 2u);
  EXPECT_EQ(usage->snapshots[0].unique_bytes, ua);
  EXPECT_EQ(usage->snapshots[0].unique_objects, 2u);
  EXPECT_EQ(usage->snapshots[1].unique_bytes, ub);
  EXPECT_EQ(usage->high_watermark, 100);  // as the fixture wrote them
  EXPECT_EQ(usage->low_watermark, 99);

  ASSERT_TRUE(ok(store().remove("a")));
  usage = store().usage({});
  ASSERT_TRUE(ok(usage));
  EXPECT_EQ(usage->orphan_bytes, ua);
  EXPECT_EQ(usage->orphan_objects, 2u);
  EXPECT_EQ(usage->shared_bytes, 0u);
  EXPECT_EQ(usage->snapshots[0].unique_bytes, ub + us);  // b alone holds the shared object now
  auto planned = store().gc({.dry_run = true});
  ASSERT_TRUE(ok(planned));
  EXPECT_EQ(planned->bytes_removed, usage->orphan_bytes);
}

TEST_F(GcTest, WatermarksComeFromTheStoreConfig) {
  const fs::path config = store_dir() / "treesnap.toml";
  {
    auto fresh = Store::open(dir() / "fresh", {});
    ASSERT_TRUE(ok(fresh));
    auto defaults = fresh->usage({});
    ASSERT_TRUE(ok(defaults));  // written with the store, with the documented defaults
    EXPECT_EQ(defaults->high_watermark, 90);
    EXPECT_EQ(defaults->low_watermark, 70);
  }
  test::write_file(config, "[gc]\nhigh_watermark = 50\nlow_watermark = 60\n");
  auto bad = store().usage({});
  EXPECT_TRUE(test::fails_with(bad, ErrorCode::invalid));
  test::write_file(config, "[gc]\nhigh_watermark = 99\nlow_watermark = 98\n[other]\nx = 1\n");
  EXPECT_TRUE(test::fails_with(store().usage({}), ErrorCode::invalid)) << "an unknown table is a typo to report";
  test::write_file(config, "[gc]\nhigh_watermark = 99\nlow_watermark = 98\n");
  auto good = store().usage({});
  ASSERT_TRUE(ok(good));
  EXPECT_EQ(good->high_watermark, 99);
  EXPECT_EQ(good->low_watermark, 98);
  // 100% can never be exceeded, so the automatic round never evicts; 1% always is, and the
  // round evicts everything unpinned (the disk cannot get to 99% free).
  snapshot("s", {{"f", content(1, 100)}});
  snapshot("t", {{"f", content(2, 100)}});
  ASSERT_TRUE(ok(store().pin("t", true)));
  test::write_file(config, "[gc]\nhigh_watermark = 100\nlow_watermark = 1\n");
  auto round = store().auto_gc();
  ASSERT_TRUE(ok(round));
  EXPECT_FALSE(round->has_value());
  test::write_file(config, "[gc]\nhigh_watermark = 2\nlow_watermark = 1\n");
  round = store().auto_gc();
  ASSERT_TRUE(ok(round));
  ASSERT_TRUE(round->has_value());
  ASSERT_EQ((*round)->evicted.size(), 1u);
  EXPECT_EQ((*round)->evicted[0].name, "s:latest");
  EXPECT_FALSE((*round)->target_met);
}

TEST_F(GcTest, BackgroundThreadCollectsOrphansAndStops) {
  const std::string data = content(13, 3000);
  snapshot("s", {{"f", data}});
  ASSERT_TRUE(ok(store().remove("s")));
  auto opened = Store::open(store_dir(), {});
  ASSERT_TRUE(ok(opened));
  opened->start_auto_gc(std::chrono::milliseconds(20));
  for (int i = 0; i < 250 && test::exists_nofollow(object(sha(data))); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  opened->stop_auto_gc();
  EXPECT_FALSE(test::exists_nofollow(object(sha(data))));
}

}  // namespace
}  // namespace treesnap
