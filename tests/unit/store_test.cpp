// The public Store API end to end on real directories: snapshots and the stat cache, names,
// listing, verify, opening, several threads at once. Restores are in restore_test.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "core/digest.hpp"
#include "snapshot/snapshotter.hpp"
#include "store_fixture.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
using test::StoreTest;
namespace fs = std::filesystem;

TEST_F(StoreTest, StatCacheSkipsUnchangedFilesAndCatchesChangedOnes) {
  for (const char* name : {"a", "b", "c"}) test::write_file(src(name), std::string("content of ") + name);
  const std::int64_t b_mtime = test::mtime_ns(test::lstat_path(src("b")));
  test::wait_out_racy_window();
  auto first = store().snapshot(src(), {.name = "s:1"});
  ASSERT_TRUE(ok(first));
  EXPECT_EQ(first->hashed_files, 3u);
  EXPECT_EQ(first->new_objects, 3u);
  auto second = store().snapshot(src(), {.name = "s:2"});
  ASSERT_TRUE(ok(second));
  EXPECT_EQ(second->hashed_files, 0u);
  EXPECT_EQ(second->new_objects, 0u);
  EXPECT_EQ(second->id, first->id);

  // Same size and the old mtime put back: only the ctime tells the cache the file changed.
  test::write_file(src("b"), "CONTENT OF b");
  test::set_mtime(src("b"), b_mtime);
  auto third = store().snapshot(src(), {.name = "s:3"});
  ASSERT_TRUE(ok(third));
  EXPECT_EQ(third->hashed_files, 1u);
  EXPECT_EQ(third->new_objects, 1u);
  EXPECT_NE(third->id, first->id);
  ASSERT_TRUE(ok(store().restore("s:3", dir() / "out", {})));
  EXPECT_EQ(test::read_file(dir() / "out/b"), "CONTENT OF b");
}

// Re-snapshotting an unchanged tree under its own name finds the same manifest and only marks the
// snapshot used; a changed tree under that name replaces it and orphans what it no longer needs.
TEST_F(StoreTest, ResnapshotOfAnUnchangedTreeKeepsTheRecordAndAChangedOneReplacesIt) {
  test::write_file(src("stays"), "stays the same");
  test::write_file(src("goes"), "replaced later");
  test::wait_out_racy_window();
  auto first = store().snapshot(src(), {.name = "env"});
  ASSERT_TRUE(ok(first));
  auto usage_before = store().usage({});
  ASSERT_TRUE(ok(usage_before));

  auto again = store().snapshot(src(), {.name = "env", .replace = true});
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(again->id, first->id);
  auto shown = store().show("env");
  ASSERT_TRUE(ok(shown));
  EXPECT_EQ(shown->created_ns, first->created_ns) << "the same snapshot, not a new record";
  EXPECT_GT(shown->last_used_ns, first->last_used_ns);
  auto usage_after = store().usage({});
  ASSERT_TRUE(ok(usage_after));
  EXPECT_EQ(usage_after->objects, usage_before->objects);
  EXPECT_EQ(usage_after->orphan_objects, 0u);

  test::write_file(src("goes"), "the new content");
  auto changed = store().snapshot(src(), {.name = "env", .replace = true});
  ASSERT_TRUE(ok(changed));
  EXPECT_NE(changed->id, first->id);
  auto usage_changed = store().usage({});
  ASSERT_TRUE(ok(usage_changed));
  EXPECT_EQ(usage_changed->orphan_objects, 2u) << "the old content of goes and the old manifest";
  ASSERT_TRUE(ok(store().restore("env", dir() / "out", {})));
  EXPECT_EQ(test::read_file(dir() / "out/goes"), "the new content");
  EXPECT_EQ(test::read_file(dir() / "out/stays"), "stays the same");
}

TEST_F(StoreTest, SnapshotNames) {
  auto plain = parse_snapshot_name("a");
  ASSERT_TRUE(ok(plain));
  EXPECT_EQ(*plain, (std::pair<std::string, std::string>{"a", "latest"}));
  auto tagged = parse_snapshot_name("org/a.b_c-d:v1.2");
  ASSERT_TRUE(ok(tagged));
  EXPECT_EQ(*tagged, (std::pair<std::string, std::string>{"org/a.b_c-d", "v1.2"}));
  for (const std::string& bad : std::vector<std::string>{"", ":", "a:", ":b", "a b", "a:b/c", "a:b:c", "caf\xc3\xa9",
                                                         "a\n", std::string(129, 'a')}) {
    EXPECT_TRUE(fails_with(parse_snapshot_name(bad), ErrorCode::invalid)) << '"' << bad << '"';
  }
  EXPECT_TRUE(ok(parse_snapshot_name(std::string(128, 'a'))));

  test::write_file(src("f"), "x");
  EXPECT_TRUE(fails_with(store().snapshot(src(), {.name = "bad name"}), ErrorCode::invalid));
  auto list = store().list();
  ASSERT_TRUE(ok(list));
  EXPECT_TRUE(list->empty());
}

TEST_F(StoreTest, ShowListEntriesRemove) {
  test::make_dir(src("dir"));
  test::write_file(src("dir/file"), "12345");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "b:1"})));
  test::write_file(src("extra"), "xyz");  // a different tree, so the two ids differ
  auto a = store().snapshot(src(), {.name = "a"});
  ASSERT_TRUE(ok(a));
  EXPECT_TRUE(fails_with(store().snapshot(src(), {.name = "a"}), ErrorCode::exists));
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "a", .replace = true})));

  auto list = store().list();
  ASSERT_TRUE(ok(list));
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "a:latest");
  EXPECT_EQ((*list)[1].name, "b:1");

  auto by_name = store().show("a:latest");
  ASSERT_TRUE(ok(by_name));
  EXPECT_EQ(by_name->id, a->id);
  EXPECT_EQ(by_name->entries, 4u);
  EXPECT_EQ(by_name->files, 2u);
  EXPECT_EQ(by_name->bytes, 8u);
  auto by_id = store().show(a->id.substr(0, 12));
  ASSERT_TRUE(ok(by_id));
  EXPECT_EQ(by_id->id, a->id);
  EXPECT_TRUE(fails_with(store().show("nope"), ErrorCode::not_found));

  auto entries = store().entries("b:1");
  ASSERT_TRUE(ok(entries));
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].path, "");
  EXPECT_EQ((*entries)[0].type, EntryType::directory);
  EXPECT_EQ((*entries)[1].path, "dir");
  EXPECT_EQ((*entries)[2].path, "dir/file");
  EXPECT_EQ((*entries)[2].size, 5u);
  EXPECT_EQ((*entries)[2].digest, hash_bytes(DigestAlgorithm::sha256, "12345"));

  ASSERT_TRUE(ok(store().remove("b:1")));
  EXPECT_TRUE(fails_with(store().show("b:1"), ErrorCode::not_found));
  EXPECT_TRUE(fails_with(store().remove("b:1"), ErrorCode::not_found));
  EXPECT_EQ(store().list()->size(), 1u);
  EXPECT_TRUE(fails_with(store().restore("b:1", dir() / "out", {}), ErrorCode::not_found));
  EXPECT_FALSE(test::exists_nofollow(dir() / "out"));
}

TEST_F(StoreTest, Xxh3StoreRoundTrip) {
  auto xstore = Store::open(dir() / "xstore", {.digest = DigestAlgorithm::xxh3_128});
  ASSERT_TRUE(ok(xstore));
  EXPECT_EQ(xstore->digest_algorithm(), DigestAlgorithm::xxh3_128);
  test::write_file(src("f"), "abc");
  auto snap = xstore->snapshot(src(), {.name = "x"});
  ASSERT_TRUE(ok(snap));
  EXPECT_EQ(snap->id.size(), 32u);
  EXPECT_EQ(snap->manifest_digest, "xxh3-128:" + snap->id);
  EXPECT_TRUE(test::exists_nofollow(test::object_path(dir() / "xstore", "06b05ab6733a618578af5f94892f3950")));
  ASSERT_TRUE(ok(xstore->restore("x", dir() / "out", {})));
  EXPECT_EQ(test::read_file(dir() / "out/f"), "abc");

  auto reopened = Store::open(dir() / "xstore", {.digest = DigestAlgorithm::sha256});
  ASSERT_TRUE(ok(reopened));
  EXPECT_EQ(reopened->digest_algorithm(), DigestAlgorithm::xxh3_128) << "the option applies only on creation";
}

TEST_F(StoreTest, VerifyReportsDamagedAndMissingObjects) {
  test::write_file(src("damaged"), "to be damaged");
  test::write_file(src("missing"), "to be deleted");
  test::write_file(src("fine"), "left alone");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "v"})));
  auto clean = store().verify({});
  ASSERT_TRUE(ok(clean));
  EXPECT_TRUE(clean->bad.empty());
  EXPECT_EQ(clean->objects, 4u);  // three files and the manifest

  const std::string damaged = to_hex(hash_bytes(DigestAlgorithm::sha256, "to be damaged"));
  const std::string missing = to_hex(hash_bytes(DigestAlgorithm::sha256, "to be deleted"));
  test::flip_byte(test::object_path(store_dir(), damaged), 5);
  fs::remove(test::object_path(store_dir(), missing));
  auto report = store().verify({});
  ASSERT_TRUE(ok(report));
  ASSERT_EQ(report->bad.size(), 2u);
  std::map<std::string, BadObject> by_digest;
  for (const auto& b : report->bad) by_digest[b.digest] = b;
  ASSERT_TRUE(by_digest.contains("sha256:" + damaged));
  EXPECT_EQ(by_digest["sha256:" + damaged].path, "objects/" + damaged.substr(0, 2) + "/" + damaged);
  EXPECT_NE(by_digest["sha256:" + damaged].reason.find("digest"), std::string::npos);
  ASSERT_TRUE(by_digest.contains("sha256:" + missing));
  EXPECT_EQ(by_digest["sha256:" + missing].reason, "missing");
}

TEST_F(StoreTest, OpenRefusesForeignDirectoriesAndMissingStores) {
  test::make_dir(dir() / "foreign");
  test::write_file(dir() / "foreign/precious", "not a store");
  EXPECT_TRUE(fails_with(Store::open(dir() / "foreign", {}), ErrorCode::invalid));
  EXPECT_EQ(test::list_dir(dir() / "foreign"), std::vector<std::string>{"precious"});
  EXPECT_TRUE(fails_with(Store::open(dir() / "absent", {.create = false}), ErrorCode::not_found));
  EXPECT_FALSE(test::exists_nofollow(dir() / "absent"));
  test::make_dir(dir() / "empty");
  EXPECT_TRUE(ok(Store::open(dir() / "empty", {})));
  EXPECT_TRUE(ok(Store::open(store_dir(), {.create = false})));
}

TEST_F(StoreTest, OpenReportsUnreadableMetadataAsCorrupt) {
  test::make_dir(dir() / "broken");
  std::string garbage;
  for (int i = 0; i < 100; ++i) garbage += "not sqlite at all\n";
  test::write_file(dir() / "broken/treesnap.db", garbage);
  EXPECT_TRUE(fails_with(Store::open(dir() / "broken", {}), ErrorCode::corrupt));
  EXPECT_EQ(test::read_file(dir() / "broken/treesnap.db"), garbage);
}

TEST_F(StoreTest, DefaultPathFollowsTheEnvironment) {
  const char* saved = std::getenv("TREESNAP_STORE");
  const std::string previous = saved ? saved : "";
  ::setenv("TREESNAP_STORE", "/some/where", 1);
  EXPECT_EQ(Store::default_path(), fs::path("/some/where"));
  ::unsetenv("TREESNAP_STORE");
  if (::geteuid() == 0) EXPECT_EQ(Store::default_path(), fs::path("/var/lib/treesnap"));
  if (saved) ::setenv("TREESNAP_STORE", previous.c_str(), 1);
}

// Names that share one manifest share its id: a prefix of it names one tree, not an ambiguity.
TEST_F(StoreTest, IdPrefixSharedByTwoNamesResolves) {
  test::write_file(src("f"), "same tree twice");
  auto one = store().snapshot(src(), {.name = "one"});
  auto two = store().snapshot(src(), {.name = "two"});
  ASSERT_TRUE(ok(one));
  ASSERT_TRUE(ok(two));
  ASSERT_EQ(one->id, two->id);
  auto shown = store().show(one->id.substr(0, 6));
  ASSERT_TRUE(ok(shown));
  EXPECT_EQ(shown->id, one->id);
  EXPECT_TRUE(fails_with(store().show(one->id.substr(0, 3)), ErrorCode::not_found)) << "prefixes start at 4 digits";
}

// A Store is documented as usable from several threads: concurrent snapshots of one tree must all
// commit (the database queues writers), dedupe their objects, and leave a store that verifies.
TEST_F(StoreTest, ConcurrentSnapshotsFromSeveralThreads) {
  for (int d = 0; d < 4; ++d) {
    test::make_dir(src("d" + std::to_string(d)));
    for (int f = 0; f < 50; ++f)
      test::write_file(src("d" + std::to_string(d) + "/f" + std::to_string(f)), "content " + std::to_string(f));
  }
  constexpr int k_threads = 4;
  std::vector<Result<SnapshotSummary>> results(k_threads, std::unexpected(Error{}));
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t)
    threads.emplace_back([&, t] { results[t] = store().snapshot(src(), {.name = "c:" + std::to_string(t)}); });
  for (auto& t : threads) t.join();

  std::uint64_t new_objects = 0;
  for (int t = 0; t < k_threads; ++t) {
    ASSERT_TRUE(ok(results[t])) << "thread " << t;
    EXPECT_EQ(results[t]->id, results[0]->id);
    new_objects += results[t]->new_objects;
  }
  EXPECT_GE(new_objects, 50u) << "50 distinct contents";
  EXPECT_EQ(store().list()->size(), std::size_t{k_threads});
  auto verified = store().verify({});
  ASSERT_TRUE(ok(verified));
  EXPECT_TRUE(verified->bad.empty());
  EXPECT_EQ(verified->objects, 51u) << "each content once, plus the one manifest";
}

}  // namespace
}  // namespace treesnap
