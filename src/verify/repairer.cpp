#include "verify/repairer.hpp"

#include <sys/stat.h>

#include <map>
#include <optional>
#include <random>
#include <set>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "core/entry_path.hpp"
#include "store/file_clone.hpp"
#include "store/layout.hpp"
#include "verify/tree_status.hpp"
#include "verify/verifier.hpp"

namespace treesnap {
namespace {

std::string temp_name(std::string_view base) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format(".{}.treesnap-repair-{:08x}", base.substr(0, 200), static_cast<std::uint32_t>(rng()));
}

// A file whose bytes were hashed and equal the digest wanted.
struct Source {
  std::string open_path;  // what to open (may go through /proc/self/fd)
  std::string label;      // what the report says
};

// A store file holding the inode a hardlinked entry was linked to.
struct StoreInode {
  int dir_fd;
  std::string name;
  std::string label;  // "objects/ab/<hex>", "variants/…", "quarantine/…"
};

class Repairer {
 public:
  Repairer(const ObjectStore& store, Database& db, const RepairOptions& options, TreeScan& scan, RepairReport& report)
      : m_store(store), m_db(db), m_options(options), m_scan(scan), m_report(report), m_is_root(::geteuid() == 0) {}

  Result<void> run() {
    TRY(auto quarantined, m_db.quarantined());
    for (auto& q : quarantined) m_quarantine.push_back(std::move(q));
    TRY(auto snapshot, find_snapshot_source());
    m_source_root = std::move(snapshot);
    // Content first (one finding per path decides), then metadata of what content did not touch.
    std::set<std::size_t> handled;
    for (const auto& f : m_scan.findings) {
      if (f.change.kind == ChangeKind::metadata || f.change.kind == ChangeKind::added) continue;
      if (!handled.insert(f.index).second) continue;
      TRY_VOID(repair_entry(f));
    }
    for (const auto& f : m_scan.findings) {
      if (f.change.kind == ChangeKind::metadata && !handled.contains(f.index)) TRY_VOID(fix_metadata(f));
      if (f.change.kind == ChangeKind::added) TRY_VOID(handle_added(f));
    }
    name_users_of_lost();
    if (!m_options.dry_run && !m_scan.findings.empty()) TRY_VOID(restore_directory_times());
    TRY_VOID(release_quarantine());
    if (m_options.dry_run) return {};
    TRY_VOID(refresh_fingerprints());
    return update_record();
  }

 private:
  const Entry& entry(std::size_t i) const { return m_scan.manifest.entries[i]; }
  const RestoreEntryRecord* recorded(const std::string& path) const {
    auto it = m_scan.recorded.find(path);
    return it == m_scan.recorded.end() ? nullptr : &it->second;
  }
  void act(std::string path, std::string action, std::string source = {}, std::string detail = {}) {
    m_report.actions.push_back({std::move(path), std::move(action), std::move(source), std::move(detail)});
  }

  Result<std::string> find_snapshot_source() {
    auto names = m_scan.record.snapshot;
    auto colon = names.rfind(':');
    if (colon == std::string::npos) return std::string();
    TRY(auto snap, m_db.find_snapshot(names.substr(0, colon), names.substr(colon + 1)));
    return snap ? snap->source : std::string();
  }

  Result<int> parent_fd(const std::string& path, UniqueFd& holder) {
    const auto parent = parent_path(path);
    auto fd = parent.empty() ? open_dir(m_scan.root.get(), ".") : open_beneath(m_scan.root.get(), std::string(parent), O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(fd.error());
    holder = std::move(*fd);
    return holder.get();
  }

  // Hashes `path` (opened without following a final symlink) and keeps it when it holds `digest`.
  bool holds(const std::string& open_path, const Entry& e, std::uint64_t exclude_ino) const {
    auto fd = open_at(AT_FDCWD, open_path, O_RDONLY | O_NOFOLLOW);
    if (!fd) return false;
    auto st = stat_fd(fd->get(), open_path);
    if (!st || !S_ISREG(st->st_mode) || static_cast<std::uint64_t>(st->st_size) != e.size) return false;
    if (exclude_ino && static_cast<std::uint64_t>(st->st_ino) == exclude_ino) return false;
    auto digest = m_store.hash_fd(fd->get(), e.size, open_path);
    return digest && *digest == e.digest.view();
  }

  bool is_quarantined(std::string_view digest) const {
    for (const auto& q : m_quarantine)
      if (q.object && q.digest == digest) return true;
    return false;
  }

  // The first intact copy of the entry's content, in the order of docs/integrity.md: the store's
  // object and variants, the snapshot's source tree, other restored trees, other stores.
  Result<std::optional<Source>> find_source(const Entry& e, std::uint64_t exclude_ino) {
    const std::string digest = e.digest.str();
    auto cached = m_sources.find(digest);
    if (cached != m_sources.end()) return cached->second;
    std::vector<Source> candidates;
    const std::string object = layout::object_name(digest);
    if (!is_quarantined(digest))
      candidates.push_back({fd_path(m_store.objects_fd(), object), layout::store_path(layout::k_objects, object)});
    auto shard = object.substr(0, 2);
    if (auto names = list_names(m_store.variants_fd(), shard)) {
      for (const auto& n : *names)
        if (n.starts_with(layout::variant_prefix(digest)))
          candidates.push_back({fd_path(m_store.variants_fd(), shard + "/" + n), layout::store_path(layout::k_variants, shard + "/" + n)});
    }
    if (!m_source_root.empty()) {
      for (const auto& other : m_scan.manifest.entries)
        if (other.type == EntryType::file && other.digest == e.digest)
          candidates.push_back({join_path(m_source_root, other.path), join_path(m_source_root, other.path)});
    }
    TRY(auto files, m_db.tree_files_with(digest));
    for (const auto& f : files) {
      if (f.target == m_scan.target) continue;
      std::string p = join_path(f.target, f.path);
      candidates.push_back({p, p});
    }
    for (const auto& dir : m_options.from) {
      std::string p = join_path(join_path(dir, layout::k_objects), object);
      candidates.push_back({p, p});
    }
    std::optional<Source> found;
    for (auto& c : candidates) {
      if (!holds(c.open_path, e, exclude_ino)) continue;
      found = std::move(c);
      break;
    }
    m_sources[digest] = found;
    return found;
  }

  // Who else needs the lost content, for all of it at once (one read of refs). Best effort: the
  // report stands without it.
  void name_users_of_lost() {
    if (m_lost.empty()) return;
    auto users = users_of(m_store, m_db, m_lost);
    if (!users) return;
    for (std::size_t i = 0; i < users->size(); ++i) {
      m_report.lost[i].snapshots = std::move((*users)[i].snapshots);
      m_report.lost[i].trees = std::move((*users)[i].trees);
    }
  }

  void lost(const Entry& e) {
    // Its recorded stamp stays the one of intact bytes: restamped, the damaged file would look
    // unchanged to the next stat-only status, and a later repair (with another --from) would
    // find nothing to do.
    m_touched.erase(e.path);
    const std::string text = digest_text(m_store.algorithm(), e.digest.view());
    for (auto& l : m_report.lost) {
      if (l.digest != text) continue;
      l.paths.push_back(e.path);
      return;
    }
    m_report.lost.push_back({text, {e.path}, {}, {}});
    m_lost.push_back({e.digest.str(), std::nullopt});
    m_report.unrepaired.push_back({e.path, ChangeKind::content, "no intact copy of " + text});
  }

  Result<void> apply_metadata(int fd, const Entry& e, std::int64_t mtime, const std::string& what) {
    if (m_is_root && ::fchown(fd, e.uid, e.gid) != 0) return std::unexpected(os_error(errno, "chown " + what));
    if (::fchmod(fd, e.mode) != 0) return std::unexpected(os_error(errno, "chmod " + what));
    TRY_VOID(write_xattrs_fd(fd, e.xattrs(), what));
    struct timespec times[2] = {from_ns(mtime), from_ns(mtime)};
    if (::futimens(fd, times) != 0) return std::unexpected(os_error(errno, "set mtime " + what));
    return {};
  }

  // Writes the source's bytes into the existing inode `name` (O_TRUNC): every other name of the
  // inode sees them at once and no link count changes. Checks the result's digest.
  Result<void> rewrite_in_place(int dir_fd, const std::string& name, const Entry& e, const Source& src,
                                std::int64_t mtime, const std::string& what) {
    TRY(auto reader, open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW));
    TRY(auto st, stat_fd(reader.get(), what));
    if ((st.st_mode & S_IWUSR) == 0 && ::fchmod(reader.get(), (st.st_mode & 07777) | S_IWUSR) != 0)
      return std::unexpected(os_error(errno, "make writable " + what));
    TRY(auto writer, open_at(dir_fd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW));
    TRY(auto in, open_at(AT_FDCWD, src.open_path, O_RDONLY | O_NOFOLLOW));
    TRY_VOID(copy_ranges(in.get(), writer.get(), e.size, e.data_ranges(), CopyMethod::user_space));
    if (::fsync(writer.get()) != 0) return std::unexpected(os_error(errno, "fsync " + what));
    TRY(auto digest, m_store.hash_fd(reader.get(), e.size, what));
    if (digest != e.digest.view())
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("{} changed while being repaired", what)));
    return apply_metadata(reader.get(), e, mtime, what);
  }

  // A new inode with the source's bytes renamed over `name`: atomic for this name only.
  Result<void> replace(int dir_fd, const std::string& name, const Entry& e, const Source* src, std::int64_t mtime,
                       const std::string& what) {
    std::string temp = temp_name(name);
    TRY(auto out, open_at(dir_fd, temp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    auto written = [&]() -> Result<void> {
      if (src) {
        TRY(auto in, open_at(AT_FDCWD, src->open_path, O_RDONLY | O_NOFOLLOW));
        TRY_VOID(copy_ranges(in.get(), out.get(), e.size, e.data_ranges(), CopyMethod::kernel));
        TRY(auto digest, m_store.hash_fd(out.get(), e.size, what));
        if (digest != e.digest.view())
          return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("source for {} changed while copied", what)));
      }
      if (::fsync(out.get()) != 0) return std::unexpected(os_error(errno, "fsync " + what));
      TRY_VOID(apply_metadata(out.get(), e, mtime, what));
      return move_over(dir_fd, temp, name, what);
    }();
    if (!written) ::unlinkat(dir_fd, temp.c_str(), 0);
    return written;
  }

  // Renames `temp` over `name`, clearing a directory in the way first (a type change).
  Result<void> move_over(int dir_fd, const std::string& temp, const std::string& name, const std::string& what) {
    auto st = stat_at(dir_fd, name);
    if (st && S_ISDIR(st->st_mode)) TRY_VOID(remove_tree(dir_fd, name));
    if (::renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0)
      return std::unexpected(os_error(errno, "rename into place " + what));
    return {};
  }

  // The store file (object, variant, or one in quarantine) whose inode is `ino`.
  std::optional<StoreInode> locate(const std::string& digest, std::uint64_t ino) const {
    auto matches = [&](int dir_fd, const std::string& name) {
      auto st = stat_at(dir_fd, name);
      return st && static_cast<std::uint64_t>(st->st_ino) == ino;
    };
    const std::string object = layout::object_name(digest);
    if (matches(m_store.objects_fd(), object)) return StoreInode{m_store.objects_fd(), object, layout::store_path(layout::k_objects, object)};
    const std::string shard = object.substr(0, 2);
    if (auto names = list_names(m_store.variants_fd(), shard)) {
      for (const auto& n : *names) {
        std::string name = shard + "/" + n;
        if (n.starts_with(layout::variant_prefix(digest)) && matches(m_store.variants_fd(), name))
          return StoreInode{m_store.variants_fd(), name, layout::store_path(layout::k_variants, name)};
      }
    }
    for (const auto& q : m_quarantine)
      if (q.digest == digest && matches(m_store.quarantine_fd(), q.name))
        return StoreInode{m_store.quarantine_fd(), q.name, layout::store_path(layout::k_quarantine, q.name)};
    // The store lost its name for the inode (deleted or replaced there), but a tree still has it.
    for (const auto& [path, rec] : m_scan.recorded)
      if (rec.placed == PlacedBy::hardlink && rec.stamp.ino == ino && rec.digest == digest &&
          matches(m_scan.root.get(), path))
        return StoreInode{m_scan.root.get(), path, join_path(m_scan.target, path)};
    return std::nullopt;
  }

  Result<void> repair_entry(const Finding& f) {
    const Entry& e = entry(f.index);
    switch (e.type) {
      case EntryType::file: return repair_file(f, e);
      case EntryType::hardlink: return repair_in_tree_link(f, e);
      default: return repair_other(f, e);
    }
  }

  Result<void> repair_file(const Finding& f, const Entry& e) {
    UniqueFd holder;
    TRY(auto dir_fd, parent_fd(e.path, holder));
    const std::string name(base_name(e.path));
    const auto* rec = recorded(e.path);
    const std::int64_t mtime = rec ? rec->stamp.mtime_ns : e.mtime_ns;
    auto current = stat_at(dir_fd, name);
    const bool regular = current && S_ISREG(current->st_mode);
    const std::uint64_t current_ino = regular ? static_cast<std::uint64_t>(current->st_ino) : 0;
    m_touched.insert(e.path);

    if (rec && rec->placed == PlacedBy::hardlink && e.size > 0) {
      if (auto inode = locate(e.digest.str(), rec->stamp.ino)) return repair_linked(f, e, dir_fd, name, *inode, mtime);
    }
    if (e.size == 0) {
      if (m_options.dry_run) return act(e.path, "recreated", {}, "empty file"), Result<void>{};
      TRY_VOID(replace(dir_fd, name, e, nullptr, mtime, e.path));
      return act(e.path, f.change.kind == ChangeKind::removed ? "recreated" : "replaced", {}, "empty file"), Result<void>{};
    }
    TRY(auto src, find_source(e, current_ino));
    if (!src) return lost(e), Result<void>{};
    const bool in_place = regular && current->st_nlink > 1 && f.change.kind == ChangeKind::content;
    const std::string action = in_place ? "rewrote in place" : f.change.kind == ChangeKind::removed ? "recreated" : "replaced";
    const std::string detail = in_place ? fmt::format("inode {} has {} names", current_ino, current->st_nlink) : f.change.detail;
    if (!m_options.dry_run) {
      if (in_place) TRY_VOID(rewrite_in_place(dir_fd, name, e, *src, mtime, e.path));
      else TRY_VOID(replace(dir_fd, name, e, &*src, mtime, e.path));
    }
    act(e.path, action, src->label, detail);
    return {};
  }

  // A hardlinked entry: heal the store inode it was linked to (in place, so every tree linked to
  // it heals too), then make this name that inode again if it no longer is.
  Result<void> repair_linked(const Finding& f, const Entry& e, int dir_fd, const std::string& name,
                             const StoreInode& inode, std::int64_t mtime) {
    const auto* rec = recorded(e.path);
    const std::string open_path = fd_path(inode.dir_fd, inode.name);
    if (!holds(open_path, e, 0)) {
      TRY(auto src, find_source(e, rec->stamp.ino));
      if (!src) return lost(e), Result<void>{};
      auto st = stat_at(inode.dir_fd, inode.name);
      const std::string detail = fmt::format("inode {} ({}), {} names", rec->stamp.ino, inode.label, st ? st->st_nlink : 0);
      if (!m_options.dry_run) TRY_VOID(rewrite_in_place(inode.dir_fd, inode.name, e, *src, mtime, e.path));
      act(e.path, "rewrote in place", src->label, detail);
    } else if (f.change.kind == ChangeKind::content) {
      // The path holds other bytes than the inode: it is another inode now (a `link` change).
    }
    m_verified_inodes.insert(rec->stamp.ino);
    auto now = stat_at(dir_fd, name);
    if (now && static_cast<std::uint64_t>(now->st_ino) == rec->stamp.ino) return {};
    if (!m_options.dry_run) {
      std::string temp = temp_name(name);
      if (::linkat(inode.dir_fd, inode.name.c_str(), dir_fd, temp.c_str(), 0) != 0)
        return std::unexpected(os_error(errno, fmt::format("link {:?} to {}", e.path, inode.label)));
      auto moved = move_over(dir_fd, temp, name, e.path);
      if (!moved) {
        ::unlinkat(dir_fd, temp.c_str(), 0);
        return moved;
      }
    }
    act(e.path, "relinked", inode.label, fmt::format("inode {} again", rec->stamp.ino));
    return {};
  }

  Result<void> repair_in_tree_link(const Finding& f, const Entry& e) {
    (void)f;
    const Entry& primary = entry(e.link_index);
    UniqueFd holder;
    TRY(auto dir_fd, parent_fd(e.path, holder));
    const std::string name(base_name(e.path));
    if (!m_options.dry_run) {
      std::string temp = temp_name(name);
      if (::linkat(m_scan.root.get(), primary.path.c_str(), dir_fd, temp.c_str(), 0) != 0)
        return std::unexpected(os_error(errno, fmt::format("link {:?} to {:?}", e.path, primary.path)));
      TRY_VOID(move_over(dir_fd, temp, name, e.path));
    }
    act(e.path, "relinked", primary.path, "in-tree hardlink");
    return {};
  }

  Result<void> repair_other(const Finding& f, const Entry& e) {
    if (f.index == 0) return {};  // the root itself: only its metadata can differ
    UniqueFd holder;
    TRY(auto dir_fd, parent_fd(e.path, holder));
    const std::string name(base_name(e.path));
    const std::string action = f.change.kind == ChangeKind::removed ? "recreated" : "replaced";
    if (m_options.dry_run) return act(e.path, action, {}, to_string(e.type)), Result<void>{};
    auto st = stat_at(dir_fd, name);
    if (e.type == EntryType::directory) {
      if (st) TRY_VOID(remove_tree(dir_fd, name));
      TRY_VOID(mkdir_at(dir_fd, name, 0700));
      TRY(auto fd, open_dir(dir_fd, name));
      if (m_is_root && ::fchown(fd.get(), e.uid, e.gid) != 0) return std::unexpected(os_error(errno, "chown " + e.path));
      if (::fchmod(fd.get(), e.mode) != 0) return std::unexpected(os_error(errno, "chmod " + e.path));
    } else {
      std::string temp = temp_name(name);
      int rc = e.type == EntryType::symlink
                   ? ::symlinkat(e.link_target().c_str(), dir_fd, temp.c_str())
                   : ::mknodat(dir_fd, temp.c_str(),
                               (e.type == EntryType::fifo ? S_IFIFO : e.type == EntryType::char_device ? S_IFCHR : S_IFBLK) | 0600,
                               static_cast<dev_t>(e.type == EntryType::fifo ? 0 : e.rdev()));
      if (rc != 0) return std::unexpected(os_error(errno, "create " + e.path));
      if (e.type != EntryType::symlink && ::fchmodat(dir_fd, temp.c_str(), e.mode, 0) != 0)
        return std::unexpected(os_error(errno, "chmod " + e.path));
      TRY_VOID(move_over(dir_fd, temp, name, e.path));
    }
    act(e.path, action, {}, to_string(e.type));
    return {};
  }

  Result<void> fix_metadata(const Finding& f) {
    const Entry& e = entry(f.index);
    if (m_options.dry_run) return act(e.path, "fixed metadata", {}, f.change.detail), Result<void>{};
    auto fd = f.index == 0 ? open_dir(m_scan.root.get(), ".") : open_beneath(m_scan.root.get(), e.path, O_RDONLY | O_NOFOLLOW);
    if (!fd) return std::unexpected(fd.error());
    if (m_is_root && ::fchown(fd->get(), e.uid, e.gid) != 0) return std::unexpected(os_error(errno, "chown " + e.path));
    if (::fchmod(fd->get(), e.mode) != 0) return std::unexpected(os_error(errno, "chmod " + e.path));
    if (!e.xattrs().empty()) TRY_VOID(write_xattrs_fd(fd->get(), e.xattrs(), e.path));
    if (e.type == EntryType::file) {
      const auto* rec = recorded(e.path);
      const std::int64_t mtime = rec ? rec->stamp.mtime_ns : e.mtime_ns;
      struct timespec times[2] = {from_ns(mtime), from_ns(mtime)};
      if (::futimens(fd->get(), times) != 0) return std::unexpected(os_error(errno, "set mtime " + e.path));
      m_touched.insert(e.path);
    }
    // A directory's mtime is set by restore_directory_times, after every other change.
    act(e.path, "fixed metadata", {}, f.change.detail);
    return {};
  }

  // Every directory of the manifest gets back the mtime the restore gave it, children before
  // parents: the repairs above (a file renamed into place, a directory recreated, an added path
  // pruned) and the user's changes moved them. Only a differing mtime is set, so a second repair
  // changes nothing; a directory whose change was a finding was reported by fix_metadata, the
  // others moved because of this repair. One open and fstat per directory, and only when status
  // found something.
  Result<void> restore_directory_times() {
    const auto& list = m_scan.manifest.entries;
    for (std::size_t i = list.size(); i-- > 0;) {
      const Entry& e = list[i];
      if (e.type != EntryType::directory) continue;
      auto fd = i == 0 ? open_dir(m_scan.root.get(), ".") : open_beneath(m_scan.root.get(), e.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (!fd) continue;  // gone or not a directory: a finding repair could not heal, reported already
      TRY(auto st, stat_fd(fd->get(), e.path));
      if (to_ns(st.st_mtim) == e.mtime_ns) continue;
      struct timespec times[2] = {from_ns(e.mtime_ns), from_ns(e.mtime_ns)};
      if (::futimens(fd->get(), times) != 0) return std::unexpected(os_error(errno, "set mtime " + e.path));
    }
    return {};
  }

  Result<void> handle_added(const Finding& f) {
    if (!m_options.prune) {
      m_report.unrepaired.push_back(f.change);
      return {};
    }
    if (!m_options.dry_run) {
      UniqueFd holder;
      TRY(auto dir_fd, parent_fd(f.change.path, holder));
      TRY_VOID(remove_tree(dir_fd, std::string(base_name(f.change.path))));
    }
    act(f.change.path, "removed", {}, f.change.detail);
    return {};
  }

  // Objects this snapshot needs that sit in quarantine: healed (in place: their inode may have
  // names in other trees) from an intact copy, or found intact already (a repair above rewrote
  // their inode), and moved back; a lost file is published anew.
  Result<void> release_quarantine() {
    std::map<std::string, const Entry*> needed;
    for (const auto& e : m_scan.manifest.entries)
      if (e.type == EntryType::file && e.size > 0) needed.emplace(e.digest.str(), &e);
    for (const auto& q : m_quarantine) {
      auto it = needed.find(q.digest);
      if (it != needed.end()) TRY_VOID(release_one(q, *it->second));
    }
    return {};
  }

  // A file of this tree that is still the inode the store handed out for `q` and holds its content.
  std::optional<std::string> intact_linked_name(const QuarantineRecord& q, const Entry& e) const {
    if (q.ino == 0) return std::nullopt;
    for (const auto& [path, rec] : m_scan.recorded) {
      if (rec.placed != PlacedBy::hardlink || rec.stamp.ino != q.ino || rec.digest != q.digest) continue;
      auto st = stat_at(m_scan.root.get(), path);
      if (st && static_cast<std::uint64_t>(st->st_ino) == q.ino && holds(fd_path(m_scan.root.get(), path), e, 0))
        return path;
    }
    return std::nullopt;
  }

  // One quarantined file this snapshot needs, in the order that keeps the hardlink structure:
  // the inode the store handed out goes back under its name (healed in place first if needed);
  // when only a tree still holds that inode, the tree's name is linked back into the store; a
  // file lost everywhere is published anew from an intact copy.
  Result<void> release_one(const QuarantineRecord& q, const Entry& e) {
    const std::string label = layout::store_path(layout::k_quarantine, q.name);
    const std::string origin_name(std::string_view(q.origin).substr(q.origin.find('/') + 1));
    const int origin_fd = q.object ? m_store.objects_fd() : m_store.variants_fd();
    auto st = stat_at(m_store.quarantine_fd(), q.name);
    const bool present = st && S_ISREG(st->st_mode);
    const bool handed_out = present && (q.ino == 0 || static_cast<std::uint64_t>(st->st_ino) == q.ino);
    if (!handed_out) {
      if (auto linked = intact_linked_name(q, e)) {
        if (!m_options.dry_run) {
          if (::linkat(m_scan.root.get(), linked->c_str(), origin_fd, origin_name.c_str(), 0) != 0 && errno != EEXIST)
            return std::unexpected(os_error(errno, "link back " + q.origin));
          TRY(auto back, stat_at(origin_fd, origin_name));
          TRY_VOID(m_db.release_quarantine(q.name, {q.origin, q.digest, stamp_of(back)}));
          m_verified_inodes.insert(q.ino);
        }
        act(q.origin, "relinked store file", *linked, fmt::format("inode {} again", q.ino));
        return {};
      }
    }
    if (!present) {
      TRY(auto src, find_source(e, 0));
      if (!src) return lost(e), Result<void>{};
      if (!m_options.dry_run) {
        TRY(auto in, open_at(AT_FDCWD, src->open_path, O_RDONLY | O_NOFOLLOW));
        TRY(auto stamp, m_store.publish_copy(q.digest, in.get(), e.size, e.data_ranges(), e.mode, e.mtime_ns));
        TRY_VOID(m_db.release_quarantine(q.name, {q.origin, q.digest, stamp}));
      }
      act(q.origin, "published anew", src->label, "its file was missing");
      return {};
    }
    if (!holds(fd_path(m_store.quarantine_fd(), q.name), e, 0)) {
      TRY(auto src, find_source(e, static_cast<std::uint64_t>(st->st_ino)));
      if (!src) return lost(e), Result<void>{};
      // A store file keeps its own mode and mtime (an object's has no write bit).
      Entry as_stored = e;
      as_stored.mode = st->st_mode & (q.object ? 0555 : 07777);
      if (!m_options.dry_run)
        TRY_VOID(rewrite_in_place(m_store.quarantine_fd(), q.name, as_stored, *src, to_ns(st->st_mtim), label));
      act(q.origin, "healed store file", src->label, fmt::format("inode {}, {} names", st->st_ino, st->st_nlink));
    }
    if (!m_options.dry_run) {
      if (::renameat2(m_store.quarantine_fd(), q.name.c_str(), origin_fd, origin_name.c_str(), RENAME_NOREPLACE) != 0 &&
          errno != EEXIST)
        return std::unexpected(os_error(errno, "move back " + label));
      TRY(auto back, stat_at(origin_fd, origin_name));
      TRY_VOID(m_db.release_quarantine(q.name, {q.origin, q.digest, stamp_of(back)}));
    }
    act(q.origin, "released from quarantine", label);
    return {};
  }

  // Store files whose inode repair checked or rewrote: their fingerprints take the new stat.
  Result<void> refresh_fingerprints() {
    std::vector<Fingerprint> rows;
    for (auto ino : m_verified_inodes) {
      TRY(auto prints, m_db.fingerprints_of_inode(ino));
      for (auto& p : prints) {
        auto st = stat_at(m_store.root_fd(), p.name);
        if (!st || static_cast<std::uint64_t>(st->st_ino) != ino) continue;
        p.stamp = stamp_of(*st);
        rows.push_back(std::move(p));
      }
    }
    return m_db.put_fingerprints(rows);
  }

  Result<void> update_record() {
    std::vector<RestoreEntryRecord> rows;
    for (const auto& path : m_touched) {
      auto st = stat_at(m_scan.root.get(), path);
      if (!st) continue;
      RestoreEntryRecord row;
      if (const auto* rec = recorded(path)) row = *rec;
      else row.path = path;
      const bool linked = row.placed == PlacedBy::hardlink && row.stamp.ino == static_cast<std::uint64_t>(st->st_ino);
      if (row.placed == PlacedBy::hardlink && !linked) row.placed = PlacedBy::copy;
      row.stamp = stamp_of(*st);
      rows.push_back(std::move(row));
    }
    return m_db.update_restore_entries(m_scan.record.id, rows);
  }

  const ObjectStore& m_store;
  Database& m_db;
  const RepairOptions& m_options;
  TreeScan& m_scan;
  RepairReport& m_report;
  bool m_is_root;
  std::string m_source_root;
  std::vector<QuarantineRecord> m_quarantine;
  std::vector<ContentQuery> m_lost;  // m_lost[i] for m_report.lost[i]
  std::map<std::string, std::optional<Source>> m_sources;
  std::set<std::uint64_t> m_verified_inodes;
  std::set<std::string> m_touched;
};

}  // namespace

Result<RepairReport> repair_tree(const ObjectStore& store, Database& db, const std::filesystem::path& target,
                                 const RepairOptions& options, unsigned threads) {
  const std::int64_t start = now_ns();
  TRY(auto scan, scan_restored_tree(store, db, target, false, threads));
  RepairReport report;
  report.target = scan.target;
  report.dry_run = options.dry_run;
  Repairer repairer(store, db, options, scan, report);
  TRY_VOID(repairer.run());
  report.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return report;
}

}  // namespace treesnap
