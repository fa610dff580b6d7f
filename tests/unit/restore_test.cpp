// Store::restore end to end: every entry type and field survives a round trip, each strategy shares
// (or does not share) inodes with the store as documented, and targets are handled safely.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/digest.hpp"
#include "store_fixture.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
using test::StoreTest;
namespace fs = std::filesystem;

class RestoreTest : public StoreTest {
 protected:
  void build_full_tree() { test::build_full_tree(src()); }
};

TEST_F(RestoreTest, RoundTripReproducesEveryEntry) {
  build_full_tree();
  const auto before = test::scan(src());
  auto snap = store().snapshot(src(), {.name = "full"});
  ASSERT_TRUE(ok(snap));
  EXPECT_EQ(snap->name, "full:latest");
  EXPECT_EQ(snap->entries, before.size());
  EXPECT_EQ(snap->files, 14u);  // the second name of h1 is not counted twice
  EXPECT_EQ(snap->id.size(), 64u);
  EXPECT_EQ(snap->manifest_digest, "sha256:" + snap->id);

  auto restored = store().restore("full", dir() / "out", {});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->entries, before.size());
  EXPECT_EQ(restored->name, "full:latest");
  EXPECT_EQ(restored->id, snap->id);
  const auto after = test::expect_same_tree(src(), dir() / "out");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(after.at("h1").ino, after.at("d/h2").ino) << "in-tree hardlinks must share an inode";
  EXPECT_EQ(after.at("h1").nlink, 2u);
  EXPECT_NE(after.at("h1").ino, before.at("h1").ino);
  EXPECT_LT(after.at("sparse").blocks * 512, 1 << 20) << "holes must survive the restore";
}

TEST_F(RestoreTest, EmptyFilesNeverShareAnInode) {
  test::write_file(src("e1"), "", 0444);
  test::write_file(src("e2"), "", 0444);
  ASSERT_EQ(::link(src("e1").c_str(), src("e3").c_str()), 0);  // one inode, two names: stays so
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "empties"})));
  auto first = store().restore("empties", dir() / "out1", {});
  ASSERT_TRUE(ok(first));
  EXPECT_EQ(first->empty_files, 2u);
  EXPECT_EQ(first->hardlinked.files, 0u);
  ASSERT_TRUE(ok(store().restore("empties", dir() / "out2", {.strategy = Strategy::hardlink})));
  std::set<ino_t> inodes;
  for (const char* out : {"out1", "out2"}) {
    for (const char* name : {"e1", "e2"}) {
      struct stat st = test::lstat_path(dir() / out / name);
      EXPECT_EQ(st.st_nlink, std::string(name) == "e1" ? 2u : 1u) << out << "/" << name;
      EXPECT_EQ(st.st_mode & 07777, 0444u);
      inodes.insert(st.st_ino);
    }
    EXPECT_EQ(test::lstat_path(dir() / out / "e3").st_ino, test::lstat_path(dir() / out / "e1").st_ino);
  }
  EXPECT_EQ(inodes.size(), 4u);
}

TEST_F(RestoreTest, AutoHardlinksReadOnlyFilesAndCopiesWritableOnes) {
  test::write_file(src("ro"), "nobody writes this", 0444);
  for (const char* rw : {"rw1", "rw2", "rw3"}) test::write_file(src(rw), std::string("writable ") + rw, 0644);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "auto"})));
  auto restored = store().restore("auto", dir() / "out", {.strategy = Strategy::automatic});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->hardlinked.files, 1u);
  EXPECT_EQ(restored->copied.files + restored->reflinked.files, 3u);

  const std::string ro_hex = to_hex(hash_bytes(DigestAlgorithm::sha256, "nobody writes this"));
  struct stat ro = test::lstat_path(dir() / "out/ro");
  EXPECT_EQ(ro.st_ino, test::lstat_path(test::object_path(store_dir(), ro_hex)).st_ino)
      << "a read-only file owned like the object links the object itself";
  EXPECT_EQ(ro.st_mode & 07777, 0444u);
  struct stat rw = test::lstat_path(dir() / "out/rw1");
  EXPECT_EQ(rw.st_nlink, 1u);
  EXPECT_FALSE(test::store_inodes(store_dir(), "objects").contains(rw.st_ino));
  EXPECT_FALSE(test::store_inodes(store_dir(), "variants").contains(rw.st_ino));
  EXPECT_EQ(test::read_file(dir() / "out/rw1"), "writable rw1");

  if (restored->reflinked.files == 0) {  // no FICLONE here (ext4)
    // auto does not try a rung the probe says the pair cannot do: no fallback, the probe says why...
    EXPECT_NE(restored->probe.reflink_errno, 0);
    EXPECT_EQ(restored->fallback_count, 0u);
    EXPECT_TRUE(restored->fallbacks.empty());
    // ...while a forced reflink reports every file that could not get one.
    auto forced = store().restore("auto", dir() / "forced", {.strategy = Strategy::reflink});
    ASSERT_TRUE(ok(forced));
    EXPECT_EQ(forced->fallback_count, 4u);
    ASSERT_EQ(forced->fallbacks.size(), 4u);
    for (const auto& f : forced->fallbacks) {
      EXPECT_EQ(f.from, Strategy::reflink);
      EXPECT_EQ(f.to, Strategy::copy);
      EXPECT_EQ(f.sys_errno, restored->probe.reflink_errno) << f.path << ": every file reports the probe's cause";
    }
  }
}

TEST_F(RestoreTest, ReadOnlyFileWithXattrsLinksAVariantCarryingThem) {
  test::write_file(src("ro"), "read-only with xattrs", 0444);
  test::set_xattr(src("ro"), "user.k", "v");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "x"})));
  ASSERT_TRUE(ok(store().restore("x", dir() / "out", {})));
  struct stat st = test::lstat_path(dir() / "out/ro");
  EXPECT_TRUE(test::store_inodes(store_dir(), "variants").contains(st.st_ino));
  EXPECT_EQ(test::list_xattrs(dir() / "out/ro"), (std::vector<Xattr>{{"user.k", "v"}}));
}

TEST_F(RestoreTest, CopyStrategySharesNoInodeWithTheStore) {
  test::write_file(src("ro"), "read-only data", 0444);
  test::write_file(src("rw"), "writable data", 0644);
  ASSERT_EQ(::link(src("ro").c_str(), src("ro2").c_str()), 0);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "copy"})));
  auto restored = store().restore("copy", dir() / "out", {.strategy = Strategy::copy});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->hardlinked.files, 0u);
  EXPECT_EQ(restored->reflinked.files, 0u);
  EXPECT_EQ(restored->copied.files, 2u);
  EXPECT_EQ(restored->bytes_written, 27u);
  EXPECT_EQ(restored->bytes_shared, 0u);
  auto objects = test::store_inodes(store_dir(), "objects");
  auto variants = test::store_inodes(store_dir(), "variants");
  for (const char* name : {"ro", "ro2", "rw"}) {
    ino_t ino = test::lstat_path(dir() / "out" / name).st_ino;
    EXPECT_FALSE(objects.contains(ino) || variants.contains(ino)) << name;
  }
  EXPECT_EQ(test::lstat_path(dir() / "out/ro").st_ino, test::lstat_path(dir() / "out/ro2").st_ino);
}

// The hardlink strategy shares even writable files with the store, so a write through the restored
// tree damages the variant; verify must then name it.
TEST_F(RestoreTest, HardlinkWritableSharesAVariantThatVerifyWatches) {
  test::write_file(src("rw"), "writable, linked on request", 0640);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "hard"})));
  // A writable file is linked only on explicit request: otherwise it is a private clone or copy.
  auto guarded = store().restore("hard", dir() / "guarded", {.strategy = Strategy::hardlink});
  ASSERT_TRUE(ok(guarded));
  EXPECT_EQ(guarded->hardlinked.files, 0u);
  EXPECT_EQ(guarded->copied.files + guarded->reflinked.files, 1u);
  ASSERT_FALSE(guarded->fallbacks.empty());
  EXPECT_EQ(guarded->fallbacks[0].sys_errno, 0);
  EXPECT_NE(guarded->fallbacks[0].policy.find("--hardlink-writable"), std::string::npos) << guarded->fallbacks[0].policy;
  EXPECT_EQ(test::lstat_path(dir() / "guarded/rw").st_nlink, 1u);

  auto restored = store().restore("hard", dir() / "out", {.strategy = Strategy::hardlink, .hardlink_writable = true});
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->hardlinked.files, 1u);
  struct stat rw = test::lstat_path(dir() / "out/rw");
  EXPECT_TRUE(test::store_inodes(store_dir(), "variants").contains(rw.st_ino));
  EXPECT_EQ(rw.st_mode & 07777, 0640u);

  test::flip_byte(dir() / "out/rw", 0);
  auto report = store().verify({});
  ASSERT_TRUE(ok(report));
  ASSERT_EQ(report->bad.size(), 1u);
  const std::string hex = to_hex(hash_bytes(DigestAlgorithm::sha256, "writable, linked on request"));
  EXPECT_TRUE(report->bad[0].path.starts_with("variants/" + hex.substr(0, 2) + "/" + hex + ".640."))
      << report->bad[0].path;
  EXPECT_EQ(report->bad[0].digest, "sha256:" + hex);
}

TEST_F(RestoreTest, Targets) {
  test::write_file(src("f"), "content");
  auto snap = store().snapshot(src(), {.name = "t"});
  ASSERT_TRUE(ok(snap));

  test::make_dir(dir() / "full");
  test::write_file(dir() / "full/keep", "mine");
  EXPECT_TRUE(fails_with(store().restore("t", dir() / "full", {}), ErrorCode::exists));
  EXPECT_EQ(test::list_dir(dir() / "full"), std::vector<std::string>{"keep"});
  EXPECT_EQ(test::read_file(dir() / "full/keep"), "mine");

  test::write_file(dir() / "a_file", "x");
  EXPECT_TRUE(fails_with(store().restore("t", dir() / "a_file", {}), ErrorCode::exists));
  EXPECT_EQ(test::read_file(dir() / "a_file"), "x");

  test::make_dir(dir() / "empty");
  ASSERT_TRUE(ok(store().restore("t", dir() / "empty", {})));
  EXPECT_EQ(test::read_file(dir() / "empty/f"), "content");

  ASSERT_TRUE(ok(store().restore("t", dir() / "new/parents", {})));
  EXPECT_EQ(test::read_file(dir() / "new/parents/f"), "content");

  ASSERT_TRUE(ok(store().restore("t", dir() / "slash/", {})));
  EXPECT_EQ(test::read_file(dir() / "slash/f"), "content");

  ASSERT_TRUE(ok(store().restore(snap->id.substr(0, 8), dir() / "by_id", {})));
  EXPECT_EQ(test::read_file(dir() / "by_id/f"), "content");
  for (const auto& name : test::list_dir(dir())) EXPECT_FALSE(name.starts_with(".")) << name;
}

// Restore skips a chown and chmod when the new file already has the entry's owner and mode; that
// shortcut must hold under any umask and below a set-group-id directory whose group new files take.
TEST_F(RestoreTest, ModesAndGroupsSurviveAStrictUmaskAndASetGroupIdParent) {
  test::write_file(src("group-rw"), "g", 0664);
  test::write_file(src("world-rw"), "w", 0666);
  test::write_file(src("private"), "p", 0600);
  test::write_file(src("empty"), "", 0644);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "modes"})));
  const auto before = test::scan(src());

  const mode_t saved = ::umask(077);
  auto strict = store().restore("modes", dir() / "strict", {.strategy = Strategy::copy});
  ::umask(saved);
  ASSERT_TRUE(ok(strict));
  for (const char* name : {"group-rw", "world-rw", "private", "empty"})
    EXPECT_EQ(test::lstat_path(dir() / "strict" / name).st_mode & 07777, before.at(name).mode & 07777) << name;

  if (::geteuid() != 0) GTEST_SKIP() << "the set-group-id case needs root to own a foreign group";
  test::make_dir(dir() / "sgid");
  ASSERT_EQ(::chown((dir() / "sgid").c_str(), 0, 4321), 0);
  ASSERT_EQ(::chmod((dir() / "sgid").c_str(), 02775), 0);
  ASSERT_TRUE(ok(store().restore("modes", dir() / "sgid/out", {.strategy = Strategy::copy})));
  for (const char* name : {"group-rw", "world-rw", "private", "empty"}) {
    struct stat st = test::lstat_path(dir() / "sgid/out" / name);
    EXPECT_EQ(st.st_gid, before.at(name).gid) << name << " must keep its group, not the directory's";
    EXPECT_EQ(st.st_mode & 07777, before.at(name).mode & 07777) << name;
  }
}

TEST_F(RestoreTest, ProgressCountsEveryFileAndByteOnce) {
  for (int i = 0; i < 50; ++i) test::write_file(src("f" + std::to_string(i)), std::string(1000 + i, 'p'), i % 2 ? 0444 : 0644);
  test::write_file(src("empty"), "");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "progress"})));
  std::vector<RestoreProgress> calls;
  RestoreOptions options;
  options.progress = [&](const RestoreProgress& p) { calls.push_back(p); };
  ASSERT_TRUE(ok(store().restore("progress", dir() / "out", options)));
  ASSERT_FALSE(calls.empty());
  const RestoreProgress& last = calls.back();
  EXPECT_EQ(last.files_total, 50u) << "empty files carry no content to wait for";
  EXPECT_EQ(last.files_done, 50u);
  EXPECT_EQ(last.bytes_total, 50u * 1000 + 49 * 50 / 2);
  EXPECT_EQ(last.bytes_done, last.bytes_total);
  for (std::size_t i = 1; i < calls.size(); ++i) EXPECT_GE(calls[i].files_done, calls[i - 1].files_done);
}

TEST_F(RestoreTest, FailedRestoreLeavesNoTempSibling) {
  test::write_file(src("f"), "will be damaged");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "t"})));
  test::flip_byte(test::object_path(store_dir(), to_hex(hash_bytes(DigestAlgorithm::sha256, "will be damaged"))), 0);
  test::make_dir(dir() / "parent");
  auto restored = store().restore("t", dir() / "parent/out", {.strategy = Strategy::copy});
  ASSERT_TRUE(fails_with(restored, ErrorCode::corrupt));
  EXPECT_NE(restored.error().context.find("\"f\""), std::string::npos) << restored.error().message();
  EXPECT_TRUE(test::list_dir(dir() / "parent").empty()) << "neither out nor .out.treesnap-* may remain";
}

}  // namespace
}  // namespace treesnap
