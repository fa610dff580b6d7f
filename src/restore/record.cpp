#include "restore/record.hpp"

#include <climits>
#include <cstdlib>
#include <unordered_map>

#include "util/trace.hpp"

namespace treesnap {

PlacedBy placed_by(Strategy how) noexcept {
  switch (how) {
    case Strategy::hardlink:
      return PlacedBy::hardlink;
    case Strategy::reflink:
      return PlacedBy::reflink;
    case Strategy::copy:
      return PlacedBy::copy;
    default:
      return PlacedBy::fresh;
  }
}

Result<void> record_restored_tree(Database& db, const Manifest& manifest, const RestoreOutcome& outcome,
                                  const std::string& snapshot_name, const std::string& manifest_digest) {
  const RestoreSummary& summary = outcome.summary;
  char buffer[PATH_MAX];
  if (::realpath(summary.target.c_str(), buffer) == nullptr)
    return std::unexpected(os_error(errno, "resolve " + summary.target.string()));

  PhaseTimer timer("record");
  RestoreRecord record{0, buffer, snapshot_name, manifest_digest, now_ns(), summary.hardlinked.files,
                       summary.reflinked.files, summary.copied.files, summary.empty_files};
  if (outcome.amend_record != 0) {
    record.hardlinked = outcome.totals[0];
    record.reflinked = outcome.totals[1];
    record.copied = outcome.totals[2];
    record.empty = outcome.totals[3];
  }
  // The restorer stat'ed each file once placed (the updater once its renames were done); an
  // inode with several names (many files of one content linked to one store file, in-tree links)
  // changed ctime with each later link, so its newest stamp is the one all its names show now.
  std::unordered_map<std::uint64_t, FileStamp> newest;
  newest.reserve(outcome.files.size());
  for (const auto& placed : outcome.files) {
    auto [it, added] = newest.try_emplace(placed.stamp.ino, placed.stamp);
    if (!added && placed.stamp.ctime_ns > it->second.ctime_ns) it->second = placed.stamp;
  }
  std::vector<RestoreEntryRecord> rows;
  rows.reserve(outcome.files.size());
  std::vector<LinkStamp> links;
  for (const auto& placed : outcome.files) {
    const Entry& e = manifest.entries[placed.index];
    const FileStamp& now = newest.at(placed.stamp.ino);
    const PlacedBy by = placed_by(placed.how);
    rows.push_back({e.path, now, by, e.digest.str()});
    // Only a link that changed nothing but ctime moves the fingerprint: a write through another
    // name during the restore changes mtime (or size, or mode) and is left for verify to see.
    FileStamp expected = placed.link_before;
    expected.ctime_ns = now.ctime_ns;
    if (by == PlacedBy::hardlink && placed.link_before.ino != 0 && now == expected)
      links.push_back({placed.link_path, placed.link_before, expected.ctime_ns});
  }
  timer.phase("rows");
  if (outcome.amend_record != 0) {
    TRY_VOID(db.amend_restore(outcome.amend_record, record, rows, outcome.drop, links));
  } else {
    TRY(auto id, db.record_restore(record, rows, links));
    (void)id;
  }
  timer.phase("commit");
  return {};
}

}  // namespace treesnap
