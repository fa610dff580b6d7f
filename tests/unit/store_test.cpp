// The public Store API end to end on real directories: snapshot, restore with each strategy, the
// stat cache, names, listing, verify.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "core/digest.hpp"
#include "snapshot/snapshotter.hpp"
#include "test_util.hpp"
#include "treesnap/store.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
namespace fs = std::filesystem;

constexpr std::int64_t k_t0 = 1'650'000'000'000'000'000;

// Everything a restore must reproduce about one path, plus its inode for sharing checks.
struct Node {
  mode_t mode = 0;  // type and permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  std::int64_t mtime = 0;
  std::string data;  // file content or symlink target
  std::vector<Xattr> xattrs;
  ino_t ino = 0;
  nlink_t nlink = 0;
  blkcnt_t blocks = 0;
  bool same_content(const Node& o) const {
    return mode == o.mode && uid == o.uid && gid == o.gid && mtime == o.mtime && data == o.data && xattrs == o.xattrs;
  }
};

Node scan_one(const fs::path& path) {
  struct stat st = test::lstat_path(path);
  Node n{st.st_mode, st.st_uid, st.st_gid, test::mtime_ns(st), {}, {}, st.st_ino, st.st_nlink, st.st_blocks};
  if (S_ISREG(st.st_mode)) n.data = test::read_file(path);
  if (S_ISLNK(st.st_mode)) n.data = fs::read_symlink(path).string();
  if (!S_ISLNK(st.st_mode)) n.xattrs = test::list_xattrs(path);
  return n;
}

// Relative path ("" for the root) -> Node, for every path in the tree.
std::map<std::string, Node> scan(const fs::path& root) {
  std::map<std::string, Node> tree{{"", scan_one(root)}};
  for (const auto& e : fs::recursive_directory_iterator(root))
    tree[e.path().lexically_relative(root).string()] = scan_one(e.path());
  return tree;
}

// Inodes of every object and link variant in the store.
std::set<ino_t> store_inodes(const fs::path& store, const char* sub) {
  std::set<ino_t> inodes;
  for (const auto& e : fs::recursive_directory_iterator(store / sub))
    if (e.is_regular_file()) inodes.insert(test::lstat_path(e.path()).st_ino);
  return inodes;
}

void wait_out_racy_window() {
  // The stat cache ignores files whose ctime is within 100 ms of the snapshot's start.
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
}

class StoreTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_src = dir() / "src";
    m_store_dir = dir() / "store";
    test::make_dir(m_src);
    auto opened = Store::open(m_store_dir, {});
    ASSERT_TRUE(ok(opened));
    m_store.emplace(std::move(*opened));
  }

  const Store& store() const { return *m_store; }
  fs::path src(const std::string& rel = "") const { return rel.empty() ? m_src : m_src / rel; }

  // A tree with every entry type a non-device restore handles, and unusual metadata on each.
  void build_full_tree() {
    test::make_dir(src("d"), 0750);
    test::make_dir(src("d/e"), 0700);
    test::write_file(src("d/a.txt"), "alpha\n");
    test::set_xattr(src("d/a.txt"), "user.color", "blue");
    test::set_xattr(src("d/a.txt"), "user.bin", std::string("\0\xff", 2));
    test::write_file(src("h1"), "shared by two names", 0640);
    ASSERT_EQ(::link(src("h1").c_str(), src("d/h2").c_str()), 0);
    fs::create_symlink("d/a.txt", src("link"));
    fs::create_symlink("/nonexistent/target", src("dangle"));
    test::write_file(src("empty1"), "", 0444);
    test::write_file(src("empty2"), "", 0444);
    test::write_file(src("exec"), "#!/bin/sh\n", 0755);
    test::write_file(src("ro"), "read only", 0444);
    test::write_file(src("\xff\xfe"), "raw name", 0644);
    test::write_file(src("big"), std::string(3 << 20, 'b'));
    ASSERT_EQ(::mkfifo(src("pipe").c_str(), 0640), 0);
    ASSERT_EQ(::chmod(src("pipe").c_str(), 0640), 0);
    for (const char* owned : {"owned", "suid"}) {
      test::write_file(src(owned), owned, 0600);
      ASSERT_EQ(::chown(src(owned).c_str(), 1234, 5678), 0);
    }
    ASSERT_EQ(::chmod(src("suid").c_str(), 04755), 0);  // after chown, which clears set-id bits
    {
      test::write_file(src("sparse"), "");
      UniqueFd fd(::open(src("sparse").c_str(), O_WRONLY | O_CLOEXEC));
      ASSERT_EQ(::ftruncate(fd.get(), 8 << 20), 0);
      ASSERT_EQ(::pwrite(fd.get(), "data", 4, 1 << 20), 4);
    }
    // Distinct nanosecond mtimes, directories last so adding children does not bump them.
    std::int64_t t = k_t0;
    for (const auto& [rel, node] : scan(src()))
      if (!S_ISDIR(node.mode)) test::set_mtime(src(rel), t += 1'000'000'123);
    test::set_mtime(src("d/e"), t += 7);
    test::set_mtime(src("d"), t += 7);
    test::set_mtime(src(), t += 7);
  }

  fs::path m_src, m_store_dir;
  std::optional<Store> m_store;
};

TEST_F(StoreTest, RoundTripReproducesEveryEntry) {
  build_full_tree();
  const auto before = scan(src());
  auto snap = store().snapshot(src(), {.name = "full"});
  ASSERT_TRUE(ok(snap));
  EXPECT_EQ(snap->name, "full:latest");
  EXPECT_EQ(snap->entries, before.size());
  EXPECT_EQ(snap->files, 11u);  // the second name of h1 is not counted twice
  EXPECT_EQ(snap->id.size(), 64u);
  EXPECT_EQ(snap->manifest_digest, "sha256:" + snap->id);

  auto restored = store().restore("full", dir() / "out", {});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->entries, before.size());
  EXPECT_EQ(restored->name, "full:latest");
  const auto after = scan(dir() / "out");
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [rel, want] : before) {
    auto it = after.find(rel);
    ASSERT_NE(it, after.end()) << "missing " << rel;
    const Node& got = it->second;
    EXPECT_TRUE(got.same_content(want)) << rel << ": mode " << std::oct << got.mode << " vs " << want.mode
                                        << std::dec << ", owner " << got.uid << ":" << got.gid << " vs "
                                        << want.uid << ":" << want.gid << ", mtime " << got.mtime << " vs "
                                        << want.mtime;
  }
  EXPECT_EQ(after.at("h1").ino, after.at("d/h2").ino) << "in-tree hardlinks must share an inode";
  EXPECT_EQ(after.at("h1").nlink, 2u);
  EXPECT_NE(after.at("h1").ino, before.at("h1").ino);
  EXPECT_LT(after.at("sparse").blocks * 512, 1 << 20) << "holes must survive the restore";
}

TEST_F(StoreTest, EmptyFilesNeverShareAnInode) {
  test::write_file(src("e1"), "", 0444);
  test::write_file(src("e2"), "", 0444);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "empties"})));
  auto first = store().restore("empties", dir() / "out1", {});
  ASSERT_TRUE(ok(first));
  EXPECT_EQ(first->empty_files, 2u);
  ASSERT_TRUE(ok(store().restore("empties", dir() / "out2", {})));
  std::set<ino_t> inodes;
  for (const char* out : {"out1", "out2"}) {
    for (const char* name : {"e1", "e2"}) {
      struct stat st = test::lstat_path(dir() / out / name);
      EXPECT_EQ(st.st_nlink, 1u) << out << "/" << name;
      EXPECT_EQ(st.st_mode & 07777, 0444u);
      inodes.insert(st.st_ino);
    }
  }
  EXPECT_EQ(inodes.size(), 4u);
}

TEST_F(StoreTest, AutoHardlinksReadOnlyFilesAndCopiesWritableOnes) {
  test::write_file(src("ro"), "nobody writes this", 0444);
  test::write_file(src("rw"), "anyone may write this", 0644);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "auto"})));
  auto restored = store().restore("auto", dir() / "out", {.strategy = Strategy::automatic});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->hardlinked.files, 1u);
  EXPECT_EQ(restored->copied.files + restored->reflinked.files, 1u);

  const std::string ro_hex = to_hex(hash_bytes(DigestAlgorithm::sha256, "nobody writes this"));
  struct stat ro = test::lstat_path(dir() / "out/ro");
  EXPECT_EQ(ro.st_ino, test::lstat_path(test::object_path(m_store_dir, ro_hex)).st_ino)
      << "a read-only file owned like the object links the object itself";
  EXPECT_EQ(ro.st_mode & 07777, 0444u);
  struct stat rw = test::lstat_path(dir() / "out/rw");
  EXPECT_EQ(rw.st_nlink, 1u);
  EXPECT_FALSE(store_inodes(m_store_dir, "objects").contains(rw.st_ino));
  EXPECT_FALSE(store_inodes(m_store_dir, "variants").contains(rw.st_ino));
  EXPECT_EQ(test::read_file(dir() / "out/rw"), "anyone may write this");
}

TEST_F(StoreTest, CopyStrategySharesNoInodeWithTheStore) {
  test::write_file(src("ro"), "read-only data", 0444);
  test::write_file(src("rw"), "writable data", 0644);
  ASSERT_EQ(::link(src("ro").c_str(), src("ro2").c_str()), 0);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "copy"})));
  auto restored = store().restore("copy", dir() / "out", {.strategy = Strategy::copy});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->hardlinked.files, 0u);
  EXPECT_EQ(restored->reflinked.files, 0u);
  EXPECT_EQ(restored->copied.files, 2u);
  auto objects = store_inodes(m_store_dir, "objects");
  auto variants = store_inodes(m_store_dir, "variants");
  for (const char* name : {"ro", "ro2", "rw"}) {
    ino_t ino = test::lstat_path(dir() / "out" / name).st_ino;
    EXPECT_FALSE(objects.contains(ino) || variants.contains(ino)) << name;
  }
  EXPECT_EQ(test::lstat_path(dir() / "out/ro").st_ino, test::lstat_path(dir() / "out/ro2").st_ino);
}

TEST_F(StoreTest, HardlinkStrategyLinksWritableFilesToAVariant) {
  test::write_file(src("rw"), "writable, linked on request", 0640);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "hard"})));
  auto restored = store().restore("hard", dir() / "out", {.strategy = Strategy::hardlink});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->hardlinked.files, 1u);
  struct stat rw = test::lstat_path(dir() / "out/rw");
  EXPECT_TRUE(store_inodes(m_store_dir, "variants").contains(rw.st_ino));
  EXPECT_EQ(rw.st_mode & 07777, 0640u);
}

TEST_F(StoreTest, RestoreTargets) {
  test::write_file(src("f"), "content");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "t"})));

  test::make_dir(dir() / "full");
  test::write_file(dir() / "full/keep", "mine");
  EXPECT_TRUE(fails_with(store().restore("t", dir() / "full", {}), ErrorCode::exists));
  EXPECT_EQ(test::list_dir(dir() / "full"), std::vector<std::string>{"keep"});
  EXPECT_EQ(test::read_file(dir() / "full/keep"), "mine");

  test::write_file(dir() / "a_file", "x");
  EXPECT_TRUE(fails_with(store().restore("t", dir() / "a_file", {}), ErrorCode::exists));

  test::make_dir(dir() / "empty");
  ASSERT_TRUE(ok(store().restore("t", dir() / "empty", {})));
  EXPECT_EQ(test::read_file(dir() / "empty/f"), "content");

  ASSERT_TRUE(ok(store().restore("t", dir() / "new/parents", {})));
  EXPECT_EQ(test::read_file(dir() / "new/parents/f"), "content");
  for (const auto& name : test::list_dir(dir())) EXPECT_FALSE(name.starts_with(".")) << name;
}

TEST_F(StoreTest, FailedRestoreLeavesNoTempSibling) {
  test::write_file(src("f"), "will be damaged");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "t"})));
  test::flip_byte(test::object_path(m_store_dir, to_hex(hash_bytes(DigestAlgorithm::sha256, "will be damaged"))), 0);
  test::make_dir(dir() / "parent");
  EXPECT_TRUE(fails_with(store().restore("t", dir() / "parent/out", {.strategy = Strategy::copy}), ErrorCode::corrupt));
  EXPECT_TRUE(test::list_dir(dir() / "parent").empty()) << "neither out nor .out.treesnap-* may remain";
}

TEST_F(StoreTest, StatCacheSkipsUnchangedFilesAndCatchesChangedOnes) {
  for (const char* name : {"a", "b", "c"}) test::write_file(src(name), std::string("content of ") + name);
  const std::int64_t b_mtime = test::mtime_ns(test::lstat_path(src("b")));
  wait_out_racy_window();
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
  test::flip_byte(test::object_path(m_store_dir, damaged), 5);
  fs::remove(test::object_path(m_store_dir, missing));
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
  EXPECT_TRUE(ok(Store::open(m_store_dir, {.create = false})));
}

}  // namespace
}  // namespace treesnap
