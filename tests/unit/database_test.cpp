// meta/database: snapshot rows, the stat cache, id prefixes, shared connections, and refusal of
// files that are not a treesnap database.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <string>

#include <fmt/format.h>

#include "meta/database.hpp"
#include "test_util.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;

SnapshotRecord record(std::string name, std::string tag, std::string manifest) {
  SnapshotRecord r;
  r.name = std::move(name);
  r.tag = std::move(tag);
  r.manifest = std::move(manifest);
  r.created_ns = 1'700'000'000'000'000'001;
  r.last_used_ns = r.created_ns + 5;
  r.entries = 10;
  r.files = 7;
  r.bytes = 1ull << 40;
  r.new_objects = 3;
  r.new_bytes = 4096;
  return r;
}

// A 32-byte digest that starts with `first_bytes`, padded with 0x42.
std::string digest(std::string_view first_bytes) {
  std::string d(first_bytes);
  d.resize(32, '\x42');
  return d;
}

class DatabaseTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_path = (dir() / "treesnap.db").string();
    auto opened = Database::open(m_path, true);
    ASSERT_TRUE(ok(opened));
    m_db.emplace(std::move(*opened));
  }

  Database& db() { return *m_db; }

  std::string m_path;
  std::optional<Database> m_db;
};

TEST_F(DatabaseTest, CreateRecordsTheSchemaVersion) {
  auto version = db().get_info("schema_version");
  ASSERT_TRUE(ok(version));
  ASSERT_TRUE(version->has_value());
  EXPECT_EQ(**version, std::to_string(k_schema_version));
  auto missing = db().get_info("no such key");
  ASSERT_TRUE(ok(missing));
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(ok(db().set_info_if_absent("digest", "sha256")));
  ASSERT_TRUE(ok(db().set_info_if_absent("digest", "xxh3-128")));  // absent only: the first wins
  EXPECT_EQ(**db().get_info("digest"), "sha256");

  m_db.reset();
  auto reopened = Database::open(m_path, false);
  ASSERT_TRUE(ok(reopened));
  EXPECT_EQ(**reopened->get_info("digest"), "sha256");
}

TEST_F(DatabaseTest, OpenWithoutCreateFailsForAMissingFile) {
  auto missing = Database::open((dir() / "absent.db").string(), false);
  EXPECT_FALSE(missing.has_value());
  EXPECT_FALSE(test::exists_nofollow(dir() / "absent.db"));
}

TEST_F(DatabaseTest, CommitFindListRemove) {
  const std::string manifest = digest(std::string("\x00\x01", 2));  // a blob with a NUL byte
  ASSERT_TRUE(ok(db().commit_snapshot(record("b", "x", digest("\xbb")), {}, {}, false)));
  ASSERT_TRUE(ok(db().commit_snapshot(record("a", "z", manifest), {{manifest, 99}}, {}, false)));
  ASSERT_TRUE(ok(db().commit_snapshot(record("a", "y", digest("\xaa")), {}, {}, false)));

  auto found = db().find_snapshot("a", "z");
  ASSERT_TRUE(ok(found));
  ASSERT_TRUE(found->has_value());
  const SnapshotRecord& r = **found;
  EXPECT_GT(r.row_id, 0);
  EXPECT_EQ(r.name, "a");
  EXPECT_EQ(r.tag, "z");
  EXPECT_EQ(r.manifest, manifest);
  EXPECT_EQ(r.created_ns, 1'700'000'000'000'000'001);
  EXPECT_EQ(r.last_used_ns, 1'700'000'000'000'000'006);
  EXPECT_EQ(r.entries, 10u);
  EXPECT_EQ(r.files, 7u);
  EXPECT_EQ(r.bytes, 1ull << 40);
  EXPECT_EQ(r.new_objects, 3u);
  EXPECT_EQ(r.new_bytes, 4096u);

  auto list = db().list_snapshots();
  ASSERT_TRUE(ok(list));
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name + ":" + (*list)[0].tag, "a:y");
  EXPECT_EQ((*list)[1].name + ":" + (*list)[1].tag, "a:z");
  EXPECT_EQ((*list)[2].name + ":" + (*list)[2].tag, "b:x");

  auto removed = db().remove_snapshot("a", "z");
  ASSERT_TRUE(ok(removed));
  EXPECT_TRUE(*removed);
  auto again = db().remove_snapshot("a", "z");
  ASSERT_TRUE(ok(again));
  EXPECT_FALSE(*again);
  EXPECT_FALSE(db().find_snapshot("a", "z")->has_value());
  EXPECT_EQ(db().list_snapshots()->size(), 2u);
  EXPECT_FALSE(db().find_snapshot("a", "latest")->has_value());
}

TEST_F(DatabaseTest, DuplicateNameFailsWithExistsUnlessReplaced) {
  ASSERT_TRUE(ok(db().commit_snapshot(record("n", "t", digest("\x01")), {{digest("\x0a"), 1}}, {}, false)));
  auto duplicate = db().commit_snapshot(record("n", "t", digest("\x02")), {{digest("\x0b"), 2}}, {}, false);
  EXPECT_TRUE(fails_with(duplicate, ErrorCode::exists));
  EXPECT_EQ((*db().find_snapshot("n", "t"))->manifest, digest("\x01"));
  EXPECT_FALSE(*db().has_object(digest("\x0b"))) << "a refused commit must roll back entirely";

  ASSERT_TRUE(ok(db().commit_snapshot(record("n", "t", digest("\x02")), {{digest("\x0b"), 2}}, {}, true)));
  EXPECT_EQ((*db().find_snapshot("n", "t"))->manifest, digest("\x02"));
  EXPECT_EQ(db().list_snapshots()->size(), 1u);
  EXPECT_TRUE(*db().has_object(digest("\x0b")));
}

// Inside begin_write() … end_write() each commit is a savepoint: a refused one rolls back alone,
// the others become visible together at end_write (bench/gen_store.cpp commits so).
TEST_F(DatabaseTest, CommitsInsideAWriteTransactionAreSavepoints) {
  auto other = Database::open(m_path, false);
  ASSERT_TRUE(ok(other));
  ASSERT_TRUE(ok(db().begin_write()));
  ASSERT_TRUE(ok(db().commit_snapshot(record("n", "1", digest("\x01")), {{digest("\x0a"), 1}}, {}, false)));
  auto duplicate = db().commit_snapshot(record("n", "1", digest("\x02")), {{digest("\x0b"), 2}}, {}, false);
  EXPECT_TRUE(fails_with(duplicate, ErrorCode::exists));
  ASSERT_TRUE(ok(db().commit_snapshot(record("n", "2", digest("\x03")), {{digest("\x0c"), 3}}, {}, false)));
  EXPECT_TRUE(other->list_snapshots()->empty()) << "nothing is visible before end_write";
  ASSERT_TRUE(ok(db().end_write()));
  EXPECT_EQ(other->list_snapshots()->size(), 2u);
  EXPECT_EQ((*other->find_snapshot("n", "1"))->manifest, digest("\x01"));
  EXPECT_FALSE(*other->has_object(digest("\x0b"))) << "the refused commit must roll back entirely";
  EXPECT_TRUE(*other->has_object(digest("\x0c")));
}

TEST_F(DatabaseTest, ObjectsAreRecordedOnceWithTheirSize) {
  ASSERT_TRUE(ok(db().commit_snapshot(record("a", "1", digest("\x01")), {{digest("\x20"), 5}, {digest("\x10"), 7}}, {}, false)));
  ASSERT_TRUE(ok(db().commit_snapshot(record("a", "2", digest("\x02")), {{digest("\x10"), 7}}, {}, false)));
  auto objects = db().all_objects();
  ASSERT_TRUE(ok(objects));
  ASSERT_EQ(objects->size(), 2u);
  EXPECT_EQ((*objects)[0].digest, digest("\x10"));  // sorted by digest
  EXPECT_EQ((*objects)[0].size, 7u);
  EXPECT_EQ((*objects)[1].digest, digest("\x20"));
  EXPECT_EQ((*objects)[1].size, 5u);
  EXPECT_TRUE(*db().has_object(digest("\x20")));
  EXPECT_FALSE(*db().has_object(digest("\x30")));
}

TEST_F(DatabaseTest, StatCacheHitsOnlyOnAnExactMatchWithTheObjectPresent) {
  const std::string content = digest("\xc0");
  const std::string ranges("\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00", 16);
  StatRecord row{11, 22, 33, 44, 55, content, ranges};
  StatRecord orphan{11, 23, 33, 44, 55, digest("\xd0"), {}};  // its object row is never added
  ASSERT_TRUE(ok(db().commit_snapshot(record("s", "t", digest("\x01")), {{content, 33}}, {row, orphan}, false)));

  auto hit = db().lookup_stat({11, 22, 33, 44, 55, {}, {}});
  ASSERT_TRUE(ok(hit));
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ((*hit)->digest, content);
  EXPECT_EQ((*hit)->ranges, ranges);

  for (StatRecord miss : {StatRecord{12, 22, 33, 44, 55, {}, {}}, StatRecord{11, 21, 33, 44, 55, {}, {}},
                          StatRecord{11, 22, 34, 44, 55, {}, {}}, StatRecord{11, 22, 33, 45, 55, {}, {}},
                          StatRecord{11, 22, 33, 44, 56, {}, {}}}) {
    auto result = db().lookup_stat(miss);
    ASSERT_TRUE(ok(result));
    EXPECT_FALSE(result->has_value()) << "dev " << miss.dev << " ino " << miss.ino << " size " << miss.size
                                      << " mtime " << miss.mtime_ns << " ctime " << miss.ctime_ns;
  }
  auto no_object = db().lookup_stat({11, 23, 33, 44, 55, {}, {}});
  ASSERT_TRUE(ok(no_object));
  EXPECT_FALSE(no_object->has_value()) << "a cached digest whose object is unknown must not be trusted";
}

TEST_F(DatabaseTest, FindByIdPrefix) {
  ASSERT_TRUE(ok(db().commit_snapshot(record("p", "1", digest("\xab\xcd")), {}, {}, false)));
  ASSERT_TRUE(ok(db().commit_snapshot(record("p", "2", digest("\xab\xce")), {}, {}, false)));
  ASSERT_TRUE(ok(db().commit_snapshot(record("p", "3", digest("\x12\x34")), {}, {}, false)));
  EXPECT_EQ(db().find_by_id_prefix("abc")->size(), 2u);
  auto one = db().find_by_id_prefix("abcd");
  ASSERT_TRUE(ok(one));
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].tag, "1");
  std::string whole_id = "1234";
  while (whole_id.size() < 64) whole_id += "42";
  EXPECT_EQ(db().find_by_id_prefix(whole_id)->size(), 1u);
  EXPECT_TRUE(db().find_by_id_prefix("ff")->empty());
}

TEST_F(DatabaseTest, TouchUpdatesLastUsed) {
  ASSERT_TRUE(ok(db().commit_snapshot(record("t", "t", digest("\x01")), {}, {}, false)));
  auto row = (*db().find_snapshot("t", "t"))->row_id;
  ASSERT_TRUE(ok(db().touch_snapshot(row, 42)));
  EXPECT_EQ((*db().find_snapshot("t", "t"))->last_used_ns, 42);
}

TEST_F(DatabaseTest, TwoConnectionsToOneFileSeeEachOther) {
  auto other = Database::open(m_path, false);
  ASSERT_TRUE(ok(other));
  ASSERT_TRUE(ok(db().commit_snapshot(record("one", "t", digest("\x01")), {}, {}, false)));
  EXPECT_TRUE(other->find_snapshot("one", "t")->has_value());
  ASSERT_TRUE(ok(other->commit_snapshot(record("two", "t", digest("\x02")), {}, {}, false)));
  EXPECT_EQ(db().list_snapshots()->size(), 2u);
  EXPECT_TRUE(test::exists_nofollow(m_path + "-wal")) << "the database must be in WAL mode";
}

// A read transaction is one snapshot of the database: a writer on another connection is not
// blocked by it (WAL) and its commit becomes visible only after end_read.
TEST_F(DatabaseTest, ReadTransactionSeesOneSnapshotAndDoesNotBlockWriters) {
  auto other = Database::open(m_path, false);
  ASSERT_TRUE(ok(other));
  ASSERT_TRUE(ok(db().begin_read()));
  EXPECT_TRUE(db().list_snapshots()->empty());
  ASSERT_TRUE(ok(other->commit_snapshot(record("w", "t", digest("\x01")), {{digest("\x0a"), 1}}, {}, false)));
  EXPECT_TRUE(db().list_snapshots()->empty());
  EXPECT_FALSE(*db().has_object(digest("\x0a")));
  ASSERT_TRUE(ok(db().end_read()));
  EXPECT_EQ(db().list_snapshots()->size(), 1u);
  EXPECT_TRUE(*db().has_object(digest("\x0a")));
}

TEST_F(DatabaseTest, RefusesAFileThatIsNotADatabase) {
  const auto path = dir() / "not.db";
  std::string text;
  for (int i = 0; i < 200; ++i) text += "this is not a database\n";
  test::write_file(path, text);
  for (bool create : {false, true}) {
    auto opened = Database::open(path.string(), create);
    ASSERT_FALSE(opened.has_value()) << "create=" << create;
    EXPECT_TRUE(opened.error().code == ErrorCode::corrupt || opened.error().code == ErrorCode::invalid)
        << opened.error().message();
  }
  EXPECT_EQ(test::read_file(path), text) << "a failed open must not modify the file";
}

TEST_F(DatabaseTest, RefusesASqliteFileWithoutTreesnapTables) {
  const auto path = (dir() / "other.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_TRUE(fails_with(Database::open(path, false), ErrorCode::invalid));
}

TEST_F(DatabaseTest, RefusesANewerSchema) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(m_path.c_str(), &raw), SQLITE_OK);
  const std::string newer = fmt::format("UPDATE store_info SET value = '{}' WHERE key = 'schema_version'",
                                        k_schema_version + 1);
  ASSERT_EQ(sqlite3_exec(raw, newer.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_TRUE(fails_with(Database::open(m_path, false), ErrorCode::unsupported));
}

}  // namespace
}  // namespace treesnap
