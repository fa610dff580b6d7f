// The queries of garbage collection, eviction, leases and usage. Every figure comes from columns
// that triggers keep current (meta/schema.cpp), so none of these scans the whole store.
#include <limits>

#include "meta/database.hpp"
#include "meta/statement.hpp"

namespace treesnap {

using sql::Statement;

namespace {

// The barrier: an orphan is protected while a lease that started at or before its orphaning is
// alive. Collectors' own leases protect nothing (two collectors must not block each other).
constexpr const char* k_barrier =
    "(SELECT coalesce(min(started_seq), 9223372036854775807) FROM leases WHERE id != ?1 AND kind != 'gc')";

// An orphan row whose object no collector has claimed yet (claim_orphans leaves the row in
// `objects` until drop_claimed_rows).
constexpr const char* k_not_claimed = "NOT EXISTS (SELECT 1 FROM collecting c WHERE c.digest = objects.digest)";

LeaseRecord read_lease(const Statement& s) {
  return {s.i64(0), s.text(1), s.i64(2), s.text(3), s.text(4), s.i64(5), s.i64(6), s.i64(7)};
}

}  // namespace

Result<UsageTotals> Database::usage() {
  Statement s(m_db, "SELECT objects, disk_bytes, orphan_objects, orphan_bytes FROM usage WHERE id = 0");
  TRY(auto row, s.step());
  if (!row) return std::unexpected(make_error(ErrorCode::corrupt, "database: the usage row is missing"));
  return UsageTotals{s.u64(0), s.u64(1), s.u64(2), s.u64(3)};
}

Result<std::vector<SnapshotRecord>> Database::eviction_order() {
  std::vector<SnapshotRecord> out;
  TRY(auto all, list_snapshots());
  for (auto& r : all)
    if (!r.pinned) out.push_back(std::move(r));
  std::stable_sort(out.begin(), out.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
    return a.last_used_ns != b.last_used_ns ? a.last_used_ns < b.last_used_ns : a.row_id < b.row_id;
  });
  return out;
}

Result<void> Database::each_ref(std::int64_t row_id, const std::function<void(std::string_view)>& fn) {
  Statement s(m_db, "SELECT o.digest FROM refs r JOIN objects o ON o.id = r.object WHERE r.snapshot = ?");
  s.bind(1, row_id);
  for (;;) {
    TRY(auto row, s.step());
    if (!row) return {};
    fn(s.blob_view(0));
  }
}

Result<void> Database::each_ref_id(std::int64_t row_id, const std::function<void(std::int64_t)>& fn) {
  Statement s(m_db, "SELECT object FROM refs WHERE snapshot = ?");
  s.bind(1, row_id);
  for (;;) {
    TRY(auto row, s.step());
    if (!row) return {};
    fn(s.i64(0));
  }
}

// All victims in one transaction: one synchronous commit instead of one per snapshot (26 commits
// took 2.3 s of a 2.9 s eviction on a 200k-object store), and their refs removed as one set.
Result<std::vector<bool>> Database::evict_snapshots(const std::vector<std::pair<std::int64_t, std::int64_t>>& victims,
                                                    std::vector<DroppedRefs> dropped) {
  return in_transaction([&]() -> Result<std::vector<bool>> {
    std::vector<bool> out;
    std::vector<std::int64_t> still;
    Statement check(m_db, "SELECT 1 FROM snapshots WHERE id = ? AND pinned = 0 AND last_used_ns = ?");
    for (const auto& [row_id, last_used_ns] : victims) {
      // Re-checked under the write lock: a pin or a use since the plan was made wins.
      TRY(auto row, check.bind(1, row_id).bind(2, last_used_ns).step());
      check.reset();
      out.push_back(row);
      if (row) still.push_back(row_id);
    }
    if (still.empty()) return out;
    const bool all_go = still.size() == victims.size() && !dropped.empty();
    TRY_VOID(remove_snapshots(still, all_go ? &dropped : nullptr));
    return out;
  });
}

Result<Database::EvictedAndClaimed> Database::evict_and_claim(
    const std::vector<std::pair<std::int64_t, std::int64_t>>& victims, std::vector<DroppedRefs> dropped,
    std::int64_t self, std::size_t limit) {
  return in_transaction([&]() -> Result<EvictedAndClaimed> {
    TRY(auto evicted, evict_snapshots(victims, std::move(dropped)));
    TRY(auto claimed, claim_orphans(self, limit));
    return EvictedAndClaimed{std::move(evicted), std::move(claimed)};
  });
}

Result<LeaseRecord> Database::add_lease(const std::string& kind, std::int64_t pid, const std::string& host,
                                        const std::string& boot, std::int64_t now, std::int64_t expires) {
  return in_transaction([&]() -> Result<LeaseRecord> {
    TRY_VOID(exec("UPDATE usage SET seq = seq + 1 WHERE id = 0"));
    Statement seq(m_db, "SELECT seq FROM usage WHERE id = 0");
    TRY(auto row, seq.step());
    if (!row) return std::unexpected(make_error(ErrorCode::corrupt, "database: the usage row is missing"));
    // The id is the sequence number, never reused: objects.collector names a gc by its lease id,
    // and a rowid would be handed again to the next lease once the highest row is deleted, so a
    // new restore or gc took over the identity of a collector that had stopped half-way, and
    // its claimed rows were neither waited for correctly nor ever finished.
    LeaseRecord lease{seq.i64(0), kind, pid, host, boot, seq.i64(0), now, expires};
    Statement insert(m_db, "INSERT INTO leases(id, kind, pid, host, boot_id, started_seq, started_ns, expires_ns) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bind(1, lease.id).bind_text(2, kind).bind(3, pid).bind_text(4, host).bind_text(5, boot);
    TRY_VOID(insert.bind(6, lease.started_seq).bind(7, now).bind(8, expires).run());
    return lease;
  });
}

Result<void> Database::renew_lease(std::int64_t id, std::int64_t expires) {
  Statement s(m_db, "UPDATE leases SET expires_ns = ? WHERE id = ?");
  return s.bind(1, expires).bind(2, id).run();
}

Result<void> Database::remove_lease(std::int64_t id) {
  Statement s(m_db, "DELETE FROM leases WHERE id = ?");
  return s.bind(1, id).run();
}

Result<std::vector<LeaseRecord>> Database::leases() {
  Statement s(m_db, "SELECT id, kind, pid, host, boot_id, started_seq, started_ns, expires_ns FROM leases ORDER BY id");
  return sql::collect_rows(s, read_lease);
}

Result<ObjectState> Database::hold_object(const std::string& digest) {
  return in_transaction([&]() -> Result<ObjectState> {
    Statement s(m_db, fmt::format("UPDATE objects SET orphaned_seq = (SELECT seq FROM usage WHERE id = 0) "
                                  "WHERE digest = ? AND refcount = 0 AND {}", k_not_claimed).c_str());
    TRY_VOID(s.bind_blob(1, digest).run());
    if (sqlite3_changes(m_db) > 0) return ObjectState::orphan;
    return object_state(digest);
  });
}

Result<std::optional<std::int64_t>> Database::collector_of(const std::string& digest) {
  Statement s(m_db, "SELECT collector FROM collecting WHERE digest = ?");
  TRY(auto row, s.bind_blob(1, digest).step());
  if (!row) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{s.i64(0)};
}

Result<void> Database::drop_abandoned(const std::string& digest, std::int64_t dead_collector) {
  return in_transaction([&]() -> Result<void> {
    Statement s(m_db, "DELETE FROM collecting WHERE digest = ? AND collector = ?");
    TRY_VOID(s.bind_blob(1, digest).bind(2, dead_collector).run());
    if (sqlite3_changes(m_db) == 0) return {};
    // The claim already took the object out of the usage row: its row goes without triggers.
    sql::TriggersOff off(m_db);
    Statement row(m_db, "DELETE FROM objects WHERE digest = ?");
    return row.bind_blob(1, digest).run();
  });
}

Result<std::vector<CollectCandidate>> Database::orphans_query(std::int64_t self, std::size_t limit) {
  std::string text = fmt::format("SELECT digest, disk_bytes FROM objects WHERE refcount = 0 AND orphaned_seq < {} "
                                 "AND {} ORDER BY orphaned_seq LIMIT ?2", k_barrier, k_not_claimed);
  Statement s(m_db, text.c_str());
  s.bind(1, self).bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
  return sql::collect_rows(s, [](const Statement& r) {
    return CollectCandidate{r.blob(0), r.u64(1)};
  });
}

Result<std::vector<CollectCandidate>> Database::collectable_orphans(std::int64_t self, std::size_t limit) {
  return orphans_query(self, limit);
}

// One statement copies the whole batch into `collecting`: the barrier is evaluated once, inside the
// INSERT, so the claim re-checks every condition under the write lock. What deleting the rows'
// triggers would do follows as set statements: one update of the usage row instead of one per
// object, and the batch's fingerprint and quarantine rows. The `objects` rows themselves go in
// drop_claimed_rows, beside the unlinks: 100k deletions at random digests rewrite most pages of
// a 1M-object table, about two thirds of this transaction's time when it held them.
Result<std::vector<CollectCandidate>> Database::claim_orphans(std::int64_t self, std::size_t limit) {
  return in_transaction([&]() -> Result<std::vector<CollectCandidate>> {
    std::string text = fmt::format("INSERT INTO collecting(digest, collector, disk_bytes) SELECT digest, ?1, disk_bytes "
                                   "FROM objects WHERE refcount = 0 AND orphaned_seq < {} AND {} "
                                   "ORDER BY orphaned_seq LIMIT ?2 RETURNING digest, disk_bytes",
                                   k_barrier, k_not_claimed);
    Statement mark(m_db, text.c_str());
    mark.bind(1, self).bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
    TRY(auto claimed, sql::collect_rows(mark, [](const Statement& r) {
      return CollectCandidate{r.blob(0), r.u64(1)};
    }));
    if (claimed.empty()) return claimed;
    std::uint64_t bytes = 0;
    for (const auto& c : claimed) bytes += c.disk_bytes;
    Statement usage(m_db, "UPDATE usage SET objects = objects - ?1, disk_bytes = disk_bytes - ?2, "
                          "orphan_objects = orphan_objects - ?1, orphan_bytes = orphan_bytes - ?2 WHERE id = 0");
    TRY_VOID(usage.bind(1, static_cast<std::int64_t>(claimed.size())).bind(2, bytes).run());
    for (const char* table : {"fingerprints", "quarantine"}) {
      Statement gone(m_db, fmt::format("DELETE FROM {} WHERE digest IN (SELECT digest FROM collecting WHERE collector = ?)",
                                       table).c_str());
      TRY_VOID(gone.bind(1, self).run());
    }
    return claimed;
  });
}

Result<void> Database::drop_claimed_rows(std::int64_t self) {
  return in_transaction([&]() -> Result<void> {
    sql::TriggersOff off(m_db);  // the claim has taken them out of the usage row
    Statement rows(m_db, "DELETE FROM objects WHERE digest IN (SELECT digest FROM collecting WHERE collector = ?)");
    return rows.bind(1, self).run();
  });
}

Result<std::vector<CollectCandidate>> Database::claim_abandoned(std::int64_t self) {
  return in_transaction([&]() -> Result<std::vector<CollectCandidate>> {
    std::vector<CollectCandidate> out;
    constexpr const char* k_abandoned = "collector != ?1 AND collector NOT IN (SELECT id FROM leases)";
    Statement find(m_db, fmt::format("SELECT digest, disk_bytes FROM collecting WHERE {}", k_abandoned).c_str());
    find.bind(1, self);
    TRY(out, sql::collect_rows(find, [](const Statement& r) { return CollectCandidate{r.blob(0), r.u64(1)}; }));
    if (out.empty()) return out;
    Statement take(m_db, fmt::format("UPDATE collecting SET collector = ?1 WHERE {}", k_abandoned).c_str());
    TRY_VOID(take.bind(1, self).run());
    TRY_VOID(drop_claimed_rows(self));  // rows a collector that died before dropping them left
    return out;
  });
}

Result<void> Database::finish_collected(std::int64_t self) {
  return in_transaction([&]() -> Result<void> {
    Statement s(m_db, "DELETE FROM collecting WHERE collector = ?");
    return s.bind(1, self).run();
  });
}

Result<std::int64_t> Database::sequence() {
  Statement s(m_db, "SELECT seq FROM usage WHERE id = 0");
  TRY(auto row, s.step());
  if (!row) return std::unexpected(make_error(ErrorCode::corrupt, "database: the usage row is missing"));
  return s.i64(0);
}

Result<bool> Database::is_recorded(const std::string& digest) {
  Statement s(m_db, "SELECT 1 FROM objects WHERE digest = ?1 UNION ALL SELECT 1 FROM collecting WHERE digest = ?1");
  return s.bind_blob(1, digest).step();
}

}  // namespace treesnap
