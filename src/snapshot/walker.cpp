#include "snapshot/walker.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "util/posix.hpp"

namespace treesnap {
namespace {

class Walker {
 public:
  explicit Walker(const WalkOptions& options) : m_options(options) {}

  Result<WalkResult> run(int root_fd) {
    TRY(auto st, stat_fd(root_fd, "source"));
    m_result.root_dev = st.st_dev;
    Entry root = make_entry("", st);
    root.type = EntryType::directory;
    TRY(auto root_xattrs, read_xattrs_fd(root_fd, "source"));
    root.set_xattrs(std::move(root_xattrs));
    m_result.entries.push_back(std::move(root));
    TRY_VOID(walk_dir(root_fd, ""));
    return std::move(m_result);
  }

 private:
  static Entry make_entry(std::string path, const struct stat& st) {
    Entry e;
    e.path = std::move(path);
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_ns = to_ns(st.st_mtim);
    return e;
  }

  // The *at() calls know only the base name; the user needs the path in the tree. A name that
  // vanished between readdir and its use was removed by someone else while we walked.
  static Error at_path(Error error, const std::string& path) {
    if (error.code == ErrorCode::not_found)
      return make_error(ErrorCode::io, fmt::format("{:?} disappeared during the snapshot", path));
    error.context = fmt::format("{:?}: {}", path, error.context);
    return error;
  }

  static Result<std::vector<std::string>> sorted_names(int dir_fd, const std::string& path) {
    auto names = list_names(dir_fd, ".");
    if (!names) return std::unexpected(at_path(names.error(), path));
    std::sort(names->begin(), names->end());  // bytewise: char_traits<char> compares as unsigned
    return names;
  }

  Result<void> walk_dir(int dir_fd, const std::string& dir_path) {
    TRY(auto names, sorted_names(dir_fd, dir_path.empty() ? "." : dir_path));
    for (const auto& name : names) {
      std::string path = join_path(dir_path, name);
      auto st = stat_at(dir_fd, name);
      if (!st) return std::unexpected(at_path(st.error(), path));
      TRY_VOID(add_entry(dir_fd, name, std::move(path), *st));
    }
    return {};
  }

  Result<void> add_entry(int dir_fd, const std::string& name, std::string path, const struct stat& st) {
    Entry e = make_entry(path, st);
    const std::size_t index = m_result.entries.size();
    bool descend = false;
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR:
        e.type = EntryType::directory;
        descend = m_options.cross_devices || st.st_dev == m_result.root_dev;
        break;
      case S_IFREG: {
        if (st.st_nlink > 1) {
          auto [it, inserted] = m_inodes.try_emplace({st.st_dev, st.st_ino}, index);
          if (!inserted) {
            e.type = EntryType::hardlink;
            e.link_index = it->second;
            break;
          }
        }
        e.type = EntryType::file;
        e.size = static_cast<std::uint64_t>(st.st_size);
        if (e.size > 0) {
          m_result.files.push_back({index, st.st_dev, st.st_ino, to_ns(st.st_ctim),
                                    static_cast<std::uint64_t>(st.st_blocks) * 512 < e.size, 0, std::nullopt});
        }
        break;
      }
      case S_IFLNK: {
        std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
        ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (n < 0) return std::unexpected(at_path(os_error(errno, "readlink"), path));
        target.resize(static_cast<std::size_t>(n));
        e.type = EntryType::symlink;
        e.set_link_target(std::move(target));
        break;
      }
      case S_IFIFO: e.type = EntryType::fifo; break;
      case S_IFCHR:
      case S_IFBLK:
        e.type = S_ISCHR(st.st_mode) ? EntryType::char_device : EntryType::block_device;
        e.set_rdev(st.st_rdev);
        break;
      default:  // sockets belong to a running process; like tar, they are not archived
        ++m_result.skipped_sockets;
        return {};
    }
    if (e.type != EntryType::hardlink) {
      auto xattrs = read_xattrs_at(dir_fd, name);
      if (!xattrs) return std::unexpected(at_path(xattrs.error(), path));
      e.set_xattrs(std::move(*xattrs));
    }
    m_result.entries.push_back(std::move(e));
    if (descend) {
      auto child = open_dir(dir_fd, name);
      if (!child) return std::unexpected(at_path(child.error(), path));
      TRY_VOID(walk_dir(child->get(), path));
    }
    return {};
  }

  WalkOptions m_options;
  WalkResult m_result;
  std::map<std::pair<dev_t, ino_t>, std::size_t> m_inodes;  // first name of each multi-link file
};

}  // namespace

Result<WalkResult> walk_tree(int root_fd, const WalkOptions& options) {
  return Walker(options).run(root_fd);
}

}  // namespace treesnap
