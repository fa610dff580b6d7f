#include "gc/collector.hpp"

#include <stdio.h>  // renameat2, RENAME_NOREPLACE
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "meta/lease.hpp"
#include "store/layout.hpp"
#include "util/failpoint.hpp"
#include "util/posix.hpp"
#include "util/thread_pool.hpp"
#include "util/trace.hpp"

namespace treesnap {
namespace {

// Orphans claimed (one UPDATE), unlinked and deleted (one DELETE) per round. Each round costs two
// synchronous commits; at 1,000 per round they were most of gc's time (20 rounds, 0.6 s for 20k
// orphans on the bench VM). A crash leaves at most a round in the "collecting" state, which the
// next gc finishes (claim_abandoned); a snapshot that wants one of those objects waits for the
// round's unlinks (~0.2 s per 20k objects here) instead of a 1,000-object round's.
constexpr std::size_t k_batch = 100'000;

// How much of the database gc maps for its reads: address space only. SQLite's usual ceiling
// (SQLITE_MAX_MMAP_SIZE, 2 GiB less 64 KiB), about four times a 1M-object store's database;
// pages beyond it are read as before.
constexpr std::uint64_t k_gc_map_bytes = 0x7fff0000;

// A claim at least this big checkpoints beside its unlinks (Collector::unlink_and_drop_rows).
constexpr std::size_t k_checkpoint_batch = 1'000;

// Threads unlinking a round's files. Unlinks in one ext4 journal serialise on it: 100k bare
// unlinkat calls (bench/gc_scale.sh's floor rows) gain little or nothing from a second thread on
// the 2-core bench VM, and lose with 4. gc's removals also stat, walk paths and look up variants,
// which do overlap: its unlink phase for 100k orphans took 1.75 s on 1 thread and 1.51 s on 2
// (medians of 3, interleaved, 400k-object store).
constexpr unsigned k_unlink_threads = 2;

// Blocks an inode gives back when its last name goes; 0 while other names (a restored tree's
// hardlinks) keep it alive. Reflinked extents shared with other files are counted too: the
// figure is an upper bound on file systems that clone.
std::uint64_t freed_if_unlinked(const struct stat& st) {
  return st.st_nlink == 1 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
}

// The variants of each object, found by listing its shard of variants/ once per run (variants
// are not recorded in the database: they are caches of an object with other metadata).
class VariantIndex {
 public:
  explicit VariantIndex(const ObjectStore& store) : m_store(store) {}

  Result<std::vector<std::string>> of(const std::string& digest) {
    std::string prefix = layout::variant_prefix(digest);
    std::string shard = prefix.substr(0, 2);
    auto it = m_shards.find(shard);
    if (it == m_shards.end()) {
      auto names = list_names(m_store.variants_fd(), shard);
      if (!names && names.error().code != ErrorCode::not_found) return std::unexpected(names.error());
      it = m_shards.emplace(shard, names ? std::move(*names) : std::vector<std::string>{}).first;
    }
    std::vector<std::string> out;
    for (const auto& n : it->second)
      if (n.starts_with(prefix)) out.push_back(shard + "/" + n);
    return out;
  }

 private:
  const ObjectStore& m_store;
  std::map<std::string, std::vector<std::string>> m_shards;
};

struct Removal {
  std::uint64_t freed = 0;
  std::uint64_t variants = 0;
};

// What removing an object and its variants frees, without removing anything.
Result<Removal> measure_removal(const ObjectStore& store, VariantIndex& variants, const std::string& digest) {
  Removal r;
  auto st = stat_at(store.objects_fd(), layout::object_name(digest));
  if (st) r.freed += freed_if_unlinked(*st);
  TRY(auto names, variants.of(digest));
  for (const auto& n : names) {
    auto vst = stat_at(store.variants_fd(), n);
    if (vst) r.freed += freed_if_unlinked(*vst);
    r.variants += 1;
  }
  return r;
}

Result<void> unlink_quietly(int dir_fd, const std::string& name) {
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT)
    return std::unexpected(os_error(errno, "gc: unlink " + name));
  return {};
}

// Variants first: a crash in between leaves an object whose variants are already gone, which a
// restore recreates, never a variant without its object.
Result<Removal> remove_object_files(const ObjectStore& store, VariantIndex& variants, const std::string& digest) {
  TRY(auto removal, measure_removal(store, variants, digest));
  TRY(auto names, variants.of(digest));
  for (const auto& n : names) TRY_VOID(unlink_quietly(store.variants_fd(), n));
  if (int err = failpoint::error("gc.unlink"))
    return std::unexpected(os_error(err, "gc: unlink " + layout::object_name(digest)));
  TRY_VOID(unlink_quietly(store.objects_fd(), layout::object_name(digest)));
  return removal;
}

// An object the victims reference: its refcount after their eviction, and what they drop.
struct VictimObject {
  std::string digest;
  std::int64_t refcount = 0;
  std::uint64_t disk_bytes = 0;
  std::int64_t dropped = 0;
  std::int64_t id_sum = 0;
};

struct Plan {
  std::vector<CollectCandidate> orphans;
  std::vector<std::pair<SnapshotRecord, EvictedSnapshot>> evictions;
  std::unordered_map<std::int64_t, VictimObject> victim_objects;  // by object id
};

std::uint64_t free_needed(const GcOptions& o, const FsSpace& fs) {
  auto pct = static_cast<std::uint64_t>(std::ceil(static_cast<double>(fs.size) * o.min_free_percent / 100.0));
  return std::max(o.min_free_bytes, pct);
}

class Collector {
 public:
  Collector(const ObjectStore& store, Database& db, Lease& lease, const GcOptions& options, GcReport& report)
      : m_store(store), m_db(db), m_lease(lease), m_options(options), m_report(report), m_variants(store) {}

  // Forgets dead leases; finishes collections their holders left half-done, and those of
  // collectors that stopped on an error.
  Result<void> roots() {
    TRY(auto all, m_db.leases());
    const auto now = now_ns();
    const auto host = host_name();
    const auto boot = boot_id();
    for (const auto& l : all) {
      if (l.id == m_lease.id()) continue;
      if (lease_dead(l, now, host, boot)) {
        TRY_VOID(m_db.remove_lease(l.id));
        m_report.leases_cleaned += 1;
      } else if (l.kind != "gc") {
        m_oldest_lease_ns = std::min(m_oldest_lease_ns, l.started_ns);
      }
    }
    if (m_options.dry_run) return {};
    TRY(auto abandoned, m_db.claim_abandoned(m_lease.id()));
    TRY_VOID(unlink_claimed(abandoned));
    return m_db.finish_collected(m_lease.id());
  }

  Result<Plan> plan(const UsageTotals& usage, const FsSpace& fs) {
    Plan plan;
    // Without a target the plan decides nothing: the sweep claims the orphans itself and reports
    // what their removal freed, so reading and stat'ing them here would only double the work.
    const std::uint64_t need = free_needed(m_options, fs);
    if (!m_options.dry_run && m_options.max_size == 0 && need == 0) return plan;
    TRY(plan.orphans, m_db.collectable_orphans(m_lease.id(), std::numeric_limits<std::int64_t>::max()));
    // What removal frees (a stat per object) decides only a free-space target and the dry run's
    // report; --max-size compares recorded sizes, and the sweep measures as it unlinks. Skipping
    // it took 100k stats out of the 1M-object bench's eviction.
    const bool measure = m_options.dry_run || need > 0;
    auto removal_of = [&](std::string_view digest) -> Result<Removal> {
      return measure ? measure_removal(m_store, m_variants, std::string(digest)) : Result<Removal>(Removal{});
    };
    std::uint64_t recorded = usage.disk_bytes;
    std::uint64_t free = fs.free;
    for (const auto& o : plan.orphans) {
      TRY(auto r, removal_of(o.digest));
      recorded -= std::min(recorded, o.disk_bytes);
      free += r.freed;
      m_planned.objects += 1;
      m_planned.bytes += o.disk_bytes;
      m_planned.freed += r.freed;
      m_planned.variants += r.variants;
    }
    auto met = [&] { return (m_options.max_size == 0 || recorded <= m_options.max_size) && free >= need; };
    if (met()) return plan;
    TRY(auto order, m_db.eviction_order());
    // Refcounts after the planned evictions, and the references the victims drop (for the eviction,
    // which need not count them again). Victims share most of their objects, so each object's
    // row is read once, when a victim first references it, not once per reference. A victim's
    // refs are read whole first, so the map's lookups run back to back rather than between
    // SQLite's steps: their time fell from about a third of the plan to a tenth.
    auto& remaining = plan.victim_objects;
    std::vector<std::int64_t> refs;
    for (auto& snap : order) {
      if (met()) break;
      refs.clear();
      TRY_VOID(m_db.each_ref_id(snap.row_id, [&](std::int64_t object) { refs.push_back(object); }));
      EvictedSnapshot ev{snap.name + ":" + snap.tag, to_hex(snap.manifest), snap.last_used_ns, 0, 0, 0};
      for (const auto id : refs) {
        auto it = remaining.find(id);
        if (it == remaining.end()) {
          TRY(auto object, m_db.object_counts(id));
          if (!object) continue;  // no row, no file: nothing to free
          it = remaining.emplace(id, VictimObject{std::move(object->digest), object->refcount, object->disk_bytes}).first;
        }
        it->second.dropped += 1;
        it->second.id_sum += snap.row_id;
        if (--it->second.refcount != 0) continue;
        TRY(auto removal, removal_of(it->second.digest));
        ev.objects += 1;
        ev.bytes += it->second.disk_bytes;
        ev.freed_bytes += removal.freed;
        m_planned.variants += removal.variants;
      }
      recorded -= std::min(recorded, ev.bytes);
      free += ev.freed_bytes;
      m_planned.objects += ev.objects;
      m_planned.bytes += ev.bytes;
      m_planned.freed += ev.freed_bytes;
      plan.evictions.emplace_back(std::move(snap), std::move(ev));
    }
    m_report.target_met = met();
    return plan;
  }

  void report_plan(const Plan& plan) {
    for (const auto& [snap, ev] : plan.evictions) m_report.evicted.push_back(ev);
    m_report.objects_removed = m_planned.objects;
    m_report.bytes_removed = m_planned.bytes;
    m_report.bytes_freed = m_planned.freed;
    m_report.variants_removed = m_planned.variants;
  }

  Result<void> sweep(const Plan& plan) {
    PhaseTimer timer("gc sweep");
    std::vector<std::pair<std::int64_t, std::int64_t>> victims;
    for (const auto& [snap, ev] : plan.evictions) victims.emplace_back(snap.row_id, snap.last_used_ns);
    std::vector<Database::DroppedRefs> dropped;
    dropped.reserve(plan.victim_objects.size());
    for (const auto& [id, object] : plan.victim_objects) dropped.push_back({id, object.dropped, object.id_sum});
    // The first claim commits with the eviction: one synchronous commit instead of two.
    TRY(auto first, m_db.evict_and_claim(victims, std::move(dropped), m_lease.id(), k_batch));
    for (std::size_t i = 0; i < first.evicted.size(); ++i)
      if (first.evicted[i]) m_report.evicted.push_back(plan.evictions[i].second);
    timer.phase(victims.empty() ? "claim" : "evict and claim");
    for (auto batch = std::move(first.claimed); !batch.empty();) {
      TRY_VOID(unlink_and_drop_rows(batch));
      timer.phase("unlink");
      TRY_VOID(m_db.finish_collected(m_lease.id()));
      timer.phase("delete");
      TRY(batch, m_db.claim_orphans(m_lease.id(), k_batch));
      timer.phase("claim");
    }
    return {};
  }

  // The files go on worker threads while this thread deletes the batch's `objects` rows and
  // checkpoints: the unlinks wait in the kernel (ext4's journal, inode tables) and the database
  // work is SQLite's own CPU and writes, so on the 2-core bench VM they overlap. The deletion
  // rewrites most pages of `objects` at 1M objects (0.6-0.9 s for 100k rows); its commit leaves
  // them in the WAL (defer_checkpoints) and the checkpoint copies them into the database file
  // while the unlinks go on. A failed checkpoint, or a small batch's pages, are left to the next
  // commit's auto-checkpoint (on any connection but this one).
  Result<void> unlink_and_drop_rows(const std::vector<CollectCandidate>& batch) {
    Result<void> unlinked;
    Result<void> dropped;
    {
      std::jthread unlinker([&] { unlinked = unlink_claimed(batch); });
      dropped = m_db.drop_claimed_rows(m_lease.id());
      if (dropped && batch.size() >= k_checkpoint_batch) (void)m_db.checkpoint();
    }
    TRY_VOID(unlinked);
    return dropped;
  }

  // Files in tmp/ older than the grace period whose writer (the pid in the name) is gone.
  Result<void> staging() {
    TRY(auto names, list_names(m_store.staging_fd(), "."));
    const std::int64_t cutoff = now_ns() - m_options.grace_seconds * 1'000'000'000;
    for (const auto& n : names) {
      auto st = stat_at(m_store.staging_fd(), n);
      const long owner = layout::staging_owner(n);
      if (!st || (owner != 0 && process_alive(owner))) continue;
      if (auto origin = layout::gc_aside_origin(n)) {  // a killed gc --full's: back where it was
        if (!m_options.dry_run) TRY_VOID(put_back(n, *origin));
        continue;
      }
      if (to_ns(st->st_mtim) > cutoff) continue;
      m_report.staging_removed += 1;
      m_report.staging_bytes += freed_if_unlinked(*st);
      if (m_options.dry_run) continue;
      if (S_ISDIR(st->st_mode)) TRY_VOID(remove_tree(m_store.staging_fd(), n));
      else TRY_VOID(unlink_quietly(m_store.staging_fd(), n));
    }
    return {};
  }

  // Files in quarantine/ whose row is gone: released (an intact copy was published anew) or their
  // object collected. A file newer than the grace period (by ctime: the move into quarantine sets
  // it) is kept, since verify moves the file before it writes the row. Restore records of trees
  // that no longer exist go too.
  Result<void> quarantine() {
    TRY(auto rows, m_db.quarantined());
    std::set<std::string> recorded;
    for (const auto& r : rows) recorded.insert(r.name);
    TRY(auto names, list_names(m_store.quarantine_fd(), "."));
    const std::int64_t cutoff = now_ns() - m_options.grace_seconds * 1'000'000'000;
    for (const auto& n : names) {
      auto st = stat_at(m_store.quarantine_fd(), n);
      if (!st || recorded.contains(n) || to_ns(st->st_ctim) > cutoff) continue;
      m_report.quarantine_removed += 1;
      m_report.bytes_freed += freed_if_unlinked(*st);
      if (!m_options.dry_run) TRY_VOID(unlink_quietly(m_store.quarantine_fd(), n));
    }
    TRY(auto restores, m_db.restores());
    for (const auto& r : restores) {
      struct stat st {};
      const int rc = ::stat(r.target.c_str(), &st);
      if (rc == 0 && S_ISDIR(st.st_mode)) continue;
      if (rc != 0 && errno != ENOENT && errno != ENOTDIR) continue;  // unreachable now, not gone
      m_report.restore_records_removed += 1;
      if (!m_options.dry_run) TRY_VOID(m_db.forget_restore(r.id));
    }
    return {};
  }

  // --full: files under objects/ and variants/ that no row records, older than the grace period.
  // A running snapshot may rely on such a file before its row exists: publish found the name
  // taken by the same bytes (a killed run's leftover) and kept it, and the row comes with the
  // commit. Deleting by name after a check would race that, whatever the check. So the sweep runs
  // only while no other lease is live, and moves each file aside into tmp/ first: if a lease
  // began meanwhile (usage.seq moved, and a lease is taken before anything is published), the
  // file goes back and the sweep stops; a snapshot that starts after the move finds the name
  // free and links its own copy. A gc killed in between leaves the file in tmp/ under a name
  // that says where it came from, and staging() puts it back.
  Result<void> unrecorded() {
    const std::int64_t cutoff = now_ns() - m_options.grace_seconds * 1'000'000'000;
    TRY(const auto start_seq, m_db.sequence());
    TRY(auto all, m_db.leases());
    for (const auto& l : all)
      if (l.id != m_lease.id() && l.kind != "gc") return {};  // busy: left for a gc --full on a quiet store
    for (const auto& shard : layout::shard_names()) {
      for (const auto top : {layout::k_objects, layout::k_variants}) {
        const int dir = top == layout::k_objects ? m_store.objects_fd() : m_store.variants_fd();
        auto names = list_names(dir, shard);
        if (!names) continue;
        for (const auto& n : *names) {
          std::string digest = layout::digest_from_object_name(shard, std::string_view(n).substr(0, n.find('.')));
          if (digest.empty()) continue;  // not named by treesnap: left alone
          TRY(auto recorded, m_db.is_recorded(digest));
          if (recorded) continue;
          std::string name = shard + "/" + n;
          auto st = stat_at(dir, name);
          if (!st || to_ns(st->st_ctim) > cutoff) continue;
          if (!m_options.dry_run) {
            TRY(auto removed, remove_unrecorded(dir, top, name, start_seq));
            if (!removed) return {};
          }
          m_report.unrecorded_removed += 1;
          m_report.unrecorded_bytes += freed_if_unlinked(*st);
        }
      }
    }
    return {};
  }

 private:
  // EEXIST: the name holds a newer copy; the aside one goes.
  Result<void> put_back(const std::string& aside, const std::pair<std::string_view, std::string>& origin) {
    const int dir = origin.first == layout::k_objects ? m_store.objects_fd() : m_store.variants_fd();
    if (::renameat2(m_store.staging_fd(), aside.c_str(), dir, origin.second.c_str(), RENAME_NOREPLACE) != 0 &&
        errno != EEXIST && errno != ENOENT)
      return std::unexpected(os_error(errno, "gc: move back " + origin.second));
    return unlink_quietly(m_store.staging_fd(), aside);
  }

  // Moves `name` aside, checks that no lease began since `start_seq`, deletes it. False (and the
  // file back in place, or a fresh copy there) when a lease began.
  Result<bool> remove_unrecorded(int dir, std::string_view top, const std::string& name, std::int64_t start_seq) {
    const std::string aside = layout::gc_aside_name(::getpid(), top, name);
    if (::renameat(dir, name.c_str(), m_store.staging_fd(), aside.c_str()) != 0) {
      if (errno == ENOENT) return true;  // gone already
      return std::unexpected(os_error(errno, "gc: move aside " + name));
    }
    if (int err = failpoint::error("gc.after_aside")) return std::unexpected(os_error(err, "gc: move aside " + name));
    TRY(auto seq, m_db.sequence());
    if (seq == start_seq) {
      TRY_VOID(unlink_quietly(m_store.staging_fd(), aside));
      return true;
    }
    // EEXIST: a new snapshot already linked its own copy under the name; ours goes.
    if (::renameat2(m_store.staging_fd(), aside.c_str(), dir, name.c_str(), RENAME_NOREPLACE) != 0 && errno != EEXIST)
      return std::unexpected(os_error(errno, "gc: move back " + name));
    TRY_VOID(unlink_quietly(m_store.staging_fd(), aside));
    return false;
  }

  // The files go shard by shard on several threads: unlinks in different directories take
  // different inode locks, and one thread's unlinkat wait for the journal overlaps another's
  // system call (docs/BENCHMARKS.md, "GC at scale", has the floor this runs against). Each shard
  // lists its own variants, so the threads share nothing but the failpoints (atomic).
  // Their rows go after (Database::finish_collected), once every file is gone.
  Result<void> unlink_claimed(const std::vector<CollectCandidate>& claimed) {
    std::vector<std::vector<const CollectCandidate*>> shards(256);
    for (const auto& c : claimed) shards[layout::shard_of(c.digest)].push_back(&c);
    std::vector<Totals> done(shards.size());
    auto removed = parallel_for(shards.size(), k_unlink_threads, 1, [&](std::size_t shard) -> Result<void> {
      VariantIndex variants(m_store);
      for (const auto* c : shards[shard]) {
        TRY(auto removal, remove_object_files(m_store, variants, c->digest));
        done[shard].objects += 1;
        done[shard].bytes += c->disk_bytes;
        done[shard].freed += removal.freed;
        done[shard].variants += removal.variants;
      }
      return {};
    });
    for (const auto& d : done) {  // what went before a failure is reported too
      m_report.objects_removed += d.objects;
      m_report.bytes_removed += d.bytes;
      m_report.bytes_freed += d.freed;
      m_report.variants_removed += d.variants;
    }
    TRY_VOID(removed);
    if (int err = failpoint::error("gc.after_unlink")) return std::unexpected(os_error(err, "gc: delete collected rows"));
    return {};
  }

  struct Totals {
    std::uint64_t objects = 0, bytes = 0, freed = 0, variants = 0;
  };
  const ObjectStore& m_store;
  Database& m_db;
  Lease& m_lease;
  const GcOptions& m_options;
  GcReport& m_report;
  VariantIndex m_variants;
  Totals m_planned;
  std::int64_t m_oldest_lease_ns = std::numeric_limits<std::int64_t>::max();
};

}  // namespace

Result<FsSpace> fs_space(int fd) {
  struct statvfs vfs {};
  if (::fstatvfs(fd, &vfs) != 0) return std::unexpected(os_error(errno, "statvfs store"));
  // As df counts it: blocks reserved for root are neither used nor available, so a file system
  // is "90% full" when used / (used + available) is 0.9, and freeing moves bytes between the two.
  const std::uint64_t used = static_cast<std::uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
  const std::uint64_t available = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  return FsSpace{used + available, available};
}

Result<GcReport> collect_garbage(const ObjectStore& store, const std::string& db_path, const GcOptions& options) {
  if (options.min_free_percent < 0 || options.min_free_percent > 100 || options.grace_seconds < 0)
    return std::unexpected(make_error(ErrorCode::invalid, "gc: min-free percent must be 0-100 and the grace period not negative"));
  const std::int64_t start = now_ns();
  PhaseTimer timer("gc");
  TRY(auto lease, Lease::acquire(db_path, "gc"));
  TRY(auto db, Database::open(db_path, false));
  GcReport report;
  report.dry_run = options.dry_run;
  TRY_VOID(db.defer_checkpoints());  // the sweep checkpoints beside its unlinks
  // The plan's scan of the victims' refs: 1.25 s -> 0.75 s at 1M objects (146 victims, 1.46M refs).
  TRY_VOID(db.map_for_reads(k_gc_map_bytes));
  Collector collector(store, db, *lease, options, report);
  TRY_VOID(collector.roots());
  timer.phase("roots");

  TRY(auto before, db.usage());
  TRY(auto fs, fs_space(store.root_fd()));
  report.store_bytes_before = before.disk_bytes;
  report.fs_free_before = fs.free;
  // One read transaction for the plan: one lock for its many lookups instead of one each, and
  // one view of the store.
  TRY_VOID(db.begin_read());
  auto planned = collector.plan(before, fs);
  (void)db.end_read();
  TRY(auto plan, std::move(planned));
  timer.phase("plan");

  if (options.dry_run) {
    collector.report_plan(plan);
    report.store_bytes_after = before.disk_bytes - std::min(before.disk_bytes, report.bytes_removed);
    report.fs_free_after = fs.free + report.bytes_freed;
    report.orphans_kept = before.orphan_objects - std::min<std::uint64_t>(before.orphan_objects, plan.orphans.size());
  } else {
    TRY_VOID(collector.sweep(plan));
    timer.phase("sweep");
    TRY(auto after, db.usage());
    TRY(auto fs_after, fs_space(store.root_fd()));
    report.store_bytes_after = after.disk_bytes;
    report.fs_free_after = fs_after.free;
    report.orphans_kept = after.orphan_objects;
  }
  TRY_VOID(collector.staging());
  timer.phase("staging");
  TRY_VOID(collector.quarantine());
  timer.phase("quarantine");
  if (options.full) {
    TRY_VOID(collector.unrecorded());
    timer.phase("full");
  }
  report.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return report;
}

Result<UsageReport> measure_usage(const ObjectStore& store, Database& db, const GcConfig& config,
                                  const UsageOptions& options) {
  const std::int64_t start = now_ns();
  UsageReport report;
  TRY_VOID(db.begin_read());  // one consistent view of the totals and the snapshot rows
  auto read = [&]() -> Result<void> {
    TRY(auto totals, db.usage());
    TRY(auto snapshots, db.list_snapshots());
    std::stable_sort(snapshots.begin(), snapshots.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
      return a.last_used_ns != b.last_used_ns ? a.last_used_ns < b.last_used_ns : a.row_id < b.row_id;
    });
    report.objects = totals.objects;
    report.store_bytes = totals.disk_bytes;
    report.orphan_objects = totals.orphan_objects;
    report.orphan_bytes = totals.orphan_bytes;
    std::uint64_t unique = 0;
    for (const auto& s : snapshots) {
      report.snapshots.push_back({s.name + ":" + s.tag, to_hex(s.manifest), s.pinned, s.last_used_ns,
                                  s.unique_objects, s.unique_bytes});
      unique += s.unique_bytes;
    }
    report.shared_bytes = totals.disk_bytes - std::min(totals.disk_bytes, totals.orphan_bytes + unique);
    if (options.exact) {
      report.exact = true;
      TRY(auto all, db.all_objects());
      for (const auto& o : all) {
        auto st = stat_at(store.objects_fd(), layout::object_name(o.digest));
        if (st && st->st_nlink > 1) report.linked_outside_bytes += static_cast<std::uint64_t>(st->st_blocks) * 512;
      }
    }
    return {};
  }();
  (void)db.end_read();
  if (!read) return std::unexpected(read.error());
  TRY(auto fs, fs_space(store.root_fd()));
  report.fs_size = fs.size;
  report.fs_free = fs.free;
  report.high_watermark = config.high_watermark;
  report.low_watermark = config.low_watermark;
  report.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return report;
}

}  // namespace treesnap
