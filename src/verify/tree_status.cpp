#include "verify/tree_status.hpp"

#include <climits>
#include <cstdlib>
#include <mutex>
#include <unordered_set>

#include <fmt/format.h>

#include "core/entry_path.hpp"
#include "util/thread_pool.hpp"
#include "util/parent_dir_cache.hpp"
#include "verify/verifier.hpp"

namespace treesnap {
namespace {

struct HashJob {
  std::size_t index;
  std::string why;  // the stat difference that made it a suspect ("" under --verify)
};

void add(std::vector<Finding>& out, std::size_t index, const std::string& path, ChangeKind kind, std::string detail) {
  out.push_back({TreeChange{path, kind, std::move(detail)}, index});
}

const char* type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR: return "directory";
    case S_IFREG: return "file";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFCHR: return "char device";
    case S_IFBLK: return "block device";
    default: return "other";
  }
}

// Paths on disk that the manifest does not have; an added directory is reported once.
Result<void> find_added(int dir_fd, const std::string& prefix, const std::unordered_set<std::string_view>& known,
                        std::vector<Finding>& out) {
  TRY(auto names, list_names(dir_fd, "."));
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string rel = prefix.empty() ? n : prefix + "/" + n;
    auto st = stat_at(dir_fd, n);
    if (!st) continue;  // vanished meanwhile
    if (!known.contains(rel)) {
      add(out, k_not_in_manifest, rel, ChangeKind::added, type_name(st->st_mode));
      continue;
    }
    if (!S_ISDIR(st->st_mode)) continue;
    auto child = open_dir(dir_fd, n);
    if (child) TRY_VOID(find_added(child->get(), rel, known, out));
  }
  return {};
}

}  // namespace

mode_t expected_type(EntryType type) noexcept {
  switch (type) {
    case EntryType::directory: return S_IFDIR;
    case EntryType::symlink: return S_IFLNK;
    case EntryType::fifo: return S_IFIFO;
    case EntryType::char_device: return S_IFCHR;
    case EntryType::block_device: return S_IFBLK;
    case EntryType::file:
    case EntryType::hardlink: return S_IFREG;
  }
  return S_IFREG;
}

Result<std::string> canonical_target(const std::filesystem::path& target) {
  char buffer[PATH_MAX];
  if (::realpath(target.c_str(), buffer) != nullptr) return std::string(buffer);
  std::error_code ec;
  auto absolute = std::filesystem::absolute(target, ec).lexically_normal();
  if (ec) return std::unexpected(os_error(ec.value(), "resolve " + target.string()));
  std::string s = absolute.string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

Result<TreeScan> scan_restored_tree(const ObjectStore& store, Database& db, const std::filesystem::path& target,
                                    bool hash_all, unsigned threads, AddedPaths added) {
  TreeScan scan;
  TRY(scan.target, canonical_target(target));
  TRY(auto record, db.find_restore(scan.target));
  if (!record)
    return std::unexpected(make_error(ErrorCode::not_found,
                                      fmt::format("no restore into {} is recorded in this store", scan.target)));
  scan.record = std::move(*record);
  TRY(scan.manifest, read_manifest(store, scan.record.manifest));
  TRY_VOID(validate_manifest(scan.manifest));
  TRY(auto entries, db.restore_entries(scan.record.id));
  for (auto& e : entries) scan.recorded.emplace(e.path, std::move(e));
  TRY(scan.root, open_at(AT_FDCWD, scan.target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));

  const auto& list = scan.manifest.entries;
  const bool is_root = ::geteuid() == 0;
  std::vector<std::uint64_t> inodes(list.size(), 0);
  std::vector<HashJob> to_hash;
  ParentDirCache parents(scan.root.get());
  auto& out = scan.findings;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Entry& e = list[i];
    struct stat st {};
    if (i == 0) {
      TRY(st, stat_fd(scan.root.get(), scan.target));
    } else {
      const int parent = parents.get(parent_path(e.path));
      if (parent < 0 || ::fstatat(parent, std::string(base_name(e.path)).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        add(out, i, e.path, ChangeKind::removed, {});
        continue;
      }
    }
    inodes[i] = static_cast<std::uint64_t>(st.st_ino);
    if ((st.st_mode & S_IFMT) != expected_type(e.type)) {
      add(out, i, e.path, ChangeKind::type, fmt::format("{}, expected {}", type_name(st.st_mode), type_name(expected_type(e.type))));
      continue;
    }
    if (e.type == EntryType::hardlink) {
      if (inodes[e.link_index] != inodes[i])
        add(out, i, e.path, ChangeKind::link, fmt::format("no longer the same file as {:?}", list[e.link_index].path));
      continue;
    }
    auto recorded = scan.recorded.find(e.path);
    const RestoreEntryRecord* rec = recorded == scan.recorded.end() ? nullptr : &recorded->second;
    std::vector<std::string> meta;
    if ((st.st_mode & 07777) != e.mode && e.type != EntryType::symlink)
      meta.push_back(fmt::format("mode {:04o}, expected {:04o}", st.st_mode & 07777, e.mode));
    if (is_root && (st.st_uid != e.uid || st.st_gid != e.gid))
      meta.push_back(fmt::format("owner {}:{}, expected {}:{}", st.st_uid, st.st_gid, e.uid, e.gid));
    // A linked file shows its inode's mtime (docs/format.md, "mtime rule"): the recorded one. A
    // directory's is the manifest's: the restore (and an update) sets it last, children before
    // parents, so entries added, removed or renamed in it since show here.
    const std::int64_t mtime = rec ? rec->stamp.mtime_ns : e.mtime_ns;
    if ((e.type == EntryType::file || e.type == EntryType::directory) && to_ns(st.st_mtim) != mtime)
      meta.push_back("mtime");
    // xattrs only where the manifest has some: one read per such path, none elsewhere (so
    // xattrs added to a file that had none are not seen).
    if (!e.xattrs().empty() && e.type != EntryType::symlink) {
      auto now = read_xattrs_at(parents.get(parent_path(e.path)), std::string(base_name(e.path)));
      if (!now || *now != e.xattrs()) meta.push_back("xattrs");
    }
    if (e.type == EntryType::symlink) {
      std::string link(static_cast<std::size_t>(st.st_size) + 1, '\0');
      const int parent = parents.get(parent_path(e.path));
      ssize_t n = ::readlinkat(parent, std::string(base_name(e.path)).c_str(), link.data(), link.size());
      if (n < 0 || static_cast<std::size_t>(n) != e.link_target().size() || link.compare(0, static_cast<std::size_t>(n), e.link_target()) != 0)
        add(out, i, e.path, ChangeKind::content, "symlink target differs");
    }
    if (e.type == EntryType::file) {
      const FileStamp now = stamp_of(st);
      if (static_cast<std::uint64_t>(st.st_size) != e.size) {
        add(out, i, e.path, ChangeKind::content, fmt::format("size {}, expected {}", st.st_size, e.size));
      } else if (rec && rec->placed == PlacedBy::hardlink && now.ino != rec->stamp.ino) {
        to_hash.push_back({i, "replaced by another inode"});
      } else if (hash_all) {
        to_hash.push_back({i, ""});
      } else if (!rec || now != rec->stamp) {
        // A hardlinked inode's ctime moves whenever treesnap links it again; its store fingerprint
        // follows those links, so a stat equal to it is as good as the record's.
        bool vouched = false;
        if (rec && rec->placed == PlacedBy::hardlink && e.size > 0) {
          TRY(auto prints, db.fingerprints_of_inode(now.ino));
          for (const auto& p : prints) vouched = vouched || (p.stamp == now && p.digest == e.digest.view());
        }
        if (!vouched && e.size > 0) to_hash.push_back({i, "stat changed"});
      }
    }
    if (!meta.empty()) {
      std::string detail;
      for (const auto& m : meta) detail += (detail.empty() ? "" : ", ") + m;
      add(out, i, e.path, ChangeKind::metadata, detail);
    }
  }

  std::mutex mutex;
  TRY_VOID(parallel_for(to_hash.size(), threads, 8, [&](std::size_t k) -> Result<void> {
    const Entry& e = list[to_hash[k].index];
    std::string problem;
    auto fd = open_beneath(scan.root.get(), e.path, O_RDONLY | O_NOFOLLOW);
    if (!fd) {
      problem = "unreadable: " + fd.error().message();
    } else {
      auto digest = store.hash_fd(fd->get(), e.size, e.path);
      if (!digest) problem = "unreadable: " + digest.error().message();
      else if (*digest != e.digest.view()) problem = "content differs";
    }
    std::lock_guard lock(mutex);
    scan.hashed += 1;
    if (!problem.empty()) add(out, to_hash[k].index, e.path, ChangeKind::content, problem);
    else if (to_hash[k].why == "replaced by another inode")
      add(out, to_hash[k].index, e.path, ChangeKind::link, "intact content in a new inode, no longer linked to the store");
    return {};
  }));

  if (added == AddedPaths::find) {
    std::unordered_set<std::string_view> known;
    for (const auto& e : list) known.insert(e.path);
    TRY_VOID(find_added(scan.root.get(), "", known, out));
  }
  std::stable_sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) { return a.index < b.index; });
  return scan;
}

}  // namespace treesnap
