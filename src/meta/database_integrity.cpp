// The queries of verify, status and repair: fingerprints of store files, the quarantine, and the
// records of restored trees (docs/format.md, schemas 4 and 5; docs/integrity.md).
#include "meta/database.hpp"
#include "meta/restore_files.hpp"
#include "meta/statement.hpp"
#include "util/failpoint.hpp"

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

namespace treesnap {

using sql::Statement;

namespace {

// ino, size, mtime_ns, ctime_ns, mode from column `first` on: the one reader of a stamp, in
// fingerprints and in schema-4 restore_entries rows alike.
FileStamp read_stamp(const Statement& s, int first) {
  return {s.u64(first), s.u64(first + 1), s.i64(first + 2), s.i64(first + 3),
          static_cast<std::uint32_t>(s.i64(first + 4))};
}

// A row of k_fingerprint_columns.
Fingerprint read_fingerprint(const Statement& s) { return {s.text(0), s.blob(1), read_stamp(s, 2)}; }

constexpr const char* k_fingerprint_columns = "name, digest, ino, size, mtime_ns, ctime_ns, mode";
// Binds name, digest, then the stamp from column 3 (bind_stamp).
constexpr const char* k_put_fingerprint =
    "INSERT OR REPLACE INTO fingerprints(name, digest, ino, size, mtime_ns, ctime_ns, mode) VALUES(?, ?, ?, ?, ?, ?, ?)";

Statement& bind_stamp(Statement& s, int first, const FileStamp& f) {
  return s.bind(first, f.ino).bind(first + 1, f.size).bind(first + 2, f.mtime_ns).bind(first + 3, f.ctime_ns)
      .bind(first + 4, std::int64_t{f.mode});
}

// record_links' statement, for a transaction that is already open.
Result<void> follow_links(sqlite3* db, const std::vector<LinkStamp>& links) {
  Statement s(db, "UPDATE fingerprints SET ctime_ns = ? WHERE name = ? AND ino = ? AND size = ? AND "
                  "mtime_ns = ? AND ctime_ns = ? AND mode = ?");
  for (const auto& l : links) {
    s.bind(1, l.ctime_after).bind_text(2, l.name);
    TRY_VOID(bind_stamp(s, 3, l.before).run());
  }
  return {};
}

// The files of record `restore_id`: its packed blob, or for a record from schema 4 its rows.
Result<std::vector<RestoreEntryRecord>> read_restore_files(sqlite3* db, std::int64_t restore_id) {
  Statement packed(db, "SELECT entries FROM restore_files WHERE restore = ?");
  TRY(auto found, packed.bind(1, restore_id).step());
  if (found) return unpack_restore_files(packed.blob_view(0));
  Statement s(db, "SELECT path, ino, size, mtime_ns, ctime_ns, mode, strategy, digest FROM restore_entries "
                  "WHERE restore = ? ORDER BY path");
  s.bind(1, restore_id);
  return sql::collect_rows(s, [](const Statement& r) {
    return RestoreEntryRecord{r.blob(0), read_stamp(r, 1), static_cast<PlacedBy>(r.i64(6)), r.blob(7)};
  });
}

// Within an open transaction: the files of record `restore_id` lose the paths in `drop`, and
// `entries` replace the file of their path or are added; the result is written back as one
// packed blob (a schema-4 record's rows go). Read, changed and written in the one transaction,
// so a crash leaves the old record or the new one, never a mix.
Result<void> rewrite_restore_files(sqlite3* db, std::int64_t restore_id, const std::vector<RestoreEntryRecord>& entries,
                                   const std::vector<std::string>& drop) {
  TRY(auto old, read_restore_files(db, restore_id));
  // Per recorded file: kept as it is, dropped, or replaced by entries[i].
  constexpr std::size_t k_keep = SIZE_MAX, k_drop = SIZE_MAX - 1;
  std::vector<std::size_t> fate(old.size(), k_keep);
  std::unordered_map<std::string_view, std::size_t> by_path;
  by_path.reserve(old.size());
  for (std::size_t i = 0; i < old.size(); ++i) by_path.emplace(old[i].path, i);
  for (const auto& path : drop)
    if (auto it = by_path.find(path); it != by_path.end()) fate[it->second] = k_drop;
  std::vector<RestoreEntryRecord> all;
  all.reserve(old.size() + entries.size());
  std::vector<bool> placed(entries.size(), false);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (auto it = by_path.find(entries[i].path); it != by_path.end()) {
      fate[it->second] = i;
      placed[i] = true;
    }
  }
  for (std::size_t i = 0; i < old.size(); ++i) {
    if (fate[i] == k_keep) all.push_back(std::move(old[i]));
    else if (fate[i] != k_drop) all.push_back(entries[fate[i]]);
  }
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (!placed[i]) all.push_back(entries[i]);
  Statement rows(db, "DELETE FROM restore_entries WHERE restore = ?");
  TRY_VOID(rows.bind(1, restore_id).run());
  TRY(auto packed, pack_restore_files(all));
  Statement e(db, "INSERT OR REPLACE INTO restore_files(restore, entries) VALUES(?, ?)");
  return e.bind(1, restore_id).bind_blob(2, packed).run();
}

RestoreRecord read_restore(const Statement& s) {
  return {s.i64(0), s.text(1), s.text(2), s.blob(3), s.i64(4), s.u64(5), s.u64(6), s.u64(7), s.u64(8)};
}

constexpr const char* k_restore_columns = "id, target, snapshot, manifest, restored_ns, hardlinked, reflinked, copied, empty";

}  // namespace

Result<std::vector<Fingerprint>> Database::fingerprints() {
  Statement s(m_db, fmt::format("SELECT {} FROM fingerprints", k_fingerprint_columns).c_str());
  return sql::collect_rows(s, read_fingerprint);
}

Result<void> Database::each_object(const std::function<void(std::string_view, std::uint64_t)>& fn) {
  Statement s(m_db, "SELECT digest, size FROM objects ORDER BY digest");
  for (;;) {
    TRY(auto row, s.step());
    if (!row) return {};
    fn(s.blob_view(0), s.u64(1));
  }
}

Result<void> Database::each_fingerprint(
    const std::function<void(std::string_view, std::string_view, const FileStamp&)>& fn) {
  Statement s(m_db, fmt::format("SELECT {} FROM fingerprints ORDER BY name", k_fingerprint_columns).c_str());
  for (;;) {
    TRY(auto row, s.step());
    if (!row) return {};
    fn(s.text_view(0), s.blob_view(1), read_stamp(s, 2));
  }
}

Result<std::vector<Fingerprint>> Database::fingerprints_of_inode(std::uint64_t ino) {
  Statement s(m_db, fmt::format("SELECT {} FROM fingerprints WHERE ino = ?", k_fingerprint_columns).c_str());
  s.bind(1, ino);
  return sql::collect_rows(s, read_fingerprint);
}

// Only for objects that still have a row and no collector: verify and repair hash files listed
// earlier, and a gc may have claimed one since (the claim deletes its fingerprints), which left a
// row naming a file that was about to go.
Result<void> Database::put_fingerprints(const std::vector<Fingerprint>& rows) {
  if (rows.empty()) return {};
  return in_transaction([&]() -> Result<void> {
    Statement s(m_db, fmt::format("INSERT OR REPLACE INTO fingerprints({}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 "
                                  "WHERE EXISTS (SELECT 1 FROM objects WHERE digest = ?2) "
                                  "AND NOT EXISTS (SELECT 1 FROM collecting WHERE digest = ?2)",
                                  k_fingerprint_columns).c_str());
    for (const auto& f : rows) {
      s.bind_text(1, f.name).bind_blob(2, f.digest);
      TRY_VOID(bind_stamp(s, 3, f.stamp).run());
    }
    return {};
  });
}

Result<void> Database::put_published(const std::string& digest, const std::string& name, const FileStamp& stamp) {
  Statement s(m_db, k_put_fingerprint);
  s.bind_text(1, name).bind_blob(2, digest);
  TRY_VOID(bind_stamp(s, 3, stamp).run());
  Statement clear(m_db, "UPDATE objects SET quarantined_ns = 0 WHERE digest = ? AND quarantined_ns != 0");
  TRY_VOID(clear.bind_blob(1, digest).run());
  // The damaged file stays in quarantine/ until gc finds it has no row.
  Statement rows(m_db, "DELETE FROM quarantine WHERE digest = ? AND object = 1");
  return rows.bind_blob(1, digest).run();
}

Result<void> Database::record_links(const std::vector<LinkStamp>& links) {
  if (links.empty()) return {};
  return in_transaction([&] { return follow_links(m_db, links); });
}

Result<void> Database::add_quarantine(const QuarantineRecord& r) {
  return in_transaction([&]() -> Result<void> {
    Statement q(m_db, "INSERT OR REPLACE INTO quarantine(name, origin, object, digest, ino, quarantined_ns, reason) "
                      "VALUES(?, ?, ?, ?, ?, ?, ?)");
    q.bind_text(1, r.name).bind_text(2, r.origin).bind(3, std::int64_t{r.object}).bind_blob(4, r.digest);
    TRY_VOID(q.bind(5, r.ino).bind(6, r.quarantined_ns).bind_text(7, r.reason).run());
    Statement f(m_db, "DELETE FROM fingerprints WHERE name = ?");
    TRY_VOID(f.bind_text(1, r.origin).run());
    if (!r.object) return {};
    Statement o(m_db, "UPDATE objects SET quarantined_ns = ? WHERE digest = ?");
    return o.bind(1, r.quarantined_ns).bind_blob(2, r.digest).run();
  });
}

Result<std::vector<QuarantineRecord>> Database::quarantined() {
  Statement s(m_db, "SELECT name, origin, object, digest, ino, quarantined_ns, reason FROM quarantine ORDER BY name");
  return sql::collect_rows(s, [](const Statement& r) {
    return QuarantineRecord{r.text(0), r.text(1), r.blob(3), r.i64(2) != 0, r.u64(4), r.i64(5), r.text(6)};
  });
}

Result<void> Database::release_quarantine(const std::string& name, const Fingerprint& fingerprint) {
  return in_transaction([&]() -> Result<void> {
    Statement find(m_db, "SELECT object, digest FROM quarantine WHERE name = ?");
    TRY(auto row, find.bind_text(1, name).step());
    if (row && find.i64(0) != 0) {
      Statement o(m_db, "UPDATE objects SET quarantined_ns = 0 WHERE digest = ?");
      TRY_VOID(o.bind_blob(1, find.blob(1)).run());
    }
    find.reset();
    Statement d(m_db, "DELETE FROM quarantine WHERE name = ?");
    TRY_VOID(d.bind_text(1, name).run());
    Statement f(m_db, k_put_fingerprint);
    f.bind_text(1, fingerprint.name).bind_blob(2, fingerprint.digest);
    return bind_stamp(f, 3, fingerprint.stamp).run();
  });
}

// The digests go in a temporary table: the IN probes it once per ref of a single scan of refs
// (a query per digest was a scan of refs each, ~1 s at 10M refs).
Result<std::map<std::string, std::vector<SnapshotRecord>>> Database::snapshots_referencing(
    const std::vector<std::string>& digests) {
  std::map<std::string, std::vector<SnapshotRecord>> out;
  if (digests.empty()) return out;
  TRY_VOID(exec("CREATE TEMP TABLE IF NOT EXISTS wanted_digests(digest BLOB PRIMARY KEY) WITHOUT ROWID;"
                "DELETE FROM wanted_digests;"));
  Statement wanted(m_db, "INSERT OR IGNORE INTO wanted_digests(digest) VALUES(?)");
  for (const auto& d : digests) TRY_VOID(wanted.bind_blob(1, d).run());
  Statement s(m_db, "SELECT o.digest, r.snapshot FROM refs r JOIN objects o ON o.id = r.object "
                    "WHERE r.object IN (SELECT w.id FROM wanted_digests d JOIN objects w ON w.digest = d.digest)");
  TRY(auto refs, sql::collect_rows(s, [](const Statement& r) { return std::pair{r.blob(0), r.i64(1)}; }));
  TRY_VOID(exec("DELETE FROM wanted_digests"));
  TRY(auto all, list_snapshots());
  std::map<std::int64_t, const SnapshotRecord*> by_id;
  for (const auto& r : all) by_id.emplace(r.row_id, &r);
  for (const auto& [digest, id] : refs)
    if (auto it = by_id.find(id); it != by_id.end()) out[digest].push_back(*it->second);
  return out;
}

Result<std::optional<std::uint64_t>> Database::object_size(const std::string& digest) {
  Statement s(m_db, "SELECT size FROM objects WHERE digest = ?");
  TRY(auto row, s.bind_blob(1, digest).step());
  if (!row) return std::optional<std::uint64_t>{};
  return std::optional<std::uint64_t>{s.u64(0)};
}

Result<std::int64_t> Database::record_restore(const RestoreRecord& r, const std::vector<RestoreEntryRecord>& entries,
                                             const std::vector<LinkStamp>& links) {
  TRY(const std::string packed, pack_restore_files(entries));
  // As durable as the tree it describes, which the restore does not sync either: the commit skips
  // its fsync (the next checkpoint syncs it). A power cut may lose the record (status then knows
  // no restore there) or the fingerprints' new ctimes (verify --fast then re-hashes those files);
  // it cannot make either wrong. Saves ~35 ms on the Python stdlib.
  TRY_VOID(exec("PRAGMA synchronous=NORMAL"));
  auto recorded = in_transaction([&]() -> Result<std::int64_t> {
    Statement old(m_db, "DELETE FROM restores WHERE target = ?");  // the triggers drop its entries
    TRY_VOID(old.bind_text(1, r.target).run());
    Statement add(m_db, "INSERT INTO restores(target, snapshot, manifest, restored_ns, hardlinked, reflinked, copied, "
                        "empty) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    add.bind_text(1, r.target).bind_text(2, r.snapshot).bind_blob(3, r.manifest).bind(4, r.restored_ns);
    TRY_VOID(add.bind(5, r.hardlinked).bind(6, r.reflinked).bind(7, r.copied).bind(8, r.empty).run());
    const std::int64_t id = sqlite3_last_insert_rowid(m_db);
    Statement e(m_db, "INSERT INTO restore_files(restore, entries) VALUES(?, ?)");
    TRY_VOID(e.bind(1, id).bind_blob(2, packed).run());
    TRY_VOID(follow_links(m_db, links));  // one commit for the record and the fingerprints
    if (int err = failpoint::error("restore.record")) return std::unexpected(os_error(err, "record restore of " + r.target));
    return id;
  });
  TRY_VOID(exec("PRAGMA synchronous=FULL"));
  return recorded;
}

Result<std::optional<RestoreRecord>> Database::find_restore(const std::string& target) {
  Statement s(m_db, fmt::format("SELECT {} FROM restores WHERE target = ?", k_restore_columns).c_str());
  TRY(auto row, s.bind_text(1, target).step());
  if (!row) return std::optional<RestoreRecord>{};
  return std::optional<RestoreRecord>{read_restore(s)};
}

Result<std::vector<RestoreRecord>> Database::restores() {
  Statement s(m_db, fmt::format("SELECT {} FROM restores ORDER BY target", k_restore_columns).c_str());
  return sql::collect_rows(s, read_restore);
}

Result<void> Database::forget_restore(std::int64_t restore_id) {
  Statement s(m_db, "DELETE FROM restores WHERE id = ?");  // the trigger drops its entries
  return s.bind(1, restore_id).run();
}

Result<std::vector<RestoreEntryRecord>> Database::restore_entries(std::int64_t restore_id) {
  return read_restore_files(m_db, restore_id);
}

Result<void> Database::update_restore_entries(std::int64_t restore_id, const std::vector<RestoreEntryRecord>& entries) {
  if (entries.empty()) return {};
  return in_transaction([&] { return rewrite_restore_files(m_db, restore_id, entries, {}); });
}

Result<void> Database::amend_restore(std::int64_t restore_id, const RestoreRecord& r,
                                     const std::vector<RestoreEntryRecord>& entries, const std::vector<std::string>& drop,
                                     const std::vector<LinkStamp>& links) {
  // As record_restore: no fsync of its own, the tree it describes is not synced either.
  TRY_VOID(exec("PRAGMA synchronous=NORMAL"));
  auto amended = in_transaction([&]() -> Result<void> {
    Statement row(m_db, "UPDATE restores SET snapshot = ?, manifest = ?, restored_ns = ?, hardlinked = ?, reflinked = ?, "
                        "copied = ?, empty = ? WHERE id = ?");
    row.bind_text(1, r.snapshot).bind_blob(2, r.manifest).bind(3, r.restored_ns).bind(4, r.hardlinked);
    TRY_VOID(row.bind(5, r.reflinked).bind(6, r.copied).bind(7, r.empty).bind(8, restore_id).run());
    TRY_VOID(rewrite_restore_files(m_db, restore_id, entries, drop));
    TRY_VOID(follow_links(m_db, links));
    if (int err = failpoint::error("restore.record")) return std::unexpected(os_error(err, "amend restore record of " + r.target));
    return {};
  });
  TRY_VOID(exec("PRAGMA synchronous=FULL"));
  return amended;
}

Result<std::vector<TreeFile>> Database::tree_files_with(const std::string& digest) {
  std::vector<TreeFile> out;
  Statement s(m_db, "SELECT r.target, f.entries FROM restore_files f JOIN restores r ON r.id = f.restore");
  for (;;) {
    TRY(auto row, s.step());
    if (!row) break;
    TRY(auto entries, unpack_restore_files(s.blob_view(1), digest));
    for (auto& e : entries) out.push_back({s.text(0), std::move(e.path), e.placed, e.stamp.ino});
  }
  Statement old(m_db, "SELECT r.target, e.path, e.strategy, e.ino FROM restore_entries e JOIN restores r ON r.id = e.restore "
                      "WHERE e.digest = ?");
  old.bind_blob(1, digest);
  TRY(auto rows, sql::collect_rows(old, [](const Statement& r) {
    return TreeFile{r.text(0), r.blob(1), static_cast<PlacedBy>(r.i64(2)), r.u64(3)};
  }));
  out.insert(out.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
  std::sort(out.begin(), out.end(), [](const TreeFile& a, const TreeFile& b) {
    return std::tie(a.target, a.path) < std::tie(b.target, b.path);
  });
  return out;
}

}  // namespace treesnap
