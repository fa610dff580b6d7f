#include "restore/updater.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <unordered_map>
#include <unordered_set>

#include "core/entry_path.hpp"
#include "restore/ladder.hpp"
#include "restore/record.hpp"
#include "util/parent_dir_cache.hpp"
#include "util/trace.hpp"
#include "verify/tree_status.hpp"

namespace treesnap {
namespace {

// What the update does with one entry of the new snapshot.
enum class Action : std::uint8_t {
  keep,      // what is there equals the entry: untouched
  place,     // restored into the staging tree, then renamed over its path
  link,      // an in-tree hardlink whose first name is kept: linked beside it, renamed over
  mkdir,     // a directory that is not there yet
  conflict,  // left alone and reported
};

// The sibling the entries to place are restored into, each then renamed over its path: the same
// file system as the target, so every rename is atomic and the ladder sees the target's pair.
std::string staging_name(const std::string& target_name) { return "." + target_name + ".treesnap-update"; }
// Beside an in-tree hardlink's path while it is made, then renamed over it.
constexpr std::string_view k_link_temp_suffix = ".treesnap-link";

// Test-only failpoint (updater.hpp): the number of changes after which the process kills itself.
long abort_after_changes() {
  const char* env = std::getenv("TREESNAP_TEST_ABORT_AFTER_ENTRIES");
  return env && *env ? std::strtol(env, nullptr, 10) : -1;
}

bool same_metadata(const Entry& a, const Entry& b) {
  return a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.xattrs() == b.xattrs();
}

class Updater {
 public:
  Updater(const ObjectStore& store, Database& db, const Manifest& manifest, const RestoreOptions& options,
          unsigned threads)
      : m_store(store),
        m_db(db),
        m_new(manifest.entries),
        m_manifest(manifest),
        m_options(options),
        m_threads(threads),
        m_is_root(::geteuid() == 0),
        m_abort_after(abort_after_changes()) {}

  Result<RestoreOutcome> run(const std::filesystem::path& target) {
    PhaseTimer timer("update");
    TRY_VOID(load_record(target));
    timer.phase("status");
    TRY_VOID(classify());
    timer.phase("classify");
    TRY_VOID(remove_old());
    timer.phase("remove");
    TRY(auto outcome, place());
    timer.phase("place");
    TRY_VOID(finish_directories());
    timer.phase("directories");
    TRY_VOID(prepare_record(outcome));
    TRY_VOID(stamp_files(outcome));
    timer.phase("stamps");
    for (auto& c : m_conflicts) {
      m_report.conflicts += 1;
      if (m_report.conflict_list.size() < UpdateReport::kMaxListed) m_report.conflict_list.push_back(std::move(c));
    }
    m_report.performed = true;
    outcome.summary.update = std::move(m_report);
    return outcome;
  }

 private:
  // The tree's record and what changed since (status's scan), or with --force and no record an
  // empty old snapshot: everything in the tree is then something treesnap did not create.
  Result<void> load_record(const std::filesystem::path& target) {
    // Paths the old snapshot lacks are looked at only where the new one has an entry (classify).
    auto scan = scan_restored_tree(m_store, m_db, target, false, m_threads, AddedPaths::skip);
    if (!scan) {
      if (scan.error().code != ErrorCode::not_found || !m_options.force)
        return std::unexpected(make_error(scan.error().code, scan.error().context +
                                                                 "; restore --update changes only a tree treesnap "
                                                                 "restored (--force: treat every file in it as "
                                                                 "one treesnap did not create)"));
      TRY(m_target, canonical_target(target));
      TRY(m_root, open_at(AT_FDCWD, m_target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      return {};
    }
    m_record_id = scan->record.id;
    m_target = std::move(scan->target);
    m_root = std::move(scan->root);
    m_old = std::move(scan->manifest.entries);
    m_recorded = std::move(scan->recorded);
    for (std::size_t j = 0; j < m_old.size(); ++j) m_old_index.emplace(m_old[j].path, j);
    for (auto& f : scan->findings) {
      if (f.index == k_not_in_manifest || m_changed.contains(f.index)) continue;
      m_changed.emplace(f.index,
                        Changed{f.change.kind, fmt::format("changed since restored ({}{}{})", to_string(f.change.kind),
                                                           f.change.detail.empty() ? "" : ": ", f.change.detail)});
    }
    // An interrupted update may have replaced the first name of an in-tree hardlink but not yet
    // relinked the others: status sees them as separate files. One holding its first name's old
    // content is still the file treesnap restored.
    for (auto it = m_changed.begin(); it != m_changed.end();) {
      const Entry& o = m_old[it->first];
      bool intact = false;
      if (o.type == EntryType::hardlink && it->second.kind == ChangeKind::link) {
        TRY(intact, holds_content(m_root.get(), o.path, m_old[o.link_index]));
      }
      it = intact ? m_changed.erase(it) : std::next(it);
    }
    return {};
  }

  // True when the regular file at `path` has `entry`'s size and content.
  Result<bool> holds_content(int root_fd, const std::string& path, const Entry& entry) const {
    auto fd = open_beneath(root_fd, path, O_RDONLY | O_NOFOLLOW);
    if (!fd) return false;
    TRY(auto st, stat_fd(fd->get(), path));
    if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != entry.size) return false;
    if (entry.size == 0) return true;
    auto digest = m_store.hash_fd(fd->get(), entry.size, path);
    return digest && *digest == entry.digest.view();
  }

  void conflict(std::size_t i, std::string reason) {
    m_action[i] = Action::conflict;
    m_conflicts.push_back({m_new[i].path, std::move(reason)});
  }

  // Pass 1: what to do with each entry of the new snapshot. Nothing is written.
  Result<void> classify() {
    m_action.assign(m_new.size(), Action::keep);
    m_existed.assign(m_new.size(), false);
    std::unordered_set<std::string_view> blocked;  // directories in conflict: nothing goes below
    ParentDirCache dirs(m_root.get());
    for (std::size_t i = 1; i < m_new.size(); ++i) {
      const Entry& e = m_new[i];
      m_new_index.emplace(e.path, i);
      const std::string_view parent = parent_path(e.path);
      if (blocked.contains(parent)) {
        conflict(i, "its directory is in conflict");
        if (e.type == EntryType::directory) blocked.insert(e.path);
        continue;
      }
      const int parent_fd = dirs.get(parent);
      const std::string name(base_name(e.path));
      struct stat st {};
      if (parent_fd < 0 || ::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        m_action[i] = e.type == EntryType::directory ? Action::mkdir : initial_action(i);
        continue;
      }
      m_existed[i] = true;
      auto old = m_old_index.find(e.path);
      const bool ours = old != m_old_index.end() && !m_changed.contains(old->second);
      const bool replaceable = ours || m_options.force;
      const std::string why = old == m_old_index.end() ? "not created by treesnap"
                              : ours                   ? ""
                                                       : m_changed.at(old->second).why;
      const bool disk_is_dir = S_ISDIR(st.st_mode);
      if (disk_is_dir != (e.type == EntryType::directory)) {
        // A directory where the snapshot has a file, or the reverse: cleared first (remove_old).
        if (!replaceable) {
          conflict(i, why);
          if (e.type == EntryType::directory) blocked.insert(e.path);
          continue;
        }
        m_clear.push_back({e.path, disk_is_dir, i});
        m_action[i] = e.type == EntryType::directory ? Action::mkdir : initial_action(i);
        continue;
      }
      if (e.type == EntryType::directory) continue;  // kept; its metadata is set at the end
      if (e.type == EntryType::hardlink) {
        TRY_VOID(classify_link(i, st, replaceable, why));
        continue;
      }
      bool equal = false;
      if (ours) {
        equal = same_as_restored(m_old[old->second], e, st);
      } else {
        TRY(equal, disk_equals(parent_fd, name, st, e));
      }
      if (equal)
        m_action[i] = Action::keep;
      else if (replaceable)
        m_action[i] = Action::place;
      else
        conflict(i, why);
    }
    return {};
  }

  // An entry with nothing at its path: placed, or for an in-tree hardlink whose first name is
  // kept, linked to it.
  Action initial_action(std::size_t i) const {
    const Entry& e = m_new[i];
    if (e.type != EntryType::hardlink) return Action::place;
    const Action primary = m_action[e.link_index];
    return primary == Action::keep ? Action::link : primary == Action::conflict ? Action::conflict : Action::place;
  }

  // Another name of an earlier file: right when it is that file's inode and the file is kept.
  Result<void> classify_link(std::size_t i, const struct stat& st, bool replaceable, const std::string& why) {
    const Entry& e = m_new[i];
    const Action primary = m_action[e.link_index];
    if (primary == Action::conflict) {
      conflict(i, "its first name is in conflict");
      return {};
    }
    if (primary == Action::keep) {
      auto first = open_beneath(m_root.get(), m_new[e.link_index].path, O_RDONLY | O_NOFOLLOW);
      if (first) {
        TRY(auto first_st, stat_fd(first->get(), m_new[e.link_index].path));
        if (first_st.st_ino == st.st_ino && first_st.st_dev == st.st_dev) return {};  // keep
      }
    }
    if (!replaceable)
      conflict(i, why);
    else
      m_action[i] = primary == Action::keep ? Action::link : Action::place;
    return {};
  }

  // An entry treesnap restored and nobody changed since (`old`, as on disk) against the new one.
  bool same_as_restored(const Entry& old, const Entry& e, const struct stat& st) const {
    if (!same_metadata(old, e)) return false;
    switch (e.type) {
      case EntryType::file: {
        if (old.digest != e.digest || old.size != e.size) return false;
        if (old.mtime_ns == e.mtime_ns) return true;
        // A linked file shows its inode's mtime (docs/format.md, "mtime rule"), and a new restore
        // would link the same variant: keep it unless exact mtimes were asked for.
        auto row = m_recorded.find(e.path);
        return !m_options.strict_metadata && row != m_recorded.end() && row->second.placed == PlacedBy::hardlink &&
               row->second.stamp.ino == static_cast<std::uint64_t>(st.st_ino);
      }
      case EntryType::symlink:
        return old.link_target() == e.link_target() && old.mtime_ns == e.mtime_ns;
      case EntryType::char_device:
      case EntryType::block_device:
        return old.rdev() == e.rdev() && old.mtime_ns == e.mtime_ns;
      case EntryType::fifo:
        return old.mtime_ns == e.mtime_ns;
      case EntryType::directory:
      case EntryType::hardlink:
        return true;
    }
    return false;
  }

  // Something treesnap did not restore, or changed since, that may already equal the new entry:
  // the user made it so, or an interrupted update placed it. Type, mode, owner (as root), size,
  // mtime and content; xattrs are not read. A file whose inode has other names may show another
  // mtime (the mtime rule), as a fresh restore's linked file would.
  Result<bool> disk_equals(int parent_fd, const std::string& name, const struct stat& st, const Entry& e) const {
    if ((st.st_mode & S_IFMT) != expected_type(e.type)) return false;
    if (e.type != EntryType::symlink && (st.st_mode & 07777) != e.mode) return false;
    if (m_is_root && (st.st_uid != e.uid || st.st_gid != e.gid)) return false;
    const bool mtime_equal = to_ns(st.st_mtim) == e.mtime_ns;
    switch (e.type) {
      case EntryType::symlink: {
        std::string link(e.link_target().size() + 1, '\0');
        ssize_t n = ::readlinkat(parent_fd, name.c_str(), link.data(), link.size());
        return mtime_equal && n >= 0 && static_cast<std::size_t>(n) == e.link_target().size() &&
               link.compare(0, static_cast<std::size_t>(n), e.link_target()) == 0;
      }
      case EntryType::char_device:
      case EntryType::block_device:
        return mtime_equal && static_cast<std::uint64_t>(st.st_rdev) == e.rdev();
      case EntryType::fifo:
        return mtime_equal;
      case EntryType::file: {
        if (static_cast<std::uint64_t>(st.st_size) != e.size) return false;
        if (!mtime_equal && !(st.st_nlink > 1 && !m_options.strict_metadata)) return false;
        if (e.size == 0) return true;
        TRY(auto fd, open_at(parent_fd, name, O_RDONLY | O_NOFOLLOW));
        TRY(auto digest, m_store.hash_fd(fd.get(), e.size, e.path));
        return digest == e.digest.view();
      }
      case EntryType::directory:
      case EntryType::hardlink:
        return false;
    }
    return false;
  }

  void changed() {
    if (m_abort_after >= 0 && ++m_changes >= m_abort_after) ::raise(SIGKILL);  // test failpoint
  }

  // A directory this update writes in: the owner may need write permission first (a read-only
  // directory of the snapshot); finish_directories sets its mode back.
  int writable(ParentDirCache& dirs, std::string_view parent) {
    const int fd = dirs.get(parent);
    struct stat st {};
    if (fd >= 0 && !m_is_root && ::fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700)
      (void)::fchmod(fd, (st.st_mode & 07777) | 0700);
    return fd;
  }

  struct Clear {
    std::string path;
    bool is_dir = false;
    std::size_t new_index = 0;  // 0: an old entry the snapshot no longer has
  };

  // Pass 2, children before parents: old entries the new snapshot lacks (unless changed since
  // restored, without --force), and whatever stands where an entry changes between directory and
  // not. A directory goes only once empty: files treesnap did not create keep it.
  Result<void> remove_old() {
    for (std::size_t j = m_old.size(); j-- > 1;) {
      const Entry& o = m_old[j];
      if (m_new_index.contains(o.path)) continue;
      auto st = stat_beneath(o.path);
      if (!st) continue;  // already gone
      if (o.type != EntryType::directory && m_changed.contains(j) && !m_options.force) {
        m_conflicts.push_back({o.path, m_changed.at(j).why + "; the snapshot no longer has it"});
        continue;
      }
      m_clear.push_back({o.path, S_ISDIR(st->st_mode), 0});
    }
    std::sort(m_clear.begin(), m_clear.end(), [](const Clear& a, const Clear& b) { return path_less(b.path, a.path); });
    ParentDirCache dirs(m_root.get());
    for (const auto& c : m_clear) {
      const int parent_fd = writable(dirs, parent_path(c.path));
      const std::string name(base_name(c.path));
      if (parent_fd < 0) continue;
      if (::unlinkat(parent_fd, name.c_str(), c.is_dir ? AT_REMOVEDIR : 0) != 0) {
        const int err = errno;
        if (c.is_dir && (err == ENOTEMPTY || err == EEXIST)) {
          if (c.new_index != 0) conflict(c.new_index, "a directory with files treesnap did not create stands there");
          continue;
        }
        if (err == ENOENT) continue;
        return std::unexpected(os_error(err, fmt::format("remove {:?} from {}", c.path, m_target)));
      }
      if (c.is_dir)
        m_report.directories_removed += 1;
      else if (c.new_index == 0) {
        m_report.removed += 1;
        if (m_report.removed_paths.size() < UpdateReport::kMaxListed) m_report.removed_paths.push_back(c.path);
      }
      changed();
    }
    return {};
  }

  std::optional<struct stat> stat_beneath(const std::string& path) const {
    auto parent = parent_path(path).empty()
                      ? open_dir(m_root.get(), ".")
                      : open_beneath(m_root.get(), std::string(parent_path(path)), O_RDONLY | O_DIRECTORY);
    struct stat st {};
    if (!parent || ::fstatat(parent->get(), std::string(base_name(path)).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return std::nullopt;
    return st;
  }

  // The entries to place and the directories above them, as a manifest of their own: restored
  // by the restorer (the same ladder, parallelism and figures) into the staging sibling.
  Manifest staging_manifest() {
    Manifest sub;
    sub.algorithm = m_manifest.algorithm;
    Entry root = m_new[0];
    root.mode = 0700;
    root.set_xattrs({});
    sub.entries.push_back(std::move(root));
    m_sub_to_new.assign(1, 0);
    std::vector<std::size_t> new_to_sub(m_new.size(), 0);
    for (std::size_t i = 1; i < m_new.size(); ++i) {
      if (m_action[i] != Action::place) continue;
      std::vector<std::size_t> missing;  // ancestors not yet in, deepest first
      for (std::string_view p = parent_path(m_new[i].path); !p.empty(); p = parent_path(p)) {
        const std::size_t d = m_new_index.at(std::string(p));
        if (new_to_sub[d] != 0) break;
        missing.push_back(d);
      }
      for (auto d = missing.rbegin(); d != missing.rend(); ++d) {
        Entry dir = m_new[*d];
        dir.mode = 0700;  // the staging copy only passes entries through; the real one is set later
        dir.set_xattrs({});
        new_to_sub[*d] = sub.entries.size();
        m_sub_to_new.push_back(*d);
        sub.entries.push_back(std::move(dir));
      }
      Entry e = m_new[i];
      if (e.type == EntryType::hardlink) e.link_index = new_to_sub[e.link_index];
      new_to_sub[i] = sub.entries.size();
      m_sub_to_new.push_back(i);
      sub.entries.push_back(std::move(e));
    }
    return sub;
  }

  // Pass 3: restore what to place beside the target, then in manifest order make the new
  // directories and rename each placed entry over its path; in-tree links to kept files last.
  Result<RestoreOutcome> place() {
    RestoreOutcome outcome;
    const std::filesystem::path target(m_target);
    TRY(auto parent, open_at(AT_FDCWD, target.parent_path().string(), O_RDONLY | O_DIRECTORY));
    const std::string staging = staging_name(target.filename().string());
    TRY_VOID(remove_leftovers(parent.get(), staging));
    Manifest sub = staging_manifest();
    UniqueFd staging_root;
    if (sub.entries.size() > 1) {
      RestoreOptions sub_options = m_options;
      sub_options.mode = RestoreMode::create;
      TRY(outcome, restore_tree(m_store, m_db, sub, target.parent_path() / staging, sub_options, m_threads));
      TRY(staging_root, open_dir(parent.get(), staging));
    }
    ParentDirCache from(staging_root.get());
    ParentDirCache to(m_root.get());
    for (std::size_t i = 1; i < m_new.size(); ++i) {
      const Entry& e = m_new[i];
      const std::string name(base_name(e.path));
      if (m_action[i] == Action::mkdir) {
        const int dir_fd = writable(to, parent_path(e.path));
        if (::mkdirat(dir_fd, name.c_str(), 0700) != 0 && errno != EEXIST)
          return std::unexpected(os_error(errno, fmt::format("mkdir {:?} in {}", e.path, m_target)));
        m_report.directories_added += 1;
        changed();
      } else if (m_action[i] == Action::place) {
        const int from_fd = from.get(parent_path(e.path));
        const int to_fd = writable(to, parent_path(e.path));
        if (::renameat(from_fd, name.c_str(), to_fd, name.c_str()) != 0)
          return std::unexpected(os_error(errno, fmt::format("move {:?} into {}", e.path, m_target)));
        count_placed(i);
        changed();
      }
    }
    for (std::size_t i = 1; i < m_new.size(); ++i) {
      if (m_action[i] != Action::link) continue;
      TRY_VOID(link_to_kept(to, i));
      count_placed(i);
      changed();
    }
    if (staging_root.valid()) {
      staging_root.reset();
      TRY_VOID(remove_tree(parent.get(), staging));
    }
    // The restorer's placed files are staging entries: map them to the new manifest.
    for (auto& f : outcome.files) f.index = m_sub_to_new[f.index];
    std::erase_if(outcome.files, [&](const PlacedFile& f) { return m_new[f.index].type != EntryType::file; });
    outcome.summary.target = m_target;
    outcome.summary.entries = m_new.size();
    return outcome;
  }

  // What an interrupted update left beside the target: its staging tree, and the restorer's
  // temporary tree for it (".<staging>.treesnap-<random>").
  Result<void> remove_leftovers(int parent_fd, const std::string& staging) {
    TRY(auto names, list_names(parent_fd, "."));
    const std::string temp_prefix = "." + staging + ".treesnap-";
    for (const auto& n : names)
      if (n == staging || n.starts_with(temp_prefix)) TRY_VOID(remove_tree(parent_fd, n));
    return {};
  }

  Result<void> link_to_kept(ParentDirCache& to, std::size_t i) {
    const Entry& e = m_new[i];
    const Entry& first = m_new[e.link_index];
    TRY(auto first_dir, parent_path(first.path).empty()
                            ? open_dir(m_root.get(), ".")
                            : open_beneath(m_root.get(), std::string(parent_path(first.path)), O_RDONLY | O_DIRECTORY));
    const int dir_fd = writable(to, parent_path(e.path));
    const std::string name(base_name(e.path));
    const std::string temp = "." + name + std::string(k_link_temp_suffix);
    (void)::unlinkat(dir_fd, temp.c_str(), 0);  // an interrupted update's
    if (::linkat(first_dir.get(), std::string(base_name(first.path)).c_str(), dir_fd, temp.c_str(), 0) != 0)
      return std::unexpected(os_error(errno, fmt::format("link {:?} to {:?}", e.path, first.path)));
    if (::renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0)
      return std::unexpected(os_error(errno, fmt::format("move link {:?} into place", e.path)));
    return {};
  }

  void count_placed(std::size_t i) {
    auto [count, paths] = m_existed[i] ? std::tie(m_report.updated, m_report.updated_paths)
                                       : std::tie(m_report.added, m_report.added_paths);
    count += 1;
    if (paths.size() < UpdateReport::kMaxListed) paths.push_back(m_new[i].path);
  }

  // Pass 4: every directory's metadata, children first (the renames moved their mtimes).
  Result<void> finish_directories() {
    for (std::size_t i = m_new.size(); i-- > 0;) {
      const Entry& e = m_new[i];
      if (e.type != EntryType::directory || m_action[i] == Action::conflict) continue;
      auto fd = i == 0 ? open_dir(m_root.get(), ".") : open_beneath(m_root.get(), e.path, O_RDONLY | O_DIRECTORY);
      if (!fd) continue;  // a non-empty directory of the old tree stood in the way: in conflict
      TRY_VOID(apply_metadata_fd(fd->get(), e, m_is_root));
    }
    return {};
  }

  // Fills in what record_restored_tree writes once the tree is done: the record amended when
  // there is one (a kept file treesnap restored and nobody changed keeps its row, as after a
  // restore; stat'ing and rewriting 46k rows of the Python stdlib for one changed file took
  // 0.5 s), else written anew from the kept and placed files.
  Result<void> prepare_record(RestoreOutcome& outcome) {
    std::unordered_set<std::string_view> rows_kept;
    for (std::size_t i = 1; i < m_new.size(); ++i) {
      if (m_action[i] != Action::keep || m_new[i].type == EntryType::directory) continue;
      m_report.kept += 1;
      if (m_new[i].type != EntryType::file) continue;
      auto row = m_recorded.find(m_new[i].path);
      auto old = m_old_index.find(m_new[i].path);
      if (m_record_id != 0 && row != m_recorded.end() && old != m_old_index.end() && !m_changed.contains(old->second)) {
        rows_kept.insert(row->first);
        outcome.totals[total_slot(row->second.placed)] += 1;
        continue;
      }
      outcome.files.push_back(kept_file(i));
    }
    if (m_record_id == 0) return {};
    outcome.amend_record = m_record_id;
    for (const auto& [path, row] : m_recorded)
      if (!rows_kept.contains(path)) outcome.drop.push_back(path);
    for (const auto& f : outcome.files) {
      outcome.totals[total_slot(placed_by(f.how))] += 1;
    }
    return {};
  }

  // The record's stat of each file it lists, taken now that every rename and link is done: the
  // restorer's own stamps (PlacedFile::stamp) were taken in the staging tree, and the rename into
  // the target moved their ctime. Only the files whose row is new or changes are listed, in
  // manifest order, so siblings share one parent fd.
  Result<void> stamp_files(RestoreOutcome& outcome) {
    std::sort(outcome.files.begin(), outcome.files.end(),
              [](const PlacedFile& a, const PlacedFile& b) { return a.index < b.index; });
    ParentDirCache dirs(m_root.get());
    for (auto& f : outcome.files) {
      const Entry& e = m_new[f.index];
      const int dir_fd = dirs.get(parent_path(e.path));
      if (dir_fd < 0) return std::unexpected(make_error(ErrorCode::not_found, fmt::format("stat restored {:?}", e.path)));
      TRY(auto st, stat_at(dir_fd, std::string(base_name(e.path))));
      f.stamp = stamp_of(st);
    }
    return {};
  }

  // RestoreOutcome::totals: hardlinked, reflinked, copied, empty.
  static std::size_t total_slot(PlacedBy by) {
    switch (by) {
      case PlacedBy::hardlink:
        return 0;
      case PlacedBy::reflink:
        return 1;
      case PlacedBy::copy:
        return 2;
      case PlacedBy::fresh:
        return 3;
    }
    return 2;
  }

  // A kept regular file for the record, placed as it was when treesnap restored it; one it did
  // not restore counts as a copy unless its inode is a store file of that content.
  PlacedFile kept_file(std::size_t i) {
    const Entry& e = m_new[i];
    PlacedFile f;
    f.index = i;
    f.how = Strategy::copy;
    auto row = m_recorded.find(e.path);
    auto old = m_old_index.find(e.path);
    if (row != m_recorded.end() && old != m_old_index.end() && !m_changed.contains(old->second)) {
      switch (row->second.placed) {
        case PlacedBy::hardlink:
          f.how = Strategy::hardlink;
          break;
        case PlacedBy::reflink:
          f.how = Strategy::reflink;
          break;
        case PlacedBy::copy:
          f.how = Strategy::copy;
          break;
        case PlacedBy::fresh:
          f.how = Strategy::automatic;
          break;
      }
    } else if (e.size == 0) {
      f.how = Strategy::automatic;
    } else if (auto st = stat_beneath(e.path); st && st->st_nlink > 1) {
      auto prints = m_db.fingerprints_of_inode(static_cast<std::uint64_t>(st->st_ino));
      if (prints)
        for (const auto& p : *prints)
          if (p.digest == e.digest.view()) f.how = Strategy::hardlink;
    }
    return f;
  }

  const ObjectStore& m_store;
  Database& m_db;
  const EntryList& m_new;
  const Manifest& m_manifest;
  const RestoreOptions& m_options;
  unsigned m_threads;
  bool m_is_root;
  long m_abort_after;
  long m_changes = 0;
  std::string m_target;
  std::int64_t m_record_id = 0;  // the tree's restore record; 0 under --force without one
  UniqueFd m_root;
  EntryList m_old;  // the recorded snapshot's entries; empty under --force without a record
  std::unordered_map<std::string, RestoreEntryRecord> m_recorded;
  std::unordered_map<std::string_view, std::size_t> m_old_index, m_new_index;
  struct Changed {
    ChangeKind kind;
    std::string why;
  };
  std::unordered_map<std::size_t, Changed> m_changed;  // old entries changed since restored
  std::vector<Action> m_action;                        // per new entry
  std::vector<bool> m_existed;                         // per new entry: something stood at its path
  std::vector<Clear> m_clear;
  std::vector<std::size_t> m_sub_to_new;
  std::vector<UpdateConflict> m_conflicts;
  UpdateReport m_report;
};

}  // namespace

Result<RestoreOutcome> update_tree(const ObjectStore& store, Database& db, const Manifest& manifest,
                                   const std::filesystem::path& target, const RestoreOptions& options,
                                   unsigned threads) {
  const std::int64_t start = now_ns();
  if (options.relocate) return std::unexpected(make_error(ErrorCode::invalid, "restore --update cannot --relocate"));
  struct stat st {};
  bool fresh = ::lstat(target.c_str(), &st) != 0;
  if (!fresh && S_ISDIR(st.st_mode)) {
    TRY(auto names, list_names(AT_FDCWD, target.string()));
    fresh = names.empty();
  }
  RestoreOutcome outcome;
  if (fresh) {  // nothing to update: a plain restore
    TRY(outcome, restore_tree(store, db, manifest, target, options, threads));
    for (std::size_t i = 1; i < manifest.entries.size(); ++i) {
      auto& report = outcome.summary.update;
      if (manifest.entries[i].type == EntryType::directory)
        report.directories_added += 1;
      else
        report.added += 1;
    }
    outcome.summary.update.performed = true;
    return outcome;
  }
  Updater updater(store, db, manifest, options, threads);
  TRY(outcome, updater.run(target));
  outcome.summary.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return outcome;
}

}  // namespace treesnap
