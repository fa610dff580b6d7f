// File system probes: the first restore into a pair probes and records, later ones read the
// record, `Store::probe` probes again, and a restore that meets an error the record did not
// predict probes again and replaces the record.
#include <fcntl.h>
#include <linux/magic.h>

#include <gtest/gtest.h>

#include "meta/database.hpp"
#include "restore/ladder.hpp"
#include "store/fs_probe.hpp"
#include "store_fixture.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

using test::ok;
namespace fs = std::filesystem;

TEST(FsProbeTest, NamesFileSystemTypes) {
  EXPECT_EQ(fs_type_name(XFS_SUPER_MAGIC), "xfs");
  EXPECT_EQ(fs_type_name(BTRFS_SUPER_MAGIC), "btrfs");
  EXPECT_EQ(fs_type_name(EXT4_SUPER_MAGIC), "ext4");
  EXPECT_EQ(fs_type_name(TMPFS_MAGIC), "tmpfs");
  EXPECT_EQ(fs_type_name(0x1234), "0x1234");
}

class ProbeTest : public test::StoreTest {
 protected:
  Database db() {
    auto opened = Database::open((store_dir() / "treesnap.db").string(), false);
    EXPECT_TRUE(ok(opened));
    return std::move(*opened);
  }
  std::vector<std::string> leftovers(const fs::path& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
    return names;
  }
};

TEST_F(ProbeTest, ProbesOnceRecordsAndLeavesNothingBehind) {
  test::write_file(src("f"), "content", 0644);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "t"})));
  auto first = store().restore("t", dir() / "out1", {});
  ASSERT_TRUE(ok(first));
  EXPECT_TRUE(first->probe.fresh);
  EXPECT_EQ(first->probe.link_errno, 0);  // same file system as the store
  EXPECT_FALSE(first->probe.store_fsid.empty());
  EXPECT_EQ(first->probe.store_fsid, first->probe.target_fsid);
  auto second = store().restore("t", dir() / "out2", {});
  ASSERT_TRUE(ok(second));
  EXPECT_FALSE(second->probe.fresh);  // read from the record
  EXPECT_EQ(second->probe.probed_ns, first->probe.probed_ns);
  EXPECT_EQ(leftovers(dir() / "out2"), std::vector<std::string>{"f"});
  EXPECT_TRUE(leftovers(store_dir() / "tmp").empty());

  auto again = store().probe(dir());
  ASSERT_TRUE(ok(again));
  EXPECT_TRUE(again->fresh);
  EXPECT_GE(again->probed_ns, first->probe.probed_ns);
  auto recorded = db().find_probe(again->store_fsid, again->target_fsid);
  ASSERT_TRUE(ok(recorded));
  ASSERT_TRUE(recorded->has_value());
  EXPECT_EQ((*recorded)->probed_ns, again->probed_ns);
}

// A record that says reflink works where it does not (a remount without reflink, a stale row):
// the first file that fails so makes the restore probe again and replace the record.
TEST_F(ProbeTest, AnUnpredictedFailureProbesAgain) {
  auto real = store().probe(dir());
  ASSERT_TRUE(ok(real));
  if (real->reflink_errno == 0) GTEST_SKIP() << "the test directory's file system can reflink: no failure to provoke";
  ProbeRecord lie{real->store_fsid, real->target_fsid, real->store_fs, real->target_fs, 0, 0, 0, 1};
  ASSERT_TRUE(ok(db().record_probe(lie)));

  test::write_file(src("writable"), "cloned under auto", 0644);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "t"})));
  auto restored = store().restore("t", dir() / "out", {});
  ASSERT_TRUE(ok(restored));
  EXPECT_TRUE(restored->probe.reprobed);
  EXPECT_EQ(restored->probe.reflink_errno, real->reflink_errno);
  EXPECT_EQ(restored->copied.files, 1u);
  auto recorded = db().find_probe(real->store_fsid, real->target_fsid);
  ASSERT_TRUE(ok(recorded));
  EXPECT_EQ((*recorded)->reflink_errno, real->reflink_errno);
  EXPECT_GT((*recorded)->probed_ns, 1);
}

}  // namespace
}  // namespace treesnap

namespace treesnap {
namespace {

// The measured rule (restore/ladder.cpp): small files on XFS are copied under auto, nothing else.
TEST(AutoRuleTest, CopiesOnlySmallFilesOnXfs) {
  EXPECT_TRUE(auto_prefers_copy("xfs", 1));
  EXPECT_TRUE(auto_prefers_copy("xfs", 4096));
  EXPECT_FALSE(auto_prefers_copy("xfs", 4097));
  EXPECT_FALSE(auto_prefers_copy("btrfs", 256));
  EXPECT_FALSE(auto_prefers_copy("ext4", 256));
}

}  // namespace
}  // namespace treesnap
