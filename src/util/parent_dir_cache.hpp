#pragma once

#include <string>
#include <string_view>

#include "util/posix.hpp"

namespace treesnap {

// One open parent directory at a time, beneath a root and without following symlinks: walks in
// manifest order visit siblings together, so one open per directory serves them all.
class ParentDirCache {
 public:
  explicit ParentDirCache(int root_fd) : m_root(root_fd) {}
  // The fd of `parent` (relative, "" for the root); -1 when it is gone or not a directory.
  int get(std::string_view parent) {
    if (m_valid && parent == m_path) return m_fd.get();
    m_path = parent;
    m_valid = true;
    auto fd = parent.empty() ? open_dir(m_root, ".") : open_beneath(m_root, m_path, O_RDONLY | O_DIRECTORY);
    m_fd = fd ? std::move(*fd) : UniqueFd();
    return m_fd.get();
  }
  // The next get() reopens (the directory was replaced or created meanwhile).
  void forget() { m_valid = false; }

 private:
  int m_root;
  std::string m_path;
  bool m_valid = false;
  UniqueFd m_fd;
};

}  // namespace treesnap
