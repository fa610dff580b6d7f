// Leases: how in-flight work tells garbage collection what it must not remove, without any
// store-wide lock (docs/format.md, "Leases").
//
// A lease is a row in `leases` (kind, pid, host, boot id, expiry) with a started_seq taken from
// the store's sequence. Garbage collection never removes an orphan whose orphaned_seq is at or
// after the started_seq of a live lease, so a lease protects every object that was live when it
// started (and later lost its last reference) and every orphan its holder `hold()`s. A lease is
// dead, and ignored and deleted by the next gc, when it has expired, or when it was taken on this
// host under another boot id or by a pid that no longer runs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "meta/database.hpp"

namespace treesnap {

// A lease lives this long unless renewed; its holder renews it every third of that.
inline constexpr std::int64_t k_lease_ttl_ns = 120'000'000'000;

// Whether a lease's holder is gone, judged from here (`host`, `boot`) at time `now`.
bool lease_dead(const LeaseRecord& lease, std::int64_t now, const std::string& host, const std::string& boot);

class Lease {
 public:
  // Opens a connection of its own to `db_path`, adds the row and starts renewing it. `kind` names
  // the work ("snapshot", "restore", "gc") in `treesnap gc` reports and in the table.
  static Result<std::unique_ptr<Lease>> acquire(const std::string& db_path, const std::string& kind);
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // Stops renewing and deletes the row (a crash leaves it to expire or to the dead-pid check).
  ~Lease();

  std::int64_t id() const { return m_record.id; }
  std::int64_t started_seq() const { return m_record.started_seq; }

  // Makes `digest` safe to rely on until the lease ends. True: the object is recorded and now
  // protected (live, or an orphan this lease holds). False: it is absent, after waiting for a
  // live collector to finish deleting it (or dropping the row of a dead one), so the caller must
  // store it anew. Thread-safe.
  Result<bool> hold(const std::string& digest);

 private:
  Lease(Database db, LeaseRecord record);
  void renew_loop(std::stop_token stop);

  std::mutex m_mutex;  // guards m_db
  Database m_db;
  LeaseRecord m_record;
  std::condition_variable_any m_wake;
  std::jthread m_renewer;
};

}  // namespace treesnap
