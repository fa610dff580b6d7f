// verify --fast, status and repair against real damage (docs/integrity.md): each kind of damage
// done through a hardlinked tree and directly in the store, then repaired; afterwards every name
// has the right content, inode numbers and link counts are as before, verify is clean and a
// second repair does nothing.
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "meta/database.hpp"
#include "store_fixture.hpp"

namespace treesnap::test {
namespace {

enum class Damage { truncate_to_zero, flip_byte, append, chmod, remove, replace_inode };
enum class Where { linked_tree, store };

std::string damage_name(Damage d) {
  switch (d) {
    case Damage::truncate_to_zero: return "TruncateToZero";
    case Damage::flip_byte: return "FlipByte";
    case Damage::append: return "Append";
    case Damage::chmod: return "Chmod";
    case Damage::remove: return "Remove";
    case Damage::replace_inode: return "ReplaceInode";
  }
  return "?";
}

// Writes through `path` as a careless tool would (the mode is made writable first, as pip and
// conda do), keeping the inode.
void write_through(const fs::path& path, std::string_view data, bool append) {
  struct stat st = lstat_path(path);
  ::chmod(path.c_str(), (st.st_mode & 07777) | S_IWUSR);
  int fd = ::open(path.c_str(), O_WRONLY | (append ? O_APPEND : O_TRUNC) | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + path.string());
  if (!data.empty() && ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) throw_errno("write");
  ::close(fd);
  ::chmod(path.c_str(), st.st_mode & 07777);
}

void damage(const fs::path& path, Damage d) {
  switch (d) {
    case Damage::truncate_to_zero: write_through(path, "", false); break;
    case Damage::flip_byte: flip_byte(path, 3); break;
    case Damage::append: write_through(path, "appended", true); break;
    case Damage::chmod: ::chmod(path.c_str(), 0666); break;
    case Damage::remove: fs::remove(path); break;
    case Damage::replace_inode: {  // rsync without --inplace: a new file renamed over the name
      write_file(path.string() + ".tmp", "other bytes entirely", 0444);
      fs::rename(path.string() + ".tmp", path);
      break;
    }
  }
}

struct Names {
  ino_t ino;
  nlink_t nlink;
};

class IntegrityTest : public StoreTest {
 protected:
  static constexpr std::string_view k_content = "the intact content of a shared library\n";

  void SetUp() override {
    StoreTest::SetUp();
    write_file(src("lib.so"), k_content, 0444);
    write_file(src("other.txt"), "other\n", 0444);
    make_dir(src("sub"));
    write_file(src("sub/data"), "some data\n", 0644);
    auto snap = store().snapshot(src(), {.name = "env:v1"});
    ASSERT_TRUE(ok(snap));
    RestoreOptions linked;
    linked.strategy = Strategy::hardlink;
    ASSERT_TRUE(ok(store().restore("env:v1", env1(), linked)));
    ASSERT_TRUE(ok(store().restore("env:v1", env2(), linked)));
    m_object = object_path(store_dir(), to_hex(hash_bytes(DigestAlgorithm::sha256, k_content)));
    ASSERT_EQ(lstat_path(env1() / "lib.so").st_ino, lstat_path(m_object).st_ino) << "the test needs a directly linked object";
  }

  fs::path env1() const { return dir() / "env1"; }
  fs::path env2() const { return dir() / "env2"; }
  const fs::path& object() const { return m_object; }

  std::vector<fs::path> names_of_lib() const { return {env1() / "lib.so", env2() / "lib.so", m_object}; }
  std::vector<Names> inodes() const {
    std::vector<Names> out;
    for (const auto& p : names_of_lib()) {
      auto st = lstat_path(p);
      out.push_back({st.st_ino, st.st_nlink});
    }
    return out;
  }

  void expect_healed(const std::vector<Names>& before) {
    for (const auto& p : names_of_lib()) {
      EXPECT_EQ(read_file(p), k_content) << p;
      EXPECT_EQ(lstat_path(p).st_mode & 07777, 0444u) << p;
    }
    auto after = inodes();
    for (std::size_t i = 0; i < before.size(); ++i) {
      EXPECT_EQ(after[i].ino, before[i].ino) << names_of_lib()[i];
      EXPECT_EQ(after[i].nlink, before[i].nlink) << names_of_lib()[i];
    }
    auto verify = store().verify({});
    ASSERT_TRUE(ok(verify));
    EXPECT_TRUE(verify->clean()) << (verify->bad.empty() ? verify->fixed.front().path : verify->bad.front().reason);
    for (const auto& env : {env1(), env2()}) {
      auto status = store().status(env, {.verify = true});
      ASSERT_TRUE(ok(status));
      EXPECT_TRUE(status->clean()) << env << ": " << status->changes.front().path << " " << to_string(status->changes.front().kind);
    }
    auto again = store().repair(env1(), {});
    ASSERT_TRUE(ok(again));
    EXPECT_TRUE(again->actions.empty()) << "second repair: " << again->actions.front().action << " " << again->actions.front().path;
  }

 private:
  fs::path m_object;
};

TEST_F(IntegrityTest, FastVerifyHashesNothingAfterSnapshotAndHardlinkRestores) {
  auto fast = store().verify({.fast = true});
  ASSERT_TRUE(ok(fast));
  EXPECT_TRUE(fast->clean());
  EXPECT_EQ(fast->hashed, 0u) << "a fresh hardlink restore must not make its inodes suspects";
  RestoreOptions linked;
  linked.strategy = Strategy::hardlink;
  ASSERT_TRUE(ok(store().restore("env:v1", dir() / "env3", linked)));
  fast = store().verify({.fast = true});
  ASSERT_TRUE(ok(fast));
  EXPECT_TRUE(fast->clean());
  EXPECT_EQ(fast->hashed, 0u);
}

TEST_F(IntegrityTest, FastVerifyCatchesAWriteThroughALinkEvenWithItsMtimeSetBack) {
  const auto mtime = mtime_ns(lstat_path(env2() / "lib.so"));
  flip_byte(env2() / "lib.so", 5);
  set_mtime(env2() / "lib.so", mtime);  // `touch -m` back: only ctime still tells
  auto fast = store().verify({.fast = true});
  ASSERT_TRUE(ok(fast));
  ASSERT_EQ(fast->bad.size(), 1u);
  EXPECT_EQ(fast->bad[0].path, "objects/" + object().parent_path().filename().string() + "/" + object().filename().string());
  EXPECT_FALSE(fs::exists(object())) << "a damaged object must leave objects/";
  EXPECT_TRUE(fs::exists(store_dir() / fast->bad[0].quarantined));
  EXPECT_EQ(fast->bad[0].trees.size(), 2u) << "both hardlinked trees share the damaged inode";
  EXPECT_EQ(fast->bad[0].paths, std::vector<std::string>{"env:v1:lib.so"});
  // Nothing restores from quarantine: the restore fails loudly, naming the object.
  auto restored = store().restore("env:v1", dir() / "env4", {});
  EXPECT_TRUE(fails_with(restored, ErrorCode::corrupt));
  EXPECT_FALSE(fs::exists(dir() / "env4"));
}

TEST_F(IntegrityTest, LostContentIsReportedWithSnapshotsAndTrees) {
  write_through(env1() / "lib.so", "garbage", false);
  write_file(src("lib.so"), "the source changed too", 0444);  // no intact copy is left anywhere
  auto report = store().repair(env1(), {});
  ASSERT_TRUE(ok(report));
  ASSERT_EQ(report->lost.size(), 1u);
  EXPECT_FALSE(report->complete());
  EXPECT_EQ(report->lost[0].paths, std::vector<std::string>{"lib.so"});
  EXPECT_EQ(report->lost[0].snapshots, std::vector<std::string>{"env:v1"});
  EXPECT_EQ(report->lost[0].trees.size(), 2u);
}

TEST_F(IntegrityTest, RepairTakesBytesFromAnotherStore) {
  auto other = Store::open(dir() / "other-store", {});
  ASSERT_TRUE(ok(other));
  ASSERT_TRUE(ok(other->snapshot(src(), {.name = "copy:v1"})));
  write_through(env1() / "lib.so", "garbage", false);
  fs::remove(src("lib.so"));
  auto report = store().repair(env1(), {.from = {(dir() / "other-store").string()}});
  ASSERT_TRUE(ok(report));
  EXPECT_TRUE(report->complete());
  ASSERT_FALSE(report->actions.empty());
  EXPECT_NE(report->actions[0].source.find("other-store"), std::string::npos) << report->actions[0].source;
  EXPECT_EQ(read_file(env2() / "lib.so"), k_content);
}

TEST_F(IntegrityTest, DryRunChangesNothing) {
  write_through(env1() / "lib.so", "garbage", false);
  auto report = store().repair(env1(), {.dry_run = true});
  ASSERT_TRUE(ok(report));
  EXPECT_FALSE(report->actions.empty());
  EXPECT_EQ(read_file(env1() / "lib.so"), "garbage");
}

TEST_F(IntegrityTest, StatusSeesAddedRemovedAndChanged) {
  write_file(env1() / "new.txt", "added");
  fs::remove(env1() / "other.txt");
  ::chmod((env1() / "sub/data").c_str(), 0600);
  auto status = store().status(env1(), {});
  ASSERT_TRUE(ok(status));
  std::map<std::string, ChangeKind> seen;
  for (const auto& c : status->changes) seen[c.path] = c.kind;
  EXPECT_EQ(seen.at("new.txt"), ChangeKind::added);
  EXPECT_EQ(seen.at("other.txt"), ChangeKind::removed);
  EXPECT_EQ(seen.at("sub/data"), ChangeKind::metadata);
  auto report = store().repair(env1(), {.prune = true});
  ASSERT_TRUE(ok(report));
  EXPECT_FALSE(fs::exists(env1() / "new.txt"));
  EXPECT_EQ(read_file(env1() / "other.txt"), "other\n");
  EXPECT_EQ(lstat_path(env1() / "sub/data").st_mode & 07777, 0644u);
  status = store().status(env1(), {.verify = true});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean());
}

// A directory's mode and mtime are the manifest's, as the restore set them last; status sees
// them moved (by hand, or by an entry added or removed inside) and repair puts them back, also
// the mtimes its own renames moved, and a second repair changes nothing.
TEST_F(IntegrityTest, StatusSeesDirectoryMetadataAndRepairRestoresIt) {
  const auto sub_before = lstat_path(env1() / "sub");
  const auto root_before = lstat_path(env1());
  ::chmod((env1() / "sub").c_str(), 0700);
  write_file(env1() / "sub/new.txt", "added");  // moves sub's mtime
  fs::remove(env1() / "other.txt");               // moves the root's mtime
  auto status = store().status(env1(), {});
  ASSERT_TRUE(ok(status));
  std::map<std::pair<std::string, ChangeKind>, std::string> seen;
  for (const auto& c : status->changes) seen[{c.path, c.kind}] = c.detail;
  ASSERT_TRUE(seen.contains({"sub", ChangeKind::metadata}));
  EXPECT_NE(seen.at({"sub", ChangeKind::metadata}).find("mode 0700"), std::string::npos);
  EXPECT_NE(seen.at({"sub", ChangeKind::metadata}).find("mtime"), std::string::npos);
  EXPECT_EQ(seen.count({"", ChangeKind::metadata}) + seen.count({".", ChangeKind::metadata}), 1u) << "the root's mtime";

  auto report = store().repair(env1(), {.prune = true});
  ASSERT_TRUE(ok(report));
  for (const auto& [path, before] : {std::pair{env1() / "sub", sub_before}, std::pair{env1(), root_before}}) {
    const auto now = lstat_path(path);
    EXPECT_EQ(now.st_mode & 07777, before.st_mode & 07777) << path;
    EXPECT_EQ(to_ns(now.st_mtim), to_ns(before.st_mtim)) << path << ": repair's own rename and unlink moved it";
  }
  status = store().status(env1(), {.verify = true});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean()) << status->changes.front().path << " " << status->changes.front().detail;
  auto again = store().repair(env1(), {});
  ASSERT_TRUE(ok(again));
  EXPECT_TRUE(again->actions.empty());
  EXPECT_EQ(to_ns(lstat_path(env1() / "sub").st_mtim), to_ns(sub_before.st_mtim));
}

// rsync without --inplace puts a new inode in place (moving the directory's mtime), and repair
// renames the right content over it (moving it again): the directory ends with the restored mtime.
TEST_F(IntegrityTest, ContentRepairLeavesTheDirectoryMtimeAsRestored) {
  const auto sub_before = lstat_path(env2() / "sub");
  write_file(env2() / "sub/.data.tmp", "changed", 0644);
  ASSERT_EQ(::rename((env2() / "sub/.data.tmp").c_str(), (env2() / "sub/data").c_str()), 0);
  auto report = store().repair(env2(), {});
  ASSERT_TRUE(ok(report));
  EXPECT_FALSE(report->actions.empty());
  EXPECT_EQ(read_file(env2() / "sub/data"), "some data\n");
  EXPECT_EQ(to_ns(lstat_path(env2() / "sub").st_mtim), to_ns(sub_before.st_mtim));
  auto status = store().status(env2(), {.verify = true});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean()) << status->changes.front().path << " " << status->changes.front().detail;
}

// The record's stats come from the restorer, not from a stat after the fact: each must still be
// the file's stat, also for one inode linked under several names (ctime moved with each link) and
// for in-tree hardlinks made after the file was placed.
TEST_F(IntegrityTest, RecordHoldsTheStatOfEveryFileOnceInPlace) {
  for (const char* name : {"dup1", "dup2", "dup3"}) write_file(src(name), "same bytes\n", 0444);
  write_file(src("first"), "linked in the tree\n", 0644);
  ASSERT_EQ(::link(src("first").c_str(), src("second").c_str()), 0);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "env:v2"})));
  for (Strategy how : {Strategy::hardlink, Strategy::copy, Strategy::automatic}) {
    const fs::path target = dir() / fmt::format("record-{}", static_cast<int>(how));
    RestoreOptions options;
    options.strategy = how;
    options.hardlink_writable = true;
    ASSERT_TRUE(ok(store().restore("env:v2", target, options)));
    auto db = Database::open((store_dir() / "treesnap.db").string(), false);
    ASSERT_TRUE(ok(db));
    auto record = db->find_restore(fs::canonical(target).string());
    ASSERT_TRUE(ok(record) && record->has_value());
    auto entries = db->restore_entries((*record)->id);
    ASSERT_TRUE(ok(entries));
    EXPECT_EQ(entries->size(), 7u) << "every regular file but the in-tree link's second name";
    for (const auto& e : *entries) EXPECT_EQ(e.stamp, stamp_of(lstat_path(target / e.path))) << target / e.path;
    auto status = store().status(target, {});
    ASSERT_TRUE(ok(status));
    EXPECT_TRUE(status->clean());
    EXPECT_EQ(status->hashed, 0u);
  }
}

TEST_F(IntegrityTest, StatusSeesChangedXattrs) {
  write_file(src("tagged"), "tagged content\n", 0644);
  set_xattr(src("tagged"), "user.origin", "upstream");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "env:v2"})));
  RestoreOptions copy;
  copy.strategy = Strategy::copy;
  ASSERT_TRUE(ok(store().restore("env:v2", dir() / "tagged-env", copy)));
  auto status = store().status(dir() / "tagged-env", {});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean());
  ASSERT_EQ(::setxattr((dir() / "tagged-env/tagged").c_str(), "user.origin", "local", 5, 0), 0);
  status = store().status(dir() / "tagged-env", {});
  ASSERT_TRUE(ok(status));
  ASSERT_EQ(status->changes.size(), 1u);
  EXPECT_EQ(status->changes[0].path, "tagged");
  EXPECT_EQ(status->changes[0].kind, ChangeKind::metadata);
  EXPECT_NE(status->changes[0].detail.find("xattrs"), std::string::npos) << status->changes[0].detail;
  auto repaired = store().repair(dir() / "tagged-env", {});
  ASSERT_TRUE(ok(repaired));
  status = store().status(dir() / "tagged-env", {});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean()) << "repair puts the xattrs back";
}

// A record written by schema 4 (one restore_entries row per file) is still read, and repair
// rewrites it packed.
TEST_F(IntegrityTest, ASchema4RecordIsReadAndRewrittenPacked) {
  const std::string db_path = (store_dir() / "treesnap.db").string();
  std::vector<RestoreEntryRecord> entries;
  std::int64_t id = 0;
  {
    auto db = Database::open(db_path, false);
    ASSERT_TRUE(ok(db));
    auto record = db->find_restore(fs::canonical(env1()).string());
    ASSERT_TRUE(ok(record) && record->has_value());
    id = (*record)->id;
    auto read = db->restore_entries(id);
    ASSERT_TRUE(ok(read));
    entries = *read;
  }
  ASSERT_FALSE(entries.empty());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, fmt::format("DELETE FROM restore_files WHERE restore = {}", id).c_str(), nullptr, nullptr,
                         nullptr), SQLITE_OK);
  sqlite3_stmt* insert = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "INSERT INTO restore_entries VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &insert, nullptr),
            SQLITE_OK);
  for (const auto& e : entries) {
    sqlite3_bind_int64(insert, 1, id);
    sqlite3_bind_blob(insert, 2, e.path.data(), static_cast<int>(e.path.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 3, static_cast<std::int64_t>(e.stamp.ino));
    sqlite3_bind_int64(insert, 4, static_cast<std::int64_t>(e.stamp.size));
    sqlite3_bind_int64(insert, 5, e.stamp.mtime_ns);
    sqlite3_bind_int64(insert, 6, e.stamp.ctime_ns);
    sqlite3_bind_int64(insert, 7, e.stamp.mode);
    sqlite3_bind_int64(insert, 8, static_cast<int>(e.placed));
    sqlite3_bind_blob(insert, 9, e.digest.data(), static_cast<int>(e.digest.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
    sqlite3_reset(insert);
  }
  sqlite3_finalize(insert);
  sqlite3_close(raw);

  auto status = store().status(env1(), {});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean());
  EXPECT_EQ(status->hashed, 0u) << "the rows' stats were read";
  {
    auto db = Database::open(db_path, false);
    ASSERT_TRUE(ok(db));
    auto files = db->tree_files_with(hash_bytes(DigestAlgorithm::sha256, k_content));
    ASSERT_TRUE(ok(files));
    EXPECT_EQ(files->size(), 2u) << "env1's row and env2's packed record";
  }
  write_file(env1() / "other.txt.new", "x");
  fs::rename(env1() / "other.txt.new", env1() / "other.txt");
  ASSERT_TRUE(ok(store().repair(env1(), {})));
  auto db = Database::open(db_path, false);
  ASSERT_TRUE(ok(db));
  auto after = db->restore_entries(id);
  ASSERT_TRUE(ok(after));
  EXPECT_EQ(after->size(), entries.size());
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, fmt::format("SELECT (SELECT count(*) FROM restore_entries), (SELECT count(*) FROM "
                                                "restore_files WHERE restore = {})", id).c_str(), -1, &count, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(count, 0), 0) << "repair rewrote the record packed";
  EXPECT_EQ(sqlite3_column_int64(count, 1), 1);
  sqlite3_finalize(count);
  sqlite3_close(raw);
  status = store().status(env1(), {});
  ASSERT_TRUE(ok(status));
  EXPECT_TRUE(status->clean());
}

// A damaged packed record is reported, never read as a tree with no files.
TEST_F(IntegrityTest, ADamagedRestoreRecordFailsLoudly) {
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open((store_dir() / "treesnap.db").c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "UPDATE restore_files SET entries = substr(entries, 1, length(entries) - 1)", nullptr,
                           nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  auto status = store().status(env1(), {});
  ASSERT_FALSE(ok(status));
  EXPECT_EQ(status.error().code, ErrorCode::corrupt);
}

class DamageTest : public IntegrityTest, public ::testing::WithParamInterface<std::tuple<Damage, Where>> {};

TEST_P(DamageTest, RepairHealsEveryNameAndKeepsTheLinkStructure) {
  const auto [kind, where] = GetParam();
  const auto before = inodes();
  damage(where == Where::store ? object() : env1() / "lib.so", kind);
  // Fast verify first when the damage is in the store (it quarantines); through a tree, repair
  // alone must find and fix it.
  if (where == Where::store) {
    auto fast = store().verify({.fast = true});
    ASSERT_TRUE(ok(fast));
    EXPECT_FALSE(fast->clean()) << "fast verify missed " << damage_name(kind);
  } else {
    auto status = store().status(env1(), {});
    ASSERT_TRUE(ok(status));
    EXPECT_FALSE(status->clean()) << "status missed " << damage_name(kind);
  }
  auto report = store().repair(env1(), {});
  ASSERT_TRUE(ok(report));
  EXPECT_TRUE(report->complete());
  expect_healed(before);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, DamageTest,
    ::testing::Combine(::testing::Values(Damage::truncate_to_zero, Damage::flip_byte, Damage::append, Damage::chmod,
                                         Damage::remove, Damage::replace_inode),
                       ::testing::Values(Where::linked_tree, Where::store)),
    [](const auto& info) {
      return damage_name(std::get<0>(info.param)) + (std::get<1>(info.param) == Where::store ? "InStore" : "ThroughTree");
    });

TEST_F(IntegrityTest, CopiedTreeIsRepairedFromTheStore) {
  RestoreOptions copy;
  copy.strategy = Strategy::copy;
  ASSERT_TRUE(ok(store().restore("env:v1", dir() / "copied", copy)));
  const auto ino = lstat_path(dir() / "copied/lib.so").st_ino;
  write_through(dir() / "copied/lib.so", "", false);
  auto report = store().repair(dir() / "copied", {});
  ASSERT_TRUE(ok(report));
  ASSERT_EQ(report->actions.size(), 1u);
  EXPECT_EQ(report->actions[0].action, "replaced");
  EXPECT_EQ(read_file(dir() / "copied/lib.so"), k_content);
  EXPECT_NE(lstat_path(dir() / "copied/lib.so").st_ino, ino) << "a file only this tree has is replaced atomically";
}

TEST_F(IntegrityTest, ADamagedManifestFailsLoudly) {
  auto snap = store().show("env:v1");
  ASSERT_TRUE(ok(snap));
  const auto manifest = object_path(store_dir(), snap->id);
  flip_byte(manifest, lstat_path(manifest).st_size / 2);
  auto verify = store().verify({.fast = true});
  ASSERT_TRUE(ok(verify));
  ASSERT_EQ(verify->bad.size(), 1u);
  EXPECT_EQ(verify->bad[0].paths, std::vector<std::string>{"env:v1:(manifest)"});
  EXPECT_FALSE(ok(store().restore("env:v1", dir() / "never", {})));
  EXPECT_FALSE(fs::exists(dir() / "never"));
  EXPECT_FALSE(ok(store().status(env1(), {})));
}

TEST_F(IntegrityTest, GcDropsFingerprintsReleasedQuarantineFilesAndRecordsOfVanishedTrees) {
  // Damage, quarantine, then an intact re-snapshot publishes the object anew: the damaged file
  // in quarantine has no row any more and gc removes it.
  write_through(object(), "garbage", false);
  ASSERT_TRUE(ok(store().verify({.fast = true})));
  ASSERT_EQ(list_dir(store_dir() / "quarantine").size(), 1u);
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "env:v2"})));
  EXPECT_EQ(read_file(object()), k_content) << "a snapshot of an intact copy publishes it anew";
  force_remove(env2());
  auto gc = store().gc({.grace_seconds = 0});
  ASSERT_TRUE(ok(gc));
  EXPECT_EQ(gc->quarantine_removed, 1u);
  EXPECT_EQ(gc->restore_records_removed, 1u);
  EXPECT_TRUE(list_dir(store_dir() / "quarantine").empty());
  // Removing every snapshot and collecting: no fingerprint outlives its object.
  ASSERT_TRUE(ok(store().remove("env:v1")));
  ASSERT_TRUE(ok(store().remove("env:v2")));
  ASSERT_TRUE(ok(store().gc({.grace_seconds = 0})));
  auto db = Database::open((store_dir() / "treesnap.db").string(), false);
  ASSERT_TRUE(ok(db));
  auto prints = db->fingerprints();
  ASSERT_TRUE(ok(prints));
  EXPECT_TRUE(prints->empty()) << prints->front().name;
}

}  // namespace
}  // namespace treesnap::test
