// Garbage collection and usage. Phases, each timed under TREESNAP_TRACE:
//   roots:  forget dead leases; take over objects whose collector died mid-way
//   plan:   orphans no lease protects (O(orphans), from a partial index), then, for a size or
//           free-space target, whole snapshots least recently used first (O(their objects))
//   sweep:  evict the planned snapshots, then per batch of orphans: mark them collected in one
//           transaction that re-checks every condition, unlink their files with no lock held,
//           delete their rows
//   staging: stale files in tmp/;  full (opt-in): files no row records, O(store)
// Rules and their reasons: docs/format.md, "Garbage collection".
#pragma once

#include <string>

#include "meta/database.hpp"
#include "store/object_store.hpp"
#include "treesnap/store.hpp"

namespace treesnap {

struct FsSpace {
  std::uint64_t size = 0;  // used + available (df's view: root's reserve left out)
  std::uint64_t free = 0;  // available to unprivileged users (statvfs f_bavail)
};
Result<FsSpace> fs_space(int fd);

Result<GcReport> collect_garbage(const ObjectStore& store, const std::string& db_path, const GcOptions& options);

// The automatic collection's watermarks, percent of the store's file system (from Settings).
struct GcConfig {
  int high_watermark = 90;
  int low_watermark = 70;
};

Result<UsageReport> measure_usage(const ObjectStore& store, Database& db, const GcConfig& config,
                                  const UsageOptions& options);

}  // namespace treesnap
