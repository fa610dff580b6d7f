// Store::restore with RestoreMode::update: a restored tree brought to another snapshot in place.
// Kept entries keep their inodes, changed ones are replaced, the user's changes and files treesnap
// did not create are conflicts (untouched) unless forced, and an interrupted update converges.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <set>

#include "meta/database.hpp"
#include "store_fixture.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
using test::StoreTest;
namespace fs = std::filesystem;

const RestoreOptions k_update{.mode = RestoreMode::update};
const RestoreOptions k_force{.mode = RestoreMode::update, .force = true};

class UpdateTest : public StoreTest {
 protected:
  // v1: read-only and writable files, a symlink, an in-tree hardlink, a directory to drop.
  void build_v1() {
    test::make_dir(src("lib"));
    test::make_dir(src("old"));
    test::write_file(src("lib/keep.py"), "kept\n", 0444);
    test::write_file(src("lib/change.py"), "version 1\n", 0444);
    test::write_file(src("lib/rw.cfg"), "writable 1\n", 0644);
    test::write_file(src("lib/empty"), "", 0644);
    test::write_file(src("gone.txt"), "removed in v2\n", 0444);
    test::write_file(src("old/inside"), "dropped with its directory\n", 0444);
    ASSERT_EQ(::symlink("lib/keep.py", src("link").c_str()), 0);
    ASSERT_EQ(::link(src("lib/keep.py").c_str(), src("keep-again.py").c_str()), 0);
  }
  // v2 from v1: one file changed, one writable file changed, one removed, one directory removed,
  // a file and a directory added.
  void make_v2() {
    fs::remove(src("gone.txt"));
    fs::remove_all(src("old"));
    ::chmod(src("lib/change.py").c_str(), 0644);
    test::write_file(src("lib/change.py"), "version 2, longer\n", 0444);
    test::write_file(src("lib/rw.cfg"), "writable 2\n", 0644);
    test::make_dir(src("new"));
    test::write_file(src("new/added.py"), "added in v2\n", 0444);
  }
  void snapshot(const std::string& name) {
    test::wait_out_racy_window();
    ASSERT_TRUE(ok(store().snapshot(src(), {.name = name})));
  }
  fs::path out(const std::string& rel = "") const { return rel.empty() ? dir() / "out" : dir() / "out" / rel; }
};

TEST_F(UpdateTest, KeepsUpdatesAddsAndRemoves) {
  build_v1();
  snapshot("t:1");
  ASSERT_TRUE(ok(store().restore("t:1", out(), {})));
  const ino_t keep_ino = test::lstat_path(out("lib/keep.py")).st_ino;
  const ino_t change_ino = test::lstat_path(out("lib/change.py")).st_ino;
  make_v2();
  snapshot("t:2");

  auto updated = store().restore("t:2", out(), k_update);
  ASSERT_TRUE(ok(updated));
  const UpdateReport& u = updated->update;
  EXPECT_TRUE(u.performed);
  EXPECT_EQ(u.updated, 2u) << "lib/change.py and lib/rw.cfg";
  EXPECT_EQ(u.added, 1u) << "new/added.py";
  EXPECT_EQ(u.removed, 2u) << "gone.txt and old/inside";
  EXPECT_EQ(u.kept, 4u) << "keep.py, its second name, the symlink, the empty file";
  EXPECT_EQ(u.directories_added, 1u);
  EXPECT_EQ(u.directories_removed, 1u);
  EXPECT_EQ(u.conflicts, 0u);
  EXPECT_EQ(updated->copied.files + updated->reflinked.files + updated->hardlinked.files, 3u)
      << "the strategy figures count placed files only";

  EXPECT_EQ(test::lstat_path(out("lib/keep.py")).st_ino, keep_ino) << "a kept file keeps its inode";
  EXPECT_EQ(test::lstat_path(out("keep-again.py")).st_ino, keep_ino);
  EXPECT_NE(test::lstat_path(out("lib/change.py")).st_ino, change_ino);
  ASSERT_TRUE(ok(store().restore("t:2", dir() / "fresh", {})));
  test::expect_same_tree(dir() / "fresh", out(), test::RootCheck::skip);

  auto status = store().status(out(), {});
  ASSERT_TRUE(ok(status));
  EXPECT_EQ(status->snapshot, "t:2");
  EXPECT_TRUE(status->clean()) << status->changes.size() << " changes, first " << status->changes[0].path;

  auto again = store().restore("t:2", out(), k_update);
  ASSERT_TRUE(ok(again));
  EXPECT_EQ(again->update.updated + again->update.added + again->update.removed + again->update.conflicts, 0u)
      << "a second update changes nothing";
}

// The amended record (one packed blob, rewritten in the update's transaction) holds one file per
// regular file of the new snapshot, each with its stat now: the placed files' after their rename
// into the target, the kept ones' as recorded. Nothing is hashed by the status that follows.
TEST_F(UpdateTest, AmendedRecordHoldsTheStatOfEveryFile) {
  build_v1();
  snapshot("t:1");
  ASSERT_TRUE(ok(store().restore("t:1", out(), {})));
  make_v2();
  snapshot("t:2");
  ASSERT_TRUE(ok(store().restore("t:2", out(), k_update)));
  auto db = Database::open((store_dir() / "treesnap.db").string(), false);
  ASSERT_TRUE(ok(db));
  auto record = db->find_restore(fs::canonical(out()).string());
  ASSERT_TRUE(ok(record) && record->has_value());
  EXPECT_EQ((*record)->snapshot, "t:2");
  auto entries = db->restore_entries((*record)->id);
  ASSERT_TRUE(ok(entries));
  std::set<std::string> paths;
  for (const auto& e : *entries) {
    EXPECT_TRUE(paths.insert(e.path).second) << "twice: " << e.path;
    EXPECT_EQ(e.stamp, stamp_of(test::lstat_path(out(e.path)))) << e.path;
  }
  EXPECT_EQ(paths, (std::set<std::string>{"keep-again.py", "lib/change.py", "lib/rw.cfg", "lib/empty", "new/added.py"}))
      << "every regular file but the in-tree link's second name (lib/keep.py: keep-again.py sorts first)";
  auto status = store().status(out(), {});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean());
  EXPECT_EQ(status->hashed, 0u);
}

TEST_F(UpdateTest, UserChangesAreConflictsUnlessForced) {
  build_v1();
  snapshot("t:1");
  ASSERT_TRUE(ok(store().restore("t:1", out(), {})));
  make_v2();
  snapshot("t:2");
  // The user edits a file v2 changes and one v2 removes.
  test::write_file(out("lib/rw.cfg"), "the user's settings\n", 0644);
  fs::remove(out("gone.txt"));  // a linked store inode: replaced, as an editor would, not written
  test::write_file(out("gone.txt"), "the user's notes\n", 0644);

  auto updated = store().restore("t:2", out(), k_update);
  ASSERT_TRUE(ok(updated));
  EXPECT_EQ(updated->update.conflicts, 2u);
  ASSERT_EQ(updated->update.conflict_list.size(), 2u);
  EXPECT_EQ(test::read_file(out("lib/rw.cfg")), "the user's settings\n") << "a conflict is left alone";
  EXPECT_EQ(test::read_file(out("gone.txt")), "the user's notes\n");
  EXPECT_EQ(test::read_file(out("lib/change.py")), "version 2, longer\n") << "the rest is updated";
  auto status = store().status(out(), {});
  ASSERT_TRUE(ok(status));
  EXPECT_FALSE(status->clean()) << "the record does not vouch for a conflict";

  auto forced = store().restore("t:2", out(), k_force);
  ASSERT_TRUE(ok(forced));
  EXPECT_EQ(forced->update.conflicts, 0u);
  EXPECT_EQ(test::read_file(out("lib/rw.cfg")), "writable 2\n");
  // gone.txt is no longer treesnap's after the first update: --force does not remove it.
  EXPECT_EQ(test::read_file(out("gone.txt")), "the user's notes\n");
}

TEST_F(UpdateTest, FilesTreesnapDidNotCreateAreUntouched) {
  build_v1();
  snapshot("t:1");
  ASSERT_TRUE(ok(store().restore("t:1", out(), {})));
  make_v2();
  test::write_file(src("lib/mine.txt"), "the snapshot's\n", 0444);
  snapshot("t:2");
  test::write_file(out("notes.txt"), "mine alone\n", 0600);         // a path v2 does not have
  test::write_file(out("lib/mine.txt"), "the user's own\n", 0600);  // a path v2 has
  test::make_dir(out("new"));                                       // a directory v2 adds
  test::write_file(out("new/added.py"), "added in v2\n", 0444);     // equal to v2's: adopted
  test::set_mtime(out("new/added.py"), test::mtime_ns(test::lstat_path(src("new/added.py"))));
  const ino_t adopted = test::lstat_path(out("new/added.py")).st_ino;

  auto updated = store().restore("t:2", out(), k_update);
  ASSERT_TRUE(ok(updated));
  EXPECT_EQ(updated->update.conflicts, 1u);
  ASSERT_EQ(updated->update.conflict_list.size(), 1u);
  EXPECT_EQ(updated->update.conflict_list[0].path, "lib/mine.txt");
  EXPECT_NE(updated->update.conflict_list[0].reason.find("not created by treesnap"), std::string::npos);
  EXPECT_EQ(test::read_file(out("notes.txt")), "mine alone\n");
  EXPECT_EQ(test::read_file(out("lib/mine.txt")), "the user's own\n");
  EXPECT_EQ(test::lstat_path(out("new/added.py")).st_ino, adopted) << "equal content is kept";

  ASSERT_TRUE(ok(store().restore("t:2", out(), k_force)));
  EXPECT_EQ(test::read_file(out("lib/mine.txt")), "the snapshot's\n");
  EXPECT_EQ(test::read_file(out("notes.txt")), "mine alone\n") << "--force never removes a foreign file";
}

TEST_F(UpdateTest, TargetsWithoutARecord) {
  build_v1();
  snapshot("t:1");
  test::make_dir(out());
  test::write_file(out("lib"), "a file where the snapshot has a directory\n", 0644);
  EXPECT_TRUE(fails_with(store().restore("t:1", out(), {}), ErrorCode::exists)) << "no --update: as before";
  EXPECT_TRUE(fails_with(store().restore("t:1", out(), k_update), ErrorCode::not_found));
  EXPECT_EQ(test::read_file(out("lib")), "a file where the snapshot has a directory\n");
  auto forced = store().restore("t:1", out(), k_force);
  ASSERT_TRUE(ok(forced));
  ASSERT_TRUE(ok(store().restore("t:1", dir() / "fresh", {})));
  test::expect_same_tree(dir() / "fresh", out(), test::RootCheck::skip);
  // A missing target is a plain restore.
  auto created = store().restore("t:1", dir() / "new-target", k_update);
  ASSERT_TRUE(ok(created));
  EXPECT_TRUE(created->update.performed);
  EXPECT_EQ(created->update.added, 8u);
  EXPECT_EQ(created->update.directories_added, 2u);
}

TEST_F(UpdateTest, InterruptedUpdateConvergesWhenRunAgain) {
  // "fast": the child forked here works on this test's tree (a re-executed one would make its own).
  GTEST_FLAG_SET(death_test_style, "fast");
  build_v1();
  for (int i = 0; i < 20; ++i) test::write_file(src("lib/m" + std::to_string(i)), "v1 " + std::to_string(i), 0444);
  snapshot("t:1");
  ASSERT_TRUE(ok(store().restore("t:1", out(), {})));
  make_v2();
  for (int i = 0; i < 20; ++i) {
    ::chmod(src("lib/m" + std::to_string(i)).c_str(), 0644);
    test::write_file(src("lib/m" + std::to_string(i)), "v2 " + std::to_string(i), 0444);
  }
  snapshot("t:2");
  for (int after : {3, 12}) {
    EXPECT_EXIT(
        {
          ::setenv("TREESNAP_TEST_ABORT_AFTER_ENTRIES", std::to_string(after).c_str(), 1);
          (void)store().restore("t:2", out(), k_update);
          std::_Exit(0);
        },
        ::testing::KilledBySignal(SIGKILL), "")
        << "the failpoint must kill the update after " << after << " changes";
  }
  auto finished = store().restore("t:2", out(), k_update);
  ASSERT_TRUE(ok(finished));
  for (const auto& c : finished->update.conflict_list) ADD_FAILURE() << "conflict " << c.path << ": " << c.reason;
  ASSERT_TRUE(ok(store().restore("t:2", dir() / "fresh", {})));
  test::expect_same_tree(dir() / "fresh", out(), test::RootCheck::skip);
  auto status = store().status(out(), {});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean());
  EXPECT_FALSE(fs::exists(dir() / ".out.treesnap-update")) << "the staging tree is removed";
}

}  // namespace
}  // namespace treesnap
