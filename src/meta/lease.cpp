#include "meta/lease.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "util/posix.hpp"

namespace treesnap {

bool lease_dead(const LeaseRecord& lease, std::int64_t now, const std::string& host, const std::string& boot) {
  if (lease.expires_ns < now) return true;
  if (lease.host != host) return false;  // another machine sharing the store: only expiry tells
  if (!boot.empty() && lease.boot_id != boot) return true;
  return !process_alive(lease.pid);
}

Result<std::unique_ptr<Lease>> Lease::acquire(const std::string& db_path, const std::string& kind) {
  TRY(auto db, Database::open(db_path, false));
  // A lease only matters while its holder runs, so its writes need not reach the disk before
  // commit returns: NORMAL in WAL mode skips the fsync and still never corrupts the database.
  TRY_VOID(db.set_synchronous_normal());
  const std::int64_t now = now_ns();
  TRY(auto record, db.add_lease(kind, ::getpid(), host_name(), boot_id(), now, now + k_lease_ttl_ns));
  return std::unique_ptr<Lease>(new Lease(std::move(db), std::move(record)));
}

Lease::Lease(Database db, LeaseRecord record) : m_db(std::move(db)), m_record(std::move(record)) {
  m_renewer = std::jthread([this](std::stop_token stop) { renew_loop(stop); });
}

Lease::~Lease() {
  m_renewer.request_stop();
  m_wake.notify_all();
  if (m_renewer.joinable()) m_renewer.join();
  std::lock_guard lock(m_mutex);
  (void)m_db.remove_lease(m_record.id);
}

void Lease::renew_loop(std::stop_token stop) {
  const auto period = std::chrono::nanoseconds(k_lease_ttl_ns / 3);
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_wake.wait_for(lock, stop, period, [] { return false; });
    if (stop.stop_requested()) return;
    // A failed renewal is retried at the next period; two misses in a row let the lease expire,
    // which only ever makes gc more careful about nothing (the holder's work may then race gc).
    (void)m_db.renew_lease(m_record.id, now_ns() + k_lease_ttl_ns);
  }
}

Result<bool> Lease::hold(const std::string& digest) {
  auto delay = std::chrono::milliseconds(1);
  for (;;) {
    std::unique_lock lock(m_mutex);
    TRY(auto state, m_db.hold_object(digest));
    if (state == ObjectState::live || state == ObjectState::orphan || state == ObjectState::quarantined) return true;
    if (state == ObjectState::absent) return false;
    // Being collected: wait for the collector, unless it died mid-way.
    TRY(auto collector, m_db.collector_of(digest));
    if (collector) {
      TRY(auto all, m_db.leases());
      auto it = std::find_if(all.begin(), all.end(), [&](const LeaseRecord& l) { return l.id == *collector; });
      if (it == all.end() || lease_dead(*it, now_ns(), host_name(), boot_id())) {
        // Read the row again rather than return "absent": another gc may have taken the dead
        // collector's rows over since (roots(), claim_abandoned), and then drop_abandoned
        // deleted nothing and that gc is about to unlink the file.
        TRY_VOID(m_db.drop_abandoned(digest, *collector));
        continue;
      }
    }
    lock.unlock();
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(100));
  }
}

}  // namespace treesnap
