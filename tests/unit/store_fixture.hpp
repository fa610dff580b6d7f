// The fixture of the public-API tests (store_test, restore_test, update_test): a source directory
// and a store in the test's temporary directory, and a scanner that captures what a restore must
// reproduce.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "test_util.hpp"
#include "treesnap/store.hpp"
#include "util/posix.hpp"

namespace treesnap::test {

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

  bool same_as(const Node& o) const {
    return mode == o.mode && uid == o.uid && gid == o.gid && mtime == o.mtime && data == o.data && xattrs == o.xattrs;
  }
};

inline std::ostream& operator<<(std::ostream& out, const Node& n) {
  out << "mode " << std::oct << n.mode << std::dec << " owner " << n.uid << ":" << n.gid << " mtime " << n.mtime
      << " data " << n.data.size() << " bytes, " << n.xattrs.size() << " xattrs";
  return out;
}

inline Node scan_one(const fs::path& path) {
  struct stat st = lstat_path(path);
  Node n{st.st_mode, st.st_uid, st.st_gid, mtime_ns(st), {}, {}, st.st_ino, st.st_nlink, st.st_blocks};
  if (S_ISREG(st.st_mode)) n.data = read_file(path);
  if (S_ISLNK(st.st_mode)) n.data = fs::read_symlink(path).string();
  if (!S_ISLNK(st.st_mode)) n.xattrs = list_xattrs(path);
  return n;
}

// Relative path ("" for the root) -> Node, for every path in the tree.
inline std::map<std::string, Node> scan(const fs::path& root) {
  std::map<std::string, Node> tree{{"", scan_one(root)}};
  for (const auto& e : fs::recursive_directory_iterator(root))
    tree[e.path().lexically_relative(root).string()] = scan_one(e.path());
  return tree;
}

// Whether expect_same_tree compares the root directory itself. An updated tree's root keeps the
// mtime of its first restore, which no fresh restore can match.
enum class RootCheck { compare, skip };

// Expects the tree at `got` to hold exactly the paths of the tree at `want`, each equal in
// everything a restore reproduces (Node::same_as). Returns the scan of `got` for more checks.
inline std::map<std::string, Node> expect_same_tree(const fs::path& want, const fs::path& got,
                                                    RootCheck root = RootCheck::compare) {
  const auto wanted = scan(want);
  auto found = scan(got);
  for (const auto& [rel, node] : wanted) {
    auto it = found.find(rel);
    if (it == found.end()) {
      ADD_FAILURE() << "missing " << rel;
    } else if (!rel.empty() || root == RootCheck::compare) {
      EXPECT_TRUE(it->second.same_as(node)) << '"' << rel << "\": got " << it->second << "; want " << node;
    }
  }
  for (const auto& [rel, node] : found) EXPECT_TRUE(wanted.contains(rel)) << "extra " << rel;
  return found;
}

// Inodes of the regular files under `store`/`sub` ("objects" or "variants").
inline std::set<ino_t> store_inodes(const fs::path& store, const char* sub) {
  std::set<ino_t> inodes;
  for (const auto& e : fs::recursive_directory_iterator(store / sub))
    if (e.is_regular_file()) inodes.insert(lstat_path(e.path()).st_ino);
  return inodes;
}

// The stat cache ignores files whose ctime is within 100 ms of the snapshot's start.
inline void wait_out_racy_window() { std::this_thread::sleep_for(std::chrono::milliseconds(250)); }

// Fills `root` with every entry type a restore handles without devices, with unusual metadata on
// each (the round-trip tests of restore and of push/pull).
inline void build_full_tree(const fs::path& root) {
  auto src = [&](const std::string& rel = "") { return rel.empty() ? root : root / rel; };
  constexpr std::int64_t k_t0 = 1'650'000'000'000'000'000;
  set_xattr(src(), "user.root", "top");
  make_dir(src("d"), 0750);
  make_dir(src("d/e"), 0700);
  write_file(src("d/a.txt"), "alpha\n");
  set_xattr(src("d/a.txt"), "user.color", "blue");
  set_xattr(src("d/a.txt"), "user.bin", std::string("\0\xff", 2));
  write_file(src("d-x"), "sorts after d/ but before d0");
  write_file(src("d0"), "zero");
  make_dir(src("rodir"), 0755);
  write_file(src("rodir/f"), "inside a read-only directory");
  ASSERT_EQ(::chmod(src("rodir").c_str(), 0555), 0);
  write_file(src("h1"), "shared by two names", 0640);
  ASSERT_EQ(::link(src("h1").c_str(), src("d/h2").c_str()), 0);
  fs::create_symlink("d/a.txt", src("link"));
  fs::create_symlink("/nonexistent/target", src("dangle"));
  write_file(src("empty1"), "", 0444);
  write_file(src("empty2"), "", 0444);
  write_file(src("exec"), "#!/bin/sh\n", 0755);
  write_file(src("ro"), "read only", 0444);
  write_file(src("\xff\xfe"), "a name that is not UTF-8", 0644);
  write_file(src("big"), std::string(3 << 20, 'b'));
  ASSERT_EQ(::mkfifo(src("pipe").c_str(), 0640), 0);
  ASSERT_EQ(::chmod(src("pipe").c_str(), 0640), 0);
  for (const char* owned : {"owned", "suid"}) {
    write_file(src(owned), owned, 0600);
    ASSERT_EQ(::chown(src(owned).c_str(), 1234, 5678), 0);
  }
  ASSERT_EQ(::chmod(src("suid").c_str(), 04755), 0);  // after chown, which clears set-id bits
  {
    write_file(src("sparse"), "");
    UniqueFd fd(::open(src("sparse").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(::ftruncate(fd.get(), 8 << 20), 0);
    ASSERT_EQ(::pwrite(fd.get(), "data", 4, 1 << 20), 4);
  }
  // Distinct nanosecond mtimes everywhere; utimensat does not touch the parent's mtime.
  std::int64_t t = k_t0;
  for (const auto& [rel, node] : scan(src())) set_mtime(src(rel), t += 1'000'000'123);
}

class StoreTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    m_src = dir() / "src";
    m_store_dir = dir() / "store";
    make_dir(m_src);
    auto opened = Store::open(m_store_dir, {});
    ASSERT_TRUE(ok(opened));
    m_store.emplace(std::move(*opened));
    // The automatic gc round after each snapshot and restore must not depend on how full the
    // disk running the tests is: 100% is never exceeded (gc_test covers the round itself).
    write_file(m_store_dir / "treesnap.toml", "[gc]\nhigh_watermark = 100\nlow_watermark = 99\n");
  }

  const Store& store() const { return *m_store; }
  const fs::path& store_dir() const { return m_store_dir; }
  fs::path src(const std::string& rel = "") const { return rel.empty() ? m_src : m_src / rel; }

 private:
  fs::path m_src, m_store_dir;
  std::optional<Store> m_store;
};

}  // namespace treesnap::test
