#include "restore/restorer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "core/entry_path.hpp"
#include "core/relocation.hpp"
#include "restore/ladder.hpp"
#include "restore/probe.hpp"
#include "util/failpoint.hpp"
#include "util/thread_pool.hpp"
#include "util/trace.hpp"

namespace treesnap {
namespace {

// Consecutive entries handed to one worker: siblings, so it works in one directory at a time.
constexpr std::size_t k_restore_batch = 32;

struct Target {
  UniqueFd parent_fd;
  std::string name;       // final name in the parent
  std::string temp_name;  // ".<name>.treesnap-<random>"
  bool replace_empty_dir = false;
};

Result<bool> is_empty_dir(int parent_fd, const std::string& name) {
  TRY(auto names, list_names(parent_fd, name));
  return names.empty();
}

Result<Target> prepare_target(const std::filesystem::path& target) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(target, ec).lexically_normal();
  if (ec) return std::unexpected(os_error(ec.value(), "resolve " + target.string()));
  if (!absolute.has_filename()) absolute = absolute.parent_path();
  Target t;
  t.name = absolute.filename().string();
  if (t.name.empty() || absolute == absolute.root_path())
    return std::unexpected(make_error(ErrorCode::invalid, "restore target must name a directory to create: " + target.string()));
  std::string parent = absolute.parent_path().string();
  TRY_VOID(mkdir_p(parent, 0755));
  TRY(t.parent_fd, open_at(AT_FDCWD, parent, O_RDONLY | O_DIRECTORY));
  struct stat st {};
  if (::fstatat(t.parent_fd.get(), t.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISDIR(st.st_mode))
      return std::unexpected(make_error(ErrorCode::exists, fmt::format("restore target {} exists and is not a directory", absolute.string())));
    TRY(auto empty, is_empty_dir(t.parent_fd.get(), t.name));
    if (!empty)
      return std::unexpected(make_error(ErrorCode::exists, fmt::format("restore target {} is not empty (restore --update changes a tree treesnap restored there)", absolute.string())));
    t.replace_empty_dir = true;
  } else if (errno != ENOENT) {
    return std::unexpected(os_error(errno, "stat " + absolute.string()));
  }
  t.temp_name = fmt::format(".{}.treesnap-{:08x}", t.name, std::random_device{}());
  TRY_VOID(mkdir_at(t.parent_fd.get(), t.temp_name, 0700));
  return t;
}

class Restorer {
 public:
  Restorer(const ObjectStore& store, const Manifest& manifest, const RestoreOptions& options, unsigned threads,
           const ProbeReport& probe, std::string relocate_to)
      : m_store(store), m_manifest(manifest), m_entries(manifest.entries), m_options(options), m_threads(threads),
        m_probe(probe), m_relocate_to(std::move(relocate_to)) {
    m_caps.is_root = ::geteuid() == 0;
    // The probe's answer stands for every file: a rung the pair cannot do is not tried per file.
    m_caps.link_errno = probe.link_errno;
    m_caps.reflink_errno = probe.reflink_errno;
    if (!m_relocate_to.empty())
      for (const auto& r : manifest.relocations) m_relocations.emplace(r.entry_index, &r);
  }

  // True when a rung failed for the whole pair although the probe said it works: the record is
  // stale (a remount, a changed mount option) and the caller probes again.
  bool probe_contradicted() const { return m_probe_contradicted.load(); }

  Result<void> run(int root_fd, dev_t target_dev) {
    m_root_fd = root_fd;
    struct stat store_st {};
    if (::fstat(m_store.root_fd(), &store_st) == 0 && store_st.st_dev != target_dev && m_caps.link_errno == 0)
      m_caps.link_errno = EXDEV;  // link(2) across file systems always fails so: don't try per file
    learn_creation_state();
    for (const Entry& e : m_entries) {
      if (e.type != EntryType::file || e.size == 0) continue;
      m_progress.files_total += 1;
      m_progress.bytes_total += e.size;
    }
    PhaseTimer timer("restore");
    TRY_VOID(create_entries());
    timer.phase("create-and-link");
    TRY_VOID(fill_contents());
    timer.phase("clone-and-copy");
    TRY_VOID(link_in_tree());
    TRY_VOID(finish_directories());
    timer.phase("links-and-directories");
    std::lock_guard lock(m_mutex);
    report_progress(true);
    return {};
  }

  RestoreSummary& summary() { return m_summary; }
  std::vector<PlacedFile>& placed() { return m_placed; }

 private:
  bool wants_link(const Entry& e) const {
    if (m_options.strategy == Strategy::hardlink) return true;
    // auto: only files nobody may write, so a shared inode cannot be changed through this tree.
    return m_options.strategy == Strategy::automatic && (e.mode & 0222) == 0;
  }

  // Files created in the temporary tree belong to the effective user and to its group, or to the
  // root's group when the root inherited a set-group-id bit; their mode is the one passed to
  // open() less the umask. A default ACL inherited from the target's parent would change that, so
  // then nothing is assumed and every file gets its chown and chmod.
  void learn_creation_state() {
    struct stat root_st {};
    auto mask = process_umask();
    if (!mask || ::fstat(m_root_fd, &root_st) != 0) return;
    if (::fgetxattr(m_root_fd, "system.posix_acl_default", nullptr, 0) >= 0) return;
    const gid_t gid = (root_st.st_mode & S_ISGID) != 0 ? root_st.st_gid : ::getegid();
    m_creation = FreshFile{::geteuid(), gid, *mask};
  }

  // The mode to create a file with, and what it then has (nullptr: unknown).
  static mode_t creation_mode(const Entry& e) { return e.mode & 0777; }
  std::optional<FreshFile> fresh(const Entry& e) const {
    if (!m_creation) return std::nullopt;
    return FreshFile{m_creation->uid, m_creation->gid, creation_mode(e) & ~m_creation->mode};
  }

  void record_fallback(const Entry& e, Strategy from, Strategy to, int err, const char* policy = "") {
    std::lock_guard lock(m_mutex);
    // Under auto, a rung the (store, target) pair cannot do at all (EXDEV, no FICLONE) is a fact
    // about the pair, reported once with the file that showed it, not once per file.
    const bool pair_wide = err == EXDEV || err == EOPNOTSUPP || err == ENOTTY ||
                           (err != 0 && err == (from == Strategy::reflink ? m_probe.reflink_errno : m_probe.link_errno));
    if (m_options.strategy == Strategy::automatic && pair_wide) {
      if (!m_pair_fallbacks_seen.insert({from, err}).second) return;
    }
    m_summary.fallback_count += 1;
    if (m_summary.fallbacks.size() < RestoreSummary::kMaxReportedFallbacks)
      m_summary.fallbacks.push_back({e.path, from, to, err, policy});
  }

  void place(std::size_t index, Strategy how, const FileStamp& stamp) {
    std::lock_guard lock(m_mutex);
    m_placed.push_back({index, how, {}, {}, stamp});
  }

  void count(StrategyCount& c, const Entry& e, bool shared) {
    std::lock_guard lock(m_mutex);
    c.files += 1;
    c.bytes += e.size;
    (shared ? m_summary.bytes_shared : m_summary.bytes_written) += e.size;
    m_progress.files_done += 1;
    m_progress.bytes_done += e.size;
    report_progress(false);
  }

  // Throttled to one call per k_progress_interval_ns; `final` always reports. Holds m_mutex.
  void report_progress(bool final) {
    if (!m_options.progress) return;
    constexpr std::int64_t k_progress_interval_ns = 100'000'000;
    const std::int64_t now = now_ns();
    if (!final && now - m_last_progress_ns < k_progress_interval_ns) return;
    m_last_progress_ns = now;
    m_options.progress(m_progress);
  }

  // Pass 1, one thread, manifest order: directories, special files, empty files and hardlinks to
  // the store. A stack of open directory fds follows the depth-first order, so every call is an
  // *at() call on the parent's fd.
  Result<void> create_entries() {
    std::vector<std::pair<std::string_view, UniqueFd>> stack;
    TRY(auto root_dup, open_dir(m_root_fd, "."));
    stack.emplace_back(std::string_view(), std::move(root_dup));
    for (std::size_t i = 1; i < m_entries.size(); ++i) {
      const Entry& e = m_entries[i];
      std::string_view parent = parent_path(e.path);
      // validate_manifest's depth-first order keeps the parent on the stack; the check keeps a
      // broken invariant from becoming undefined behaviour.
      while (stack.size() > 1 && stack.back().first != parent) stack.pop_back();
      if (stack.back().first != parent)
        return std::unexpected(make_error(ErrorCode::invalid, fmt::format("manifest entry {:?}: parent not restored before it", e.path)));
      const int dir_fd = stack.back().second.get();
      const std::string name(base_name(e.path));
      switch (e.type) {
        case EntryType::directory: {
          TRY_VOID(mkdir_at(dir_fd, name, 0700));
          TRY(auto child, open_dir(dir_fd, name));
          stack.emplace_back(std::string_view(e.path), std::move(child));
          break;
        }
        case EntryType::symlink:
          if (::symlinkat(e.link_target().c_str(), dir_fd, name.c_str()) != 0)
            return std::unexpected(os_error(errno, fmt::format("symlink {:?}", e.path)));
          TRY_VOID(apply_metadata_at(dir_fd, name, e, m_caps.is_root));
          break;
        case EntryType::fifo:
        case EntryType::char_device:
        case EntryType::block_device: {
          mode_t kind = e.type == EntryType::fifo ? S_IFIFO : e.type == EntryType::char_device ? S_IFCHR : S_IFBLK;
          if (::mknodat(dir_fd, name.c_str(), kind | 0600, static_cast<dev_t>(e.rdev())) != 0)
            return std::unexpected(os_error(errno, fmt::format("mknod {:?}", e.path)));
          TRY_VOID(apply_metadata_at(dir_fd, name, e, m_caps.is_root));
          break;
        }
        case EntryType::hardlink: m_in_tree_links.push_back(i); break;
        case EntryType::file: TRY_VOID(create_file(dir_fd, name, i)); break;
      }
    }
    return {};
  }

  Result<void> create_file(int dir_fd, const std::string& name, std::size_t index) {
    const Entry& e = m_entries[index];
    if (e.size == 0) {  // never shared: one empty inode for many names invites cross-talk
      TRY(auto fd, open_at(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, creation_mode(e)));
      auto created = fresh(e);
      TRY_VOID(apply_metadata_fd(fd.get(), e, m_caps.is_root, created ? &*created : nullptr));
      TRY(auto st, stat_fd(fd.get(), e.path));
      std::lock_guard lock(m_mutex);
      m_summary.empty_files += 1;
      m_placed.push_back({index, Strategy::automatic, {}, {}, stamp_of(st)});
      return {};
    }
    if (m_relocations.contains(index)) {
      // Rewritten bytes belong to this tree alone: never linked or cloned (fill_contents).
    } else if (m_options.strategy == Strategy::hardlink && (e.mode & 0222) != 0 && !m_options.hardlink_writable) {
      record_fallback(e, Strategy::hardlink, Strategy::reflink, 0, "writable file; --hardlink-writable would link it");
    } else if (wants_link(e)) {
      TRY(auto linked, rung_hardlink(m_store, e, dir_fd, name, m_options.strict_metadata, m_caps));
      if (linked.done) {
        count(m_summary.hardlinked, e, true);
        TRY(auto st, stat_at(dir_fd, name));  // one name from the parent's fd: cheaper than the record's path walk
        std::lock_guard lock(m_mutex);
        m_placed.push_back({index, Strategy::hardlink, std::move(linked.link_path), linked.link_before, stamp_of(st)});
        return {};
      }
      if (m_probe.link_errno == 0 && linked.sys_errno == EXDEV) m_probe_contradicted = true;
      record_fallback(e, Strategy::hardlink, Strategy::reflink, linked.sys_errno);
    }
    m_data_jobs.push_back(index);
    return {};
  }

  // Pass 2, in parallel: files whose bytes are cloned or copied.
  Result<void> fill_contents() {
    return parallel_for(m_data_jobs.size(), m_threads, k_restore_batch, [&](std::size_t i) -> Result<void> {
      const Entry& e = m_entries[m_data_jobs[i]];
      TRY(auto fd, open_beneath(m_root_fd, e.path, O_WRONLY | O_CREAT | O_EXCL, creation_mode(e)));
      Strategy how = Strategy::copy;  // a relocated file: status sees its rewritten bytes as changed
      if (auto r = m_relocations.find(m_data_jobs[i]); r != m_relocations.end()) {
        TRY_VOID(write_relocated(e, *r->second, fd.get()));
      } else {
        TRY(how, place_content(e, fd.get()));
      }
      auto created = fresh(e);
      TRY_VOID(apply_metadata_fd(fd.get(), e, m_caps.is_root, created ? &*created : nullptr));
      TRY(auto st, stat_fd(fd.get(), e.path));
      place(m_data_jobs[i], how, stamp_of(st));
      return {};
    });
  }

  // A relocated file: the object's bytes, verified, with the recorded path rewritten.
  Result<void> write_relocated(const Entry& e, const Relocation& relocation, int fd) {
    TRY(auto data, m_store.read_verified(e.digest));
    auto rewritten = relocate_bytes(data, relocation, m_manifest.relocation_root, m_relocate_to);
    if (!rewritten)
      return std::unexpected(make_error(rewritten.error().code, fmt::format("relocate {:?}: {}", e.path, rewritten.error().context)));
    TRY_VOID(write_full(fd, *rewritten, e.path));
    std::lock_guard lock(m_mutex);
    m_summary.relocated.files += 1;
    m_summary.relocated.bytes += rewritten->size();
    m_summary.copied.files += 1;
    m_summary.copied.bytes += rewritten->size();
    m_summary.bytes_written += rewritten->size();
    m_progress.files_done += 1;
    m_progress.bytes_done += e.size;
    report_progress(false);
    return {};
  }

  // The reflink rung (where the strategy and the pair allow it), else the copy rung.
  Result<Strategy> place_content(const Entry& e, int fd_number) {
    bool cloned = false;
    // A pair the probe says cannot clone is not tried under auto (copying is its plan there, not a
    // fallback: the probe report says why); a forced reflink steps down at once and reports every
    // file. A pair that fails although the probe said it works is reported once under auto.
    const bool auto_skips_clone = m_options.strategy == Strategy::automatic &&
                                  (m_probe.reflink_errno != 0 || auto_prefers_copy(m_probe.target_fs, e.size));
    const bool try_clone = m_options.strategy != Strategy::copy && !auto_skips_clone;
    int clone_errno = 0;
    if (try_clone) {
      TRY(auto outcome, rung_reflink(m_store, e, fd_number, m_caps));
      cloned = outcome.done;
      clone_errno = outcome.sys_errno;
      const bool pair_wide = clone_errno == EOPNOTSUPP || clone_errno == ENOTTY || clone_errno == EXDEV;
      if (!cloned && pair_wide && m_probe.reflink_errno == 0) m_probe_contradicted = true;
      if (!cloned && !m_options.no_copy_fallback) record_fallback(e, Strategy::reflink, Strategy::copy, clone_errno);
    }
    if (cloned) {
      count(m_summary.reflinked, e, true);
      return Strategy::reflink;
    }
    if (m_options.no_copy_fallback) {
      return std::unexpected(make_error(ErrorCode::unsupported,
                                        fmt::format("{:?} cannot be shared with the store ({}) and --no-copy-fallback forbids a copy",
                                                    e.path, clone_errno ? std::strerror(clone_errno) : "reflink unavailable here")));
    }
    TRY_VOID(rung_copy(m_store, e, fd_number));
    count(m_summary.copied, e, false);
    return Strategy::copy;
  }

  // Pass 3: other names of in-tree hardlinks, now that every first name exists.
  Result<void> link_in_tree() {
    for (std::size_t i : m_in_tree_links) {
      const Entry& e = m_entries[i];
      const Entry& primary = m_entries[e.link_index];
      if (::linkat(m_root_fd, primary.path.c_str(), m_root_fd, e.path.c_str(), 0) != 0)
        return std::unexpected(os_error(errno, fmt::format("link {:?} to {:?}", e.path, primary.path)));
    }
    if (m_in_tree_links.empty()) return {};
    // Those links moved their inodes' ctime: stat the first names again.
    std::set<std::size_t> primaries;
    for (std::size_t i : m_in_tree_links) primaries.insert(m_entries[i].link_index);
    for (auto& placed : m_placed) {
      if (!primaries.contains(placed.index)) continue;
      TRY(auto st, stat_at(m_root_fd, m_entries[placed.index].path));
      placed.stamp = stamp_of(st);
    }
    return {};
  }

  // Pass 4: directory metadata, children before parents, so adding entries cannot bump an mtime
  // already set and a read-only directory is filled before it becomes read-only.
  Result<void> finish_directories() {
    for (std::size_t i = m_entries.size(); i-- > 0;) {
      const Entry& e = m_entries[i];
      if (e.type != EntryType::directory) continue;
      if (i == 0) {
        TRY_VOID(apply_metadata_fd(m_root_fd, e, m_caps.is_root));
        continue;
      }
      TRY(auto fd, open_beneath(m_root_fd, e.path, O_RDONLY | O_DIRECTORY));
      TRY_VOID(apply_metadata_fd(fd.get(), e, m_caps.is_root));
    }
    return {};
  }

  const ObjectStore& m_store;
  const Manifest& m_manifest;
  const EntryList& m_entries;
  const RestoreOptions& m_options;
  unsigned m_threads;
  int m_root_fd = -1;
  PairCapabilities m_caps;
  ProbeReport m_probe;
  std::string m_relocate_to;  // empty: no relocation
  std::unordered_map<std::size_t, const Relocation*> m_relocations;  // by entry index, --relocate only
  std::atomic<bool> m_probe_contradicted{false};
  std::optional<FreshFile> m_creation;  // owner of new files; `mode` holds the umask
  std::vector<std::size_t> m_data_jobs;
  std::vector<std::size_t> m_in_tree_links;
  std::set<std::pair<Strategy, int>> m_pair_fallbacks_seen;
  RestoreProgress m_progress;
  std::int64_t m_last_progress_ns = 0;
  std::mutex m_mutex;  // guards m_summary, m_pair_fallbacks_seen and m_progress from the workers
  RestoreSummary m_summary;
  std::vector<PlacedFile> m_placed;
};

}  // namespace

Result<std::string> plan_relocation(const Manifest& manifest, const std::filesystem::path& target) {
  if (manifest.relocation_root.empty())
    return std::unexpected(make_error(ErrorCode::invalid,
                                      "--relocate needs a snapshot taken with `snapshot --relocatable`; this one records no paths to rewrite"));
  std::error_code ec;
  std::string to = std::filesystem::absolute(target, ec).lexically_normal().string();
  if (ec) return std::unexpected(os_error(ec.value(), "resolve " + target.string()));
  while (to.size() > 1 && to.back() == '/') to.pop_back();
  auto refused = unrelocatable(manifest.relocations, manifest.relocation_root, to);
  if (refused.empty()) return to;
  constexpr std::size_t k_listed = 20;
  std::string list;
  for (std::size_t i = 0; i < refused.size() && i < k_listed; ++i)
    list += fmt::format("\n  {}", manifest.entries[refused[i]].path);
  if (refused.size() > k_listed) list += fmt::format("\n  … and {} more", refused.size() - k_listed);
  return std::unexpected(make_error(
      ErrorCode::invalid,
      fmt::format("cannot relocate {} to {}: the new path is {} bytes longer, and {} binary file{} hold{} the old path, "
                  "which can only be replaced by one at most as long (nothing was written):{}",
                  manifest.relocation_root, to, to.size() - manifest.relocation_root.size(), refused.size(),
                  refused.size() == 1 ? "" : "s", refused.size() == 1 ? "s" : "", list)));
}

Result<RestoreOutcome> restore_tree(const ObjectStore& store, Database& db, const Manifest& manifest,
                                    const std::filesystem::path& target,
                                    const RestoreOptions& options, unsigned threads) {
  const std::int64_t start = now_ns();
  std::string relocate_to;
  if (options.relocate) {
    TRY(relocate_to, plan_relocation(manifest, target));
  }
  TRY(auto t, prepare_target(target));
  auto restored = [&]() -> Result<RestoreOutcome> {
    TRY(auto root, open_dir(t.parent_fd.get(), t.temp_name));
    TRY(auto root_st, stat_fd(root.get(), t.temp_name));
    TRY(auto probe, pair_probe(db, store, root.get(), ProbeMode::recorded));
    Restorer restorer(store, manifest, options, threads, probe, relocate_to);
    TRY_VOID(restorer.run(root.get(), root_st.st_dev));
    if (restorer.probe_contradicted()) {
      TRY(probe, pair_probe(db, store, root.get(), ProbeMode::fresh));
      probe.reprobed = true;
    }
    restorer.summary().probe = probe;
    if (!relocate_to.empty()) {
      restorer.summary().relocated_from = manifest.relocation_root;
      restorer.summary().relocated_to = relocate_to;
    }
    // Into place in one step: an empty directory is replaced, anything else that appeared in the
    // meantime makes the rename fail rather than be overwritten.
    unsigned flags = t.replace_empty_dir ? 0 : RENAME_NOREPLACE;
    if (int err = failpoint::error("restore.rename"))
      return std::unexpected(os_error(err, "move restored tree into place at " + target.string()));
    if (::renameat2(t.parent_fd.get(), t.temp_name.c_str(), t.parent_fd.get(), t.name.c_str(), flags) != 0)
      return std::unexpected(os_error(errno, "move restored tree into place at " + target.string()));
    if (int err = failpoint::error("restore.after_rename"))
      return std::unexpected(os_error(err, "record restore of " + target.string()));
    RestoreOutcome outcome;
    outcome.summary = std::move(restorer.summary());
    outcome.files = std::move(restorer.placed());
    return outcome;
  }();
  if (!restored) {
    (void)remove_tree(t.parent_fd.get(), t.temp_name);
    return restored;
  }
  restored->summary.target = std::filesystem::absolute(target).lexically_normal();
  restored->summary.entries = manifest.entries.size();
  restored->summary.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return restored;
}

}  // namespace treesnap
