#include "restore/probe.hpp"

#include "store/fs_probe.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

ProbeReport to_report(const ProbeRecord& r, bool fresh) {
  return {r.store_fs, r.target_fs, r.store_fsid, r.target_fsid, r.link_errno, r.reflink_errno,
          r.copy_range_errno, r.probed_ns, fresh, false};
}

}  // namespace

Result<ProbeReport> pair_probe(Database& db, const ObjectStore& store, int target_dir_fd, ProbeMode mode) {
  TRY(auto store_fs, fs_identity(store.staging_fd()));
  TRY(auto target_fs, fs_identity(target_dir_fd));
  if (mode == ProbeMode::recorded) {
    TRY(auto known, db.find_probe(store_fs.id, target_fs.id));
    if (known) return to_report(*known, false);
  }
  TRY(auto caps, probe_pair(store.staging_fd(), target_dir_fd));
  ProbeRecord record{store_fs.id, target_fs.id, store_fs.type, target_fs.type, caps.link_errno,
                     caps.reflink_errno, caps.copy_range_errno, now_ns()};
  TRY_VOID(db.record_probe(record));
  return to_report(record, true);
}

}  // namespace treesnap
