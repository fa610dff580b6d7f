#include "verify/verifier.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "store/layout.hpp"
#include "util/thread_pool.hpp"
#include "util/trace.hpp"

namespace treesnap {
namespace {

struct Item {
  std::string digest;
  bool object;       // objects/ (else variants/)
  std::string name;  // "ab/<name>" relative to its directory
  std::string path;  // "objects/ab/<hex>": its fingerprint's name and its label in reports
  std::uint64_t size;
};

// A variant's mode is the second dot-separated field of its name ("<hex>.<mode octal>.…").
std::optional<std::uint32_t> variant_mode(std::string_view name) {
  auto first = name.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = name.find('.', first + 1);
  std::uint32_t mode = 0;
  for (char c : name.substr(first + 1, second - first - 1)) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<std::uint32_t>(c - '0');
  }
  return mode & 07777;
}

enum class Verdict { good, bad, fixed };

struct Checked {
  Verdict verdict = Verdict::good;
  std::uint64_t handed_out_ino = 0;  // the inode its fingerprint names (what restored trees link)
  std::string reason;           // bad: why; fixed: what was put back
  std::optional<FileStamp> stamp;  // good or fixed: the fingerprint to record
  std::uint64_t ino = 0;
  bool hashed = false;
};

class Checker {
 public:
  Checker(const ObjectStore& store, bool fast, std::unordered_map<std::string, Fingerprint> prints)
      : m_store(store), m_fast(fast), m_prints(std::move(prints)) {}

  Result<Checked> check(const Item& item, std::atomic<std::uint64_t>& bytes) const {
    const int dir_fd = item.object ? m_store.objects_fd() : m_store.variants_fd();
    Checked out;
    auto print = m_prints.find(item.path);
    const bool known = print != m_prints.end() && print->second.digest == item.digest;
    if (known) out.handed_out_ino = print->second.stamp.ino;
    // The fast rule: an unchanged stat (ino, size, mtime, ctime, mode) means unchanged content,
    // because no write, truncate, chmod or replacement leaves ctime as it was. One fstatat, no
    // open: the file is opened only when it must be read.
    if (m_fast && known) {
      struct stat quick {};
      if (::fstatat(dir_fd, item.name.c_str(), &quick, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(quick.st_mode) &&
          print->second.stamp == stamp_of(quick)) {
        out.ino = static_cast<std::uint64_t>(quick.st_ino);
        return out;
      }
    }
    auto fd = open_at(dir_fd, item.name, O_RDONLY | O_NOFOLLOW);
    if (!fd) {
      out.verdict = Verdict::bad;
      out.reason = fd.error().code == ErrorCode::not_found ? "missing" : fd.error().message();
      return out;
    }
    TRY(auto st, stat_fd(fd->get(), item.path));
    out.ino = static_cast<std::uint64_t>(st.st_ino);
    if (static_cast<std::uint64_t>(st.st_size) != item.size) {
      out.verdict = Verdict::bad;
      out.reason = fmt::format("size {}, expected {}", st.st_size, item.size);
      return out;
    }
    auto digest = m_store.hash_fd(fd->get(), item.size, item.path);
    out.hashed = true;
    bytes += item.size;
    if (!digest) {
      out.verdict = Verdict::bad;
      out.reason = digest.error().message();
      return out;
    }
    if (*digest != item.digest) {
      out.verdict = Verdict::bad;
      out.reason = "content does not match its digest";
      return out;
    }
    TRY_VOID(fix_metadata(fd->get(), item, st, known ? &print->second.stamp : nullptr, out));
    TRY(auto after, stat_fd(fd->get(), item.path));
    out.stamp = stamp_of(after);
    return out;
  }

 private:
  // Intact content under the wrong mode or mtime: objects never have a write bit, a variant has
  // the mode its name carries, and both keep the mtime recorded when they were last good.
  Result<void> fix_metadata(int fd, const Item& item, const struct stat& st, const FileStamp* recorded,
                            Checked& out) const {
    const std::uint32_t mode = st.st_mode & 07777;
    std::uint32_t want = item.object ? (mode & 0555) : variant_mode(layout::quarantine_name(item.name)).value_or(mode);
    std::vector<std::string> fixes;
    if (mode != want) {
      if (::fchmod(fd, want) != 0) return std::unexpected(os_error(errno, "chmod " + item.path));
      fixes.push_back(fmt::format("mode {:04o} -> {:04o}", mode, want));
    }
    if (recorded && recorded->mtime_ns != to_ns(st.st_mtim)) {
      struct timespec times[2] = {from_ns(recorded->mtime_ns), from_ns(recorded->mtime_ns)};
      if (::futimens(fd, times) != 0) return std::unexpected(os_error(errno, "set mtime " + item.path));
      fixes.push_back("mtime");
    }
    if (!fixes.empty()) {
      out.verdict = Verdict::fixed;
      for (const auto& f : fixes) out.reason += (out.reason.empty() ? "" : ", ") + f;
    }
    return {};
  }

  const ObjectStore& m_store;
  bool m_fast;
  std::unordered_map<std::string, Fingerprint> m_prints;
};

}  // namespace

Result<Manifest> read_manifest(const ObjectStore& store, const std::string& digest) {
  TRY(auto bytes, store.read_verified(digest));
  TRY(auto manifest, decode_manifest(bytes));
  if (manifest.algorithm != store.algorithm())
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest digest algorithm differs from the store's"));
  return manifest;
}

Result<ContentUsers> users_of(const ObjectStore& store, Database& db, const std::string& digest,
                              std::optional<std::uint64_t> inode) {
  ContentUsers users;
  TRY(auto snapshots, db.snapshots_referencing(digest));
  for (const auto& s : snapshots) {
    const std::string name = s.name + ":" + s.tag;
    users.snapshots.push_back(name);
    if (s.manifest == digest) {
      users.paths.push_back(name + ":(manifest)");
      continue;
    }
    auto manifest = read_manifest(store, s.manifest);
    if (!manifest) {
      users.paths.push_back(name + ":(manifest unreadable: " + manifest.error().message() + ")");
      continue;
    }
    for (const auto& e : manifest->entries)
      if (e.type == EntryType::file && e.digest.view() == digest) users.paths.push_back(name + ":" + e.path);
  }
  TRY(auto files, db.tree_files_with(digest));
  for (const auto& f : files)
    if (!inode || (f.placed == PlacedBy::hardlink && f.ino == *inode)) users.trees.push_back(join_path(f.target, f.path));
  return users;
}

Result<std::string> quarantine_file(const ObjectStore& store, Database& db, std::string_view top,
                                    const std::string& name, const std::string& digest, std::uint64_t ino,
                                    const std::string& reason) {
  const int dir_fd = top == layout::k_objects ? store.objects_fd() : store.variants_fd();
  std::string base = layout::quarantine_name(name);
  std::string target = base;
  // An earlier damaged copy may already sit there (its inode may still have names in restored
  // trees): keep both.
  for (int n = 1; n < 1000; ++n) {
    if (::renameat2(dir_fd, name.c_str(), store.quarantine_fd(), target.c_str(), RENAME_NOREPLACE) == 0) break;
    if (errno == ENOENT) break;  // missing: nothing to move, the row still marks it
    if (errno != EEXIST) return std::unexpected(os_error(errno, fmt::format("quarantine {}/{}", top, name)));
    target = fmt::format("{}.q{}", base, n);
  }
  QuarantineRecord record{target, layout::store_path(top, name), digest, top == layout::k_objects, ino, now_ns(), reason};
  TRY_VOID(db.add_quarantine(record));
  return layout::store_path(layout::k_quarantine, target);
}

Result<VerifySummary> verify_store(const ObjectStore& store, Database& db, unsigned threads, bool fast,
                                   const std::optional<std::set<std::string>>& only) {
  const std::int64_t start = now_ns();
  PhaseTimer timer("verify");
  std::vector<Item> items;
  std::unordered_map<std::string, std::uint64_t> sizes;
  TRY(auto objects, db.all_objects());
  TRY(auto quarantined, db.quarantined());
  std::set<std::string> in_quarantine;
  for (const auto& q : quarantined)
    if (q.object) in_quarantine.insert(q.digest);
  for (auto& o : objects) {
    if (only && !only->contains(o.digest)) continue;
    sizes[o.digest] = o.size;
    if (in_quarantine.contains(o.digest)) continue;  // reported below from its quarantine row
    std::string name = layout::object_name(o.digest);
    items.push_back({o.digest, true, name, layout::store_path(layout::k_objects, name), o.size});
  }
  // Variants are named "<hex>.<metadata>"; their content must still be the object's.
  for (const auto& shard : layout::shard_names()) {
    auto names = list_names(store.variants_fd(), shard);
    if (!names) return std::unexpected(names.error());
    for (auto& n : *names) {
      auto digest = layout::digest_from_object_name(shard, std::string_view(n).substr(0, n.find('.')));
      auto size = sizes.find(digest);
      if (size == sizes.end()) continue;  // not in scope, or no row: gc --full's business
      std::string name = shard + "/" + n;
      items.push_back({digest, false, name, layout::store_path(layout::k_variants, name), size->second});
    }
  }
  timer.phase("list");
  TRY(auto prints, db.fingerprints());
  std::unordered_map<std::string, Fingerprint> by_name;
  by_name.reserve(prints.size());
  for (auto& p : prints) by_name.emplace(p.name, std::move(p));
  Checker checker(store, fast, std::move(by_name));

  timer.phase("fingerprints");
  std::vector<Checked> results(items.size());
  std::atomic<std::uint64_t> bytes{0};
  TRY_VOID(parallel_for(items.size(), threads, 16, [&](std::size_t i) -> Result<void> {
    TRY(results[i], checker.check(items[i], bytes));
    return {};
  }));

  timer.phase("check");
  VerifySummary summary;
  summary.fast = fast;
  std::vector<Fingerprint> good;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Item& item = items[i];
    const Checked& c = results[i];
    summary.hashed += c.hashed ? 1 : 0;
    if (c.stamp) good.push_back({item.path, item.digest, *c.stamp});
    if (c.verdict == Verdict::fixed) summary.fixed.push_back({item.path, c.reason});
    if (c.verdict != Verdict::bad) continue;
    // A gc beside us marks an orphan as being collected in a committed transaction before it
    // unlinks the file, so the row read now, after the failure was seen, says whether the file
    // was damaged or collected. Listing rows and then reading files without this check reported
    // every orphan a concurrent gc removed as missing, and quarantined it.
    TRY(auto state, db.object_state(item.digest));
    if (state == ObjectState::absent || state == ObjectState::collecting) continue;
    BadObject bad{digest_text(store.algorithm(), item.digest), item.path, c.reason, {}, {}, {}, {}};
    const std::string_view top = item.object ? layout::k_objects : layout::k_variants;
    // The row names the inode the store handed out (the fingerprint's), which restored trees
    // share, even when the file now under the name is another one (a replacement).
    const std::uint64_t ino = c.handed_out_ino ? c.handed_out_ino : c.ino;
    TRY(bad.quarantined, quarantine_file(store, db, top, item.name, item.digest, ino, c.reason));
    if (c.reason == "missing") bad.quarantined.clear();
    TRY(auto users, users_of(store, db, item.digest, ino ? std::optional<std::uint64_t>(ino) : std::nullopt));
    bad.snapshots = std::move(users.snapshots);
    bad.paths = std::move(users.paths);
    bad.trees = std::move(users.trees);
    summary.bad.push_back(std::move(bad));
  }
  // Content still in quarantine is still damaged: reported on every run until repair or a new
  // snapshot brings an intact copy.
  for (const auto& q : quarantined) {
    if (!q.object || !sizes.contains(q.digest)) continue;
    BadObject bad{digest_text(store.algorithm(), q.digest), q.origin, "in quarantine: " + q.reason,
                  q.ino ? layout::store_path(layout::k_quarantine, q.name) : std::string(), {}, {}, {}};
    TRY(auto users, users_of(store, db, q.digest, q.ino ? std::optional<std::uint64_t>(q.ino) : std::nullopt));
    bad.snapshots = std::move(users.snapshots);
    bad.paths = std::move(users.paths);
    bad.trees = std::move(users.trees);
    summary.bad.push_back(std::move(bad));
  }
  timer.phase("report");
  TRY_VOID(db.put_fingerprints(good));
  timer.phase("record");
  std::sort(summary.bad.begin(), summary.bad.end(), [](const BadObject& a, const BadObject& b) { return a.path < b.path; });
  summary.objects = items.size();
  summary.bytes = bytes.load();
  summary.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return summary;
}

}  // namespace treesnap
