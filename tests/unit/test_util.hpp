// Shared helpers for the unit tests (STYLE 15): a fresh temporary directory per test, kept and
// printed when the test fails so the tree can be inspected, removed otherwise; small file helpers;
// and assertions that print the Error of a failed Result.
//
// File helpers throw std::system_error on failure: gtest reports an exception escaping a test body
// as a failure with its message, which keeps set-up code free of ASSERT_NO_FATAL_FAILURE noise.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "treesnap/entry.hpp"
#include "treesnap/result.hpp"

namespace treesnap::test {

namespace fs = std::filesystem;

// ASSERT_TRUE(ok(result)): on failure prints the error's message.
template <typename T>
::testing::AssertionResult ok(const Result<T>& result) {
  if (result) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "failed: " << result.error().message();
}

// EXPECT_TRUE(fails_with(result, ErrorCode::invalid)): on failure prints what happened instead.
template <typename T>
::testing::AssertionResult fails_with(const Result<T>& result, ErrorCode code) {
  if (result) return ::testing::AssertionFailure() << "succeeded; expected " << to_string(code);
  if (result.error().code != code)
    return ::testing::AssertionFailure() << "failed with \"" << result.error().message() << "\"; expected "
                                         << to_string(code);
  return ::testing::AssertionSuccess();
}

[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

inline struct stat lstat_path(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno("lstat " + path.string());
  return st;
}

inline bool exists_nofollow(const fs::path& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

inline std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Creates or truncates `path`, writes `content`, and sets `mode` (umask does not apply).
inline void write_file(const fs::path& path, std::string_view content, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno("open " + path.string());
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      ::close(fd);
      throw_errno("write " + path.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) throw_errno("chmod " + path.string());
  ::close(fd);
}

inline std::string read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw_errno("open " + path.string());
  std::string out;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      ::close(fd);
      throw_errno("read " + path.string());
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

inline void make_dir(const fs::path& path, mode_t mode = 0755) {
  if (::mkdir(path.c_str(), mode) != 0) throw_errno("mkdir " + path.string());
  if (::chmod(path.c_str(), mode) != 0) throw_errno("chmod " + path.string());
}

// Sets atime and mtime of `path` (not following a symlink) to `ns` since the epoch.
inline void set_mtime(const fs::path& path, std::int64_t ns) {
  struct timespec t {};
  t.tv_sec = ns / 1'000'000'000;
  t.tv_nsec = ns % 1'000'000'000;
  struct timespec times[2] = {t, t};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("utimensat " + path.string());
}

inline void set_xattr(const fs::path& path, const std::string& name, std::string_view value) {
  if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0)
    throw_errno("setxattr " + path.string() + " " + name);
}

// The xattrs of `path` whose names start with `prefix`, sorted by name.
inline std::vector<Xattr> list_xattrs(const fs::path& path, std::string_view prefix = "user.") {
  std::string names(65536, '\0');
  ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) throw_errno("listxattr " + path.string());
  std::vector<Xattr> out;
  for (std::size_t pos = 0; pos < static_cast<std::size_t>(n);) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (!name.starts_with(prefix)) continue;
    std::string value(65536, '\0');
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (v < 0) throw_errno("getxattr " + path.string() + " " + name);
    value.resize(static_cast<std::size_t>(v));
    out.push_back({name, value});
  }
  std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return out;
}

// Names in `dir`, sorted; "." and ".." left out.
inline std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// XORs the byte at `offset` with 0xff in place, as disk damage would: the file keeps its inode.
inline void flip_byte(const fs::path& path, std::uint64_t offset) {
  struct stat st = lstat_path(path);
  if (::chmod(path.c_str(), (st.st_mode & 07777) | S_IWUSR) != 0) throw_errno("chmod " + path.string());
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw_errno("open " + path.string());
  char b = 0;
  if (::pread(fd, &b, 1, static_cast<off_t>(offset)) != 1) throw_errno("pread " + path.string());
  b = static_cast<char>(b ^ 0xff);
  if (::pwrite(fd, &b, 1, static_cast<off_t>(offset)) != 1) throw_errno("pwrite " + path.string());
  ::close(fd);
  if (::chmod(path.c_str(), st.st_mode & 07777) != 0) throw_errno("chmod " + path.string());
}

// "objects/ab/<hex>" under `store`, spelled out here rather than taken from store/layout.hpp so
// that a change to the on-disk layout shows up as a failing test.
inline fs::path object_path(const fs::path& store, const std::string& hex) {
  return store / "objects" / hex.substr(0, 2) / hex;
}

// Makes every directory below `path` writable and searchable, then removes the tree: restored
// trees may hold read-only directories.
inline void force_remove(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(path, ec))) {
    ::chmod(path.c_str(), 0700);
    for (const auto& e : fs::directory_iterator(path, ec))
      if (fs::is_directory(fs::symlink_status(e.path(), ec))) force_remove(e.path());
  }
  fs::remove_all(path, ec);
}

// A fresh directory under $TMPDIR per test; kept (and its path printed) when the test failed.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "treesnap-unit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << "mkdtemp: " << std::strerror(errno);
    m_dir = templ;
  }

  void TearDown() override {
    if (m_dir.empty()) return;
    if (HasFailure()) {
      std::fprintf(stderr, "[  KEPT    ] test directory %s\n", m_dir.c_str());
      return;
    }
    force_remove(m_dir);
  }

  const fs::path& dir() const { return m_dir; }

 private:
  fs::path m_dir;
};

}  // namespace treesnap::test
