#include "verify/verifier.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "store/layout.hpp"
#include "util/thread_pool.hpp"
#include "util/trace.hpp"

namespace treesnap {
namespace {

// A store file to check, 80 bytes and no allocation for an object: its name is built from the
// digest when needed. Variants keep their name in a side list.
struct Item {
  static constexpr std::uint32_t k_object = UINT32_MAX;
  std::array<char, 32> digest_bytes{};
  std::uint8_t digest_size = 0;
  bool known = false;  // has a fingerprint (of this digest)
  std::uint32_t variant = k_object;  // else its index in the variant names
  std::uint64_t size = 0;
  FileStamp print;  // its fingerprint, when known

  bool object() const { return variant == k_object; }
  std::string_view digest() const { return {digest_bytes.data(), digest_size}; }
  unsigned shard() const { return static_cast<unsigned char>(digest_bytes[0]); }
};

// The items and the names reports and fingerprints use for them, built only for the few that
// need one (suspects, damage, changed fingerprints).
struct ItemList {
  std::vector<Item> items;
  std::vector<std::string> variants;  // "ab/<name>" under variants/

  // "ab/<hex>" under objects/ or "ab/<name>" under variants/.
  std::string name(const Item& item) const {
    return item.object() ? layout::object_name(item.digest()) : variants[item.variant];
  }
  std::string_view top(const Item& item) const { return item.object() ? layout::k_objects : layout::k_variants; }
  // "objects/ab/<hex>": its fingerprint's name and its label in reports.
  std::string path(const Item& item) const { return layout::store_path(top(item), name(item)); }
};

Item make_item(std::string_view digest, std::uint64_t size, std::uint32_t variant) {
  Item item;
  item.digest_size = static_cast<std::uint8_t>(std::min(digest.size(), item.digest_bytes.size()));
  std::memcpy(item.digest_bytes.data(), digest.data(), item.digest_size);
  item.size = size;
  item.variant = variant;
  return item;
}

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
  Checker(const ObjectStore& store, const ItemList& list) : m_store(store), m_list(list) {
    // One fd per object shard: the fast rule's fstatat then resolves one name, not three.
    const auto shards = layout::shard_names();
    for (std::size_t i = 0; i < m_shards.size(); ++i) {
      auto fd = open_at(store.objects_fd(), shards[i], O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (fd) m_shards[i] = std::move(*fd);  // a missing shard: its objects are found missing below
    }
  }

  // The fast rule: an unchanged stat (ino, size, mtime, ctime, mode) means unchanged content,
  // because no write, truncate, chmod or replacement leaves ctime as it was. One fstatat, no
  // open, no allocation.
  bool unchanged(const Item& item) const {
    if (!item.known) return false;
    struct stat st {};
    int rc;
    if (item.object()) {
      char leaf[2 * 32 + 1];
      layout::object_leaf(item.digest(), leaf);
      rc = ::fstatat(m_shards[item.shard()].get(), leaf, &st, AT_SYMLINK_NOFOLLOW);
    } else {
      rc = ::fstatat(m_store.variants_fd(), m_list.variants[item.variant].c_str(), &st, AT_SYMLINK_NOFOLLOW);
    }
    return rc == 0 && S_ISREG(st.st_mode) && item.print == stamp_of(st);
  }

  // Re-hashes the file (a suspect, or every file without --fast).
  Result<Checked> check(const Item& item, std::atomic<std::uint64_t>& bytes) const {
    const int dir_fd = item.object() ? m_store.objects_fd() : m_store.variants_fd();
    const std::string name = m_list.name(item);
    const std::string path = m_list.path(item);
    Checked out;
    if (item.known) out.handed_out_ino = item.print.ino;
    auto fd = open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW);
    if (!fd) {
      out.verdict = Verdict::bad;
      out.reason = fd.error().code == ErrorCode::not_found ? "missing" : fd.error().message();
      return out;
    }
    TRY(auto st, stat_fd(fd->get(), path));
    out.ino = static_cast<std::uint64_t>(st.st_ino);
    if (static_cast<std::uint64_t>(st.st_size) != item.size) {
      out.verdict = Verdict::bad;
      out.reason = fmt::format("size {}, expected {}", st.st_size, item.size);
      return out;
    }
    auto digest = item.size <= k_whole_read ? hash_whole(fd->get(), item.size, path)
                                            : m_store.hash_fd(fd->get(), item.size, path);
    out.hashed = true;
    bytes += item.size;
    if (!digest) {
      out.verdict = Verdict::bad;
      out.reason = digest.error().message();
      return out;
    }
    if (*digest != item.digest()) {
      out.verdict = Verdict::bad;
      out.reason = "content does not match its digest";
      return out;
    }
    TRY_VOID(fix_metadata(fd->get(), item, name, path, st, out));
    if (out.verdict == Verdict::fixed) {  // else reading left the stat as it was
      TRY(st, stat_fd(fd->get(), path));
    }
    out.stamp = stamp_of(st);
    return out;
  }

 private:
  // Files up to this size (98% of the Python stdlib and /usr/share) are read whole into a
  // per-thread buffer: no search for holes (a hole reads as zeros, which is what the digest
  // covers), so 4 system calls per file instead of 7.
  static constexpr std::uint64_t k_whole_read = 1 << 20;

  Result<std::string> hash_whole(int fd, std::uint64_t size, const std::string& path) const {
    thread_local std::vector<char> buffer;
    if (buffer.size() < size) buffer.resize(size);
    // `size` is the fstat's: a file that grows later has its new size caught by the next verify.
    TRY(auto n, pread_full(fd, std::span<char>(buffer.data(), size), 0, path));
    if (n != size) return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("{}: shrank while read", path)));
    Hasher hasher(m_store.algorithm());
    hasher.update(std::string_view(buffer.data(), n));
    return hasher.finish();
  }

  // Intact content under the wrong mode or mtime: objects never have a write bit, a variant has
  // the mode its name carries, and both keep the mtime recorded when they were last good.
  Result<void> fix_metadata(int fd, const Item& item, const std::string& name, const std::string& path,
                            const struct stat& st, Checked& out) const {
    const std::uint32_t mode = st.st_mode & 07777;
    std::uint32_t want = item.object() ? (mode & 0555) : variant_mode(layout::quarantine_name(name)).value_or(mode);
    std::vector<std::string> fixes;
    if (mode != want) {
      if (::fchmod(fd, want) != 0) return std::unexpected(os_error(errno, "chmod " + path));
      fixes.push_back(fmt::format("mode {:04o} -> {:04o}", mode, want));
    }
    if (item.known && item.print.mtime_ns != to_ns(st.st_mtim)) {
      struct timespec times[2] = {from_ns(item.print.mtime_ns), from_ns(item.print.mtime_ns)};
      if (::futimens(fd, times) != 0) return std::unexpected(os_error(errno, "set mtime " + path));
      fixes.push_back("mtime");
    }
    if (!fixes.empty()) {
      out.verdict = Verdict::fixed;
      for (const auto& f : fixes) out.reason += (out.reason.empty() ? "" : ", ") + f;
    }
    return {};
  }

  const ObjectStore& m_store;
  const ItemList& m_list;
  std::array<UniqueFd, 256> m_shards;
};

// The objects in scope (by digest, from one query) with their fingerprints (one query in name
// order, merged), then the variants of those objects found in variants/.
struct Listing {
  ItemList list;
  std::map<std::string, std::uint64_t> quarantined_sizes;  // in-scope objects in quarantine
};

Result<Listing> list_items(const ObjectStore& store, Database& db, const std::set<std::string>& in_quarantine,
                           const std::optional<std::set<std::string>>& only) {
  Listing out;
  auto& items = out.list.items;
  TRY_VOID(db.each_object([&](std::string_view digest, std::uint64_t size) {
    if (!only && in_quarantine.empty()) {
      items.push_back(make_item(digest, size, Item::k_object));
      return;
    }
    std::string key(digest);
    if (only && !only->contains(key)) return;
    if (in_quarantine.contains(key)) out.quarantined_sizes.emplace(std::move(key), size);  // reported from its row
    else items.push_back(make_item(digest, size, Item::k_object));
  }));
  const std::size_t objects = items.size();
  auto find_object = [&](std::string_view digest) -> Item* {
    auto it = std::lower_bound(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(objects), digest,
                               [](const Item& item, std::string_view d) { return item.digest() < d; });
    return it != items.begin() + static_cast<std::ptrdiff_t>(objects) && it->digest() == digest ? &*it : nullptr;
  };

  // Object fingerprints arrive in digest order: a merge with the objects, no lookup table.
  const std::string objects_prefix = std::string(layout::k_objects) + "/";
  std::unordered_map<std::string, Fingerprint> variant_prints;
  std::size_t next = 0;
  TRY_VOID(db.each_fingerprint([&](std::string_view name, std::string_view digest, const FileStamp& stamp) {
    if (!name.starts_with(objects_prefix)) {
      variant_prints.emplace(std::string(name), Fingerprint{{}, std::string(digest), stamp});
      return;
    }
    while (next < objects && items[next].digest() < digest) ++next;
    if (next == objects || items[next].digest() != digest || digest.size() > 32) return;
    char leaf[2 * 32 + 1];
    layout::object_leaf(digest, leaf);
    if (!name.ends_with(leaf)) return;  // a row whose name and digest disagree vouches for nothing
    items[next].known = true;
    items[next].print = stamp;
  }));

  // Variants are named "<hex>.<metadata>"; their content must still be the object's.
  for (const auto& shard : layout::shard_names()) {
    auto names = list_names(store.variants_fd(), shard);
    if (!names) return std::unexpected(names.error());
    for (auto& n : *names) {
      auto digest = layout::digest_from_object_name(shard, std::string_view(n).substr(0, n.find('.')));
      std::uint64_t size = 0;
      if (const Item* object = find_object(digest)) size = object->size;
      else if (auto q = out.quarantined_sizes.find(digest); q != out.quarantined_sizes.end()) size = q->second;
      else continue;  // not in scope, or no row: gc --full's business
      Item item = make_item(digest, size, static_cast<std::uint32_t>(out.list.variants.size()));
      out.list.variants.push_back(shard + "/" + n);
      auto print = variant_prints.find(out.list.path(item));
      if (print != variant_prints.end() && print->second.digest == digest) {
        item.known = true;
        item.print = print->second.stamp;
      }
      items.push_back(item);
    }
  }
  // Inode order: neighbouring inodes share inode-table blocks (and, on ext4, are laid out in
  // that order), which is what a cold cache reads. Files without a fingerprint go last.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return (a.known ? a.print.ino : UINT64_MAX) < (b.known ? b.print.ino : UINT64_MAX);
  });
  return out;
}

}  // namespace

Result<Manifest> read_manifest(const ObjectStore& store, const std::string& digest) {
  TRY(auto bytes, store.read_verified(digest));
  TRY(auto manifest, decode_manifest(bytes));
  if (manifest.algorithm != store.algorithm())
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest digest algorithm differs from the store's"));
  return manifest;
}

Result<std::vector<ContentUsers>> users_of(const ObjectStore& store, Database& db, const std::vector<ContentQuery>& queries) {
  std::vector<std::string> digests;
  for (const auto& q : queries) digests.push_back(q.digest);
  TRY(auto referencing, db.snapshots_referencing(digests));
  std::map<std::string, Result<Manifest>> manifests;  // by manifest digest, read once
  const std::vector<SnapshotRecord> none;
  std::vector<ContentUsers> out(queries.size());
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const std::string& digest = queries[i].digest;
    ContentUsers& users = out[i];
    const auto found = referencing.find(digest);
    for (const auto& s : found == referencing.end() ? none : found->second) {
      const std::string name = s.name + ":" + s.tag;
      users.snapshots.push_back(name);
      if (s.manifest == digest) {
        users.paths.push_back(name + ":(manifest)");
        continue;
      }
      auto read = manifests.find(s.manifest);
      if (read == manifests.end()) read = manifests.emplace(s.manifest, read_manifest(store, s.manifest)).first;
      const Result<Manifest>& manifest = read->second;
      if (!manifest) {
        users.paths.push_back(name + ":(manifest unreadable: " + manifest.error().message() + ")");
        continue;
      }
      for (const auto& e : manifest->entries)
        if (e.type == EntryType::file && e.digest.view() == digest) users.paths.push_back(name + ":" + e.path);
    }
    TRY(auto files, db.tree_files_with(digest));
    const auto& inode = queries[i].inode;
    for (const auto& f : files)
      if (!inode || (f.placed == PlacedBy::hardlink && f.ino == *inode)) users.trees.push_back(join_path(f.target, f.path));
  }
  return out;
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

constexpr unsigned k_min_readers = 8;

Result<VerifySummary> verify_store(const ObjectStore& store, Database& db, unsigned threads, bool fast,
                                   const std::optional<std::set<std::string>>& only) {
  const std::int64_t start = now_ns();
  PhaseTimer timer("verify");
  TRY(auto quarantined, db.quarantined());
  std::set<std::string> in_quarantine;
  for (const auto& q : quarantined)
    if (q.object) in_quarantine.insert(q.digest);
  TRY(auto listing, list_items(store, db, in_quarantine, only));
  const ItemList& list = listing.list;
  const auto& items = list.items;
  timer.phase("list");
  Checker checker(store, list);

  // Suspects: every file for a full verify; with --fast those whose stat is not their fingerprint.
  std::vector<std::uint32_t> suspects;
  if (fast) {
    std::vector<char> unchanged(items.size(), 0);
    TRY_VOID(parallel_for(items.size(), threads, 1024, [&](std::size_t i) -> Result<void> {
      unchanged[i] = checker.unchanged(items[i]) ? 1 : 0;
      return {};
    }));
    for (std::size_t i = 0; i < items.size(); ++i)
      if (!unchanged[i]) suspects.push_back(static_cast<std::uint32_t>(i));
    timer.phase("stat");
  } else {
    suspects.resize(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) suspects[i] = static_cast<std::uint32_t>(i);
  }
  std::vector<Checked> results(suspects.size());
  std::atomic<std::uint64_t> bytes{0};
  // At least 8 readers: with a cold cache the re-hash waits on small random reads, and more of
  // them in flight made a full verify of 95k files 25-30% quicker on 2 cores (4.6-5.1 s -> 3.2-3.9 s);
  // warm, the extra threads cost nothing measurable.
  const unsigned readers = std::max(threads, k_min_readers);
  TRY_VOID(parallel_for(suspects.size(), readers, 1, [&](std::size_t k) -> Result<void> {
    TRY(results[k], checker.check(items[suspects[k]], bytes));
    return {};
  }));
  timer.phase("hash");

  VerifySummary summary;
  summary.fast = fast;
  std::vector<Fingerprint> changed;
  std::vector<ContentQuery> queries;  // queries[i] for summary.bad[i]
  for (std::size_t k = 0; k < suspects.size(); ++k) {
    const Item& item = items[suspects[k]];
    const Checked& c = results[k];
    summary.hashed += c.hashed ? 1 : 0;
    if (c.stamp && !(item.known && item.print == *c.stamp)) changed.push_back({list.path(item), std::string(item.digest()), *c.stamp});
    if (c.verdict == Verdict::fixed) summary.fixed.push_back({list.path(item), c.reason});
    if (c.verdict != Verdict::bad) continue;
    // A gc beside us marks an orphan as being collected in a committed transaction before it
    // unlinks the file, so the row read now, after the failure was seen, says whether the file
    // was damaged or collected. Listing rows and then reading files without this check reported
    // every orphan a concurrent gc removed as missing, and quarantined it.
    TRY(auto state, db.object_state(std::string(item.digest())));
    if (state == ObjectState::absent || state == ObjectState::collecting) continue;
    BadObject bad{digest_text(store.algorithm(), item.digest()), list.path(item), c.reason, {}, {}, {}, {}};
    // The row names the inode the store handed out (the fingerprint's), which restored trees
    // share, even when the file now under the name is another one (a replacement).
    const std::uint64_t ino = c.handed_out_ino ? c.handed_out_ino : c.ino;
    const std::string digest(item.digest());
    TRY(bad.quarantined, quarantine_file(store, db, list.top(item), list.name(item), digest, ino, c.reason));
    if (c.reason == "missing") bad.quarantined.clear();
    summary.bad.push_back(std::move(bad));
    queries.push_back({digest, ino ? std::optional<std::uint64_t>(ino) : std::nullopt});
  }
  // Content still in quarantine is still damaged: reported on every run until repair or a new
  // snapshot brings an intact copy.
  for (const auto& q : quarantined) {
    if (!q.object || !listing.quarantined_sizes.contains(q.digest)) continue;
    BadObject bad{digest_text(store.algorithm(), q.digest), q.origin, "in quarantine: " + q.reason,
                  q.ino ? layout::store_path(layout::k_quarantine, q.name) : std::string(), {}, {}, {}};
    summary.bad.push_back(std::move(bad));
    queries.push_back({q.digest, q.ino ? std::optional<std::uint64_t>(q.ino) : std::nullopt});
  }
  // Who needs what is damaged: for all of it at once.
  TRY(auto users, users_of(store, db, queries));
  for (std::size_t i = 0; i < users.size(); ++i) {
    BadObject& bad = summary.bad[i];
    bad.snapshots = std::move(users[i].snapshots);
    bad.paths = std::move(users[i].paths);
    bad.trees = std::move(users[i].trees);
  }
  timer.phase("report");
  // Only fingerprints that moved (new files, fixed metadata, a re-hash after a change) are
  // written: a full verify of an unchanged store writes nothing.
  TRY_VOID(db.put_fingerprints(changed));
  timer.phase("record");
  std::sort(summary.bad.begin(), summary.bad.end(), [](const BadObject& a, const BadObject& b) { return a.path < b.path; });
  summary.objects = items.size();
  summary.bytes = bytes.load();
  summary.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return summary;
}

}  // namespace treesnap
