// Hostile and damaged input: manifests crafted to write outside the restore target, corrupt and
// missing objects, and a source tree deleted while it is being snapshotted. Each case asserts the
// error code and that nothing was written beside the target.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <thread>

#include "core/digest.hpp"
#include "core/manifest.hpp"
#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "test_util.hpp"
#include "treesnap/store.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
namespace fs = std::filesystem;

Entry entry(std::string path, EntryType type, std::uint32_t mode = 0755) {
  Entry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  e.mtime_ns = 1'600'000'000'000'000'000;
  return e;
}

// Path -> content (or "<dir>") and mtime of everything under `root`, to prove it unchanged.
std::map<std::string, std::pair<std::string, std::int64_t>> fingerprint(const fs::path& root) {
  std::map<std::string, std::pair<std::string, std::int64_t>> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st = test::lstat_path(e.path());
    out[e.path().lexically_relative(root).string()] = {S_ISREG(st.st_mode) ? test::read_file(e.path()) : "<dir>",
                                                       test::mtime_ns(st)};
  }
  return out;
}

class HostileTest : public test::TempDirTest {
 public:
  fs::path target() const { return dir() / "parent" / "out"; }
  fs::path sentinel() const { return dir() / "parent" / "sentinel"; }
  fs::path outside() const { return dir(); }

  // A file entry whose content object really exists, so only the path can make restore fail.
  Entry stored_file(std::string path, std::string_view content) {
    Entry e = entry(std::move(path), EntryType::file, 0644);
    auto digest = m_objects->put_bytes(content);
    EXPECT_TRUE(ok(digest));
    e.size = content.size();
    e.digest = digest.value_or("");
    return e;
  }

 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_store_dir = dir() / "store";
    auto opened = Store::open(m_store_dir, {.sync = SyncPolicy::none});
    ASSERT_TRUE(ok(opened));
    m_store.emplace(std::move(*opened));
    auto objects = ObjectStore::open(m_store_dir.string(), DigestAlgorithm::sha256, SyncPolicy::none, false);
    ASSERT_TRUE(ok(objects));
    m_objects.emplace(std::move(*objects));
    auto db = Database::open((m_store_dir / "treesnap.db").string(), false);
    ASSERT_TRUE(ok(db));
    m_db.emplace(std::move(*db));

    // parent/ holds the target "out" and a sentinel directory beside it.
    test::make_dir(dir() / "parent");
    test::make_dir(sentinel());
    test::write_file(sentinel() / "keep", "sentinel");
    test::make_dir(sentinel() / "sub");
    m_sentinel_before = fingerprint(sentinel());
  }

  const Store& store() const { return *m_store; }

  // Commits `m` under `name` as a snapshot would: manifest object, then the row and its refs.
  void commit(const Manifest& m, const std::string& name) {
    const std::string encoded = encode_manifest(m);
    auto digest = m_objects->put_bytes(encoded);
    ASSERT_TRUE(ok(digest));
    std::vector<ObjectRecord> referenced{{*digest, encoded.size()}};
    for (const auto& e : m.entries)
      if (e.type == EntryType::file && e.size > 0) referenced.push_back({e.digest.str(), e.size});
    SnapshotRecord record;
    record.name = name;
    record.tag = "latest";
    record.manifest = *digest;
    record.created_ns = record.last_used_ns = 1;
    record.entries = m.entries.size();
    ASSERT_TRUE(ok(m_db->commit_snapshot(record, referenced, {}, false)));
  }

  // Nothing but the untouched sentinel may remain beside the target, and nothing new in dir().
  void expect_nothing_written() {
    EXPECT_EQ(test::list_dir(dir() / "parent"), std::vector<std::string>{"sentinel"});
    EXPECT_EQ(fingerprint(sentinel()), m_sentinel_before);
    EXPECT_EQ(test::list_dir(dir()), (std::vector<std::string>{"parent", "store"}));
  }

  // Snapshots a small real tree under `name` and returns the digest of its one file.
  std::string snapshot_one_file(const std::string& name, std::uint32_t mode) {
    fs::path src = dir() / "src";
    test::make_dir(src);
    test::write_file(src / "file", "precious content", mode);
    auto snap = store().snapshot(src, {.name = name});
    EXPECT_TRUE(ok(snap));
    test::force_remove(src);
    return hash_bytes(DigestAlgorithm::sha256, "precious content");
  }

  fs::path m_store_dir;
  std::optional<Store> m_store;
  std::optional<ObjectStore> m_objects;
  std::optional<Database> m_db;
  std::map<std::string, std::pair<std::string, std::int64_t>> m_sentinel_before;
};

struct HostileCase {
  const char* name;
  // The entries after the root.
  std::function<std::vector<Entry>(HostileTest&)> entries;
};

// Names the case in test output instead of gtest's hex dump of the struct.
void PrintTo(const HostileCase& c, std::ostream* out) { *out << c.name; }

class HostileManifestTest : public HostileTest, public ::testing::WithParamInterface<HostileCase> {};

TEST_P(HostileManifestTest, RestoreRefusesItAndWritesNothing) {
  Manifest m{DigestAlgorithm::sha256, {entry("", EntryType::directory)}};
  for (auto& e : GetParam().entries(*this)) m.entries.push_back(std::move(e));
  commit(m, "hostile");
  for (auto strategy : {Strategy::automatic, Strategy::copy}) {
    auto restored = store().restore("hostile", target(), {.strategy = strategy});
    EXPECT_TRUE(fails_with(restored, ErrorCode::invalid)) << to_string(strategy);
    expect_nothing_written();
  }
}

const HostileCase k_hostile_cases[] = {
    {"DotDot", [](HostileTest& t) { return std::vector{t.stored_file("../escape", "escaped")}; }},
    {"AbsolutePath",
     [](HostileTest& t) { return std::vector{t.stored_file((t.outside() / "abs_escape").string(), "escaped")}; }},
    {"DotDotInsideAPath",
     [](HostileTest& t) { return std::vector{entry("a", EntryType::directory), t.stored_file("a/../../x", "escaped")}; }},
    {"BareDotDotDirectory",
     [](HostileTest& t) { return std::vector{entry("..", EntryType::directory), t.stored_file("../x", "escaped")}; }},
    {"PathThroughAbsoluteSymlink",
     [](HostileTest& t) {
       Entry link = entry("link", EntryType::symlink, 0777);
       link.set_link_target(t.sentinel().string());
       return std::vector{link, t.stored_file("link/x", "through the link")};
     }},
    {"PathThroughRelativeSymlink",
     [](HostileTest& t) {
       Entry link = entry("a/up", EntryType::symlink, 0777);
       link.set_link_target("../../sentinel");
       return std::vector{entry("a", EntryType::directory), link, t.stored_file("a/up/x", "through the link")};
     }},
    {"HardlinkToALaterEntry",
     [](HostileTest& t) {
       Entry link = entry("a", EntryType::hardlink);
       link.link_index = 2;
       return std::vector{link, t.stored_file("b", "target")};
     }},
    {"HardlinkToTheRoot",
     [](HostileTest&) {
       Entry link = entry("link", EntryType::hardlink);
       link.link_index = 0;
       return std::vector{link};
     }},
};

INSTANTIATE_TEST_SUITE_P(Cases, HostileManifestTest, ::testing::ValuesIn(k_hostile_cases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(HostileTest, ManifestOfAnotherAlgorithmIsCorrupt) {
  Manifest m{DigestAlgorithm::xxh3_128, {entry("", EntryType::directory)}};
  commit(m, "foreign");
  EXPECT_TRUE(fails_with(store().restore("foreign", target(), {}), ErrorCode::corrupt));
  expect_nothing_written();
}

TEST_F(HostileTest, CorruptManifestObjectFailsRestore) {
  snapshot_one_file("snap", 0644);
  auto shown = store().show("snap");
  ASSERT_TRUE(ok(shown));
  const fs::path manifest = test::object_path(m_store_dir, shown->id);
  test::flip_byte(manifest, test::lstat_path(manifest).st_size / 2);
  EXPECT_TRUE(fails_with(store().restore("snap", target(), {}), ErrorCode::corrupt));
  EXPECT_TRUE(fails_with(store().entries("snap"), ErrorCode::corrupt));
  expect_nothing_written();
}

TEST_F(HostileTest, MissingContentObjectFailsRestoreWithEveryStrategy) {
  const std::string digest = snapshot_one_file("snap", 0444);
  fs::remove(test::object_path(m_store_dir, to_hex(digest)));
  for (auto strategy : {Strategy::copy, Strategy::automatic, Strategy::hardlink}) {
    auto restored = store().restore("snap", target(), {.strategy = strategy});
    ASSERT_TRUE(fails_with(restored, ErrorCode::corrupt)) << to_string(strategy);
    EXPECT_NE(restored.error().context.find(to_hex(digest)), std::string::npos) << restored.error().message();
    expect_nothing_written();
  }
}

// A manifest can pass validation and still fail half-way (here: an xattr namespace the kernel does
// not know); the partly built tree must not survive.
TEST_F(HostileTest, FailureAfterWritingLeavesNothingBehind) {
  Entry bad_xattr = stored_file("z", "last file");
  bad_xattr.set_xattrs({{"bogus.namespace", "v"}});
  Manifest m{DigestAlgorithm::sha256,
             {entry("", EntryType::directory), entry("a", EntryType::directory), stored_file("a/f", "written first"),
              bad_xattr}};
  commit(m, "half");
  auto restored = store().restore("half", target(), {.strategy = Strategy::copy});
  ASSERT_FALSE(restored.has_value());
  EXPECT_NE(restored.error().context.find("bogus.namespace"), std::string::npos) << restored.error().message();
  expect_nothing_written();
}

// 20 × 20 directories of 50 files: big enough that the walk and a concurrent remove_all overlap.
void build_wide_tree(const fs::path& root) {
  test::make_dir(root);
  char name[64];
  for (int a = 0; a < 20; ++a) {
    std::snprintf(name, sizeof name, "a%02d", a);
    const fs::path da = root / name;
    test::make_dir(da);
    for (int b = 0; b < 20; ++b) {
      std::snprintf(name, sizeof name, "b%02d", b);
      const fs::path db = da / name;
      test::make_dir(db);
      for (int f = 0; f < 50; ++f) {
        std::snprintf(name, sizeof name, "f%03d", f);
        test::write_file(db / name, std::string_view("0123456789", 1 + f % 10));  // few distinct objects
      }
    }
  }
}

TEST_F(HostileTest, SourceThatDisappearsMidWalk) {
  // The error must name the source or a path from its root ("a03/b11/f042"), not a bare name.
  // BUG (src/snapshot/walker.cpp, Walker::add_entry): when a file vanishes between its fstatat and
  // read_xattrs_at(dir_fd, name), the error is "not_found: listxattr f028: No such file or
  // directory": only the base name (util/posix.cpp read_xattrs_at uses `name` as the context), so
  // the user cannot tell which f028. open_dir(dir_fd, name) on descending has the same flaw. Seen
  // in about 1 run in 20 of this test; the stat_at path ("a14/b11/f005" disappeared …) is right.
  const std::regex tree_path(R"(a\d\d(/b\d\d(/f\d\d\d)?)?)");
  for (int attempt = 0; attempt < 20; ++attempt) {
    const fs::path source = dir() / "vanishing";
    build_wide_tree(source);
    std::thread deleter([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
      std::error_code ec;
      fs::remove_all(source, ec);
    });
    auto snap = store().snapshot(source, {.name = "vanish"});
    deleter.join();
    if (snap) {  // the deleter lost the race: try again with it starting later
      ASSERT_TRUE(ok(store().remove("vanish")));
      continue;
    }
    const Error& error = snap.error();
    EXPECT_TRUE(error.code == ErrorCode::not_found || error.code == ErrorCode::io) << error.message();
    EXPECT_TRUE(error.context.find(source.string()) != std::string::npos || std::regex_search(error.context, tree_path))
        << error.message();
    EXPECT_TRUE(fails_with(store().show("vanish"), ErrorCode::not_found));
    auto verified = store().verify({});
    ASSERT_TRUE(ok(verified));
    EXPECT_TRUE(verified->bad.empty());
    std::printf("attempt %d: the snapshot failed with \"%s\"\n", attempt, error.message().c_str());
    return;
  }
  GTEST_SKIP() << "the snapshot finished before the tree was deleted in all 20 attempts";
}

}  // namespace
}  // namespace treesnap
