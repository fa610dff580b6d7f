// The fixture of the public-API tests (store_test, restore_test): a source directory and a store
// in the test's temporary directory, and a scanner that captures what a restore must reproduce.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "test_util.hpp"
#include "treesnap/store.hpp"

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

// Inodes of the regular files under `store`/`sub` ("objects" or "variants").
inline std::set<ino_t> store_inodes(const fs::path& store, const char* sub) {
  std::set<ino_t> inodes;
  for (const auto& e : fs::recursive_directory_iterator(store / sub))
    if (e.is_regular_file()) inodes.insert(lstat_path(e.path()).st_ino);
  return inodes;
}

// The stat cache ignores files whose ctime is within 100 ms of the snapshot's start.
inline void wait_out_racy_window() { std::this_thread::sleep_for(std::chrono::milliseconds(250)); }

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
