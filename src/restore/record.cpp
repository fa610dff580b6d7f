#include "restore/record.hpp"

#include <climits>
#include <cstdlib>

namespace treesnap {

Result<void> record_restored_tree(Database& db, const Manifest& manifest, const RestoreOutcome& outcome,
                                  const std::string& snapshot_name, const std::string& manifest_digest) {
  const RestoreSummary& summary = outcome.summary;
  char buffer[PATH_MAX];
  if (::realpath(summary.target.c_str(), buffer) == nullptr)
    return std::unexpected(os_error(errno, "resolve " + summary.target.string()));
  TRY(auto root, open_at(AT_FDCWD, buffer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));

  RestoreRecord record{0, buffer, snapshot_name, manifest_digest, now_ns(), summary.hardlinked.files,
                       summary.reflinked.files, summary.copied.files, summary.empty_files};
  if (outcome.amend_record != 0) {
    record.hardlinked = outcome.totals[0];
    record.reflinked = outcome.totals[1];
    record.copied = outcome.totals[2];
    record.empty = outcome.totals[3];
  }
  std::vector<RestoreEntryRecord> rows;
  rows.reserve(outcome.files.size());
  std::vector<LinkStamp> links;
  for (const auto& placed : outcome.files) {
    const Entry& e = manifest.entries[placed.index];
    // The tree was just built from a validated manifest: no path component is a symlink.
    struct stat st {};
    if (::fstatat(root.get(), e.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return std::unexpected(os_error(errno, "stat restored " + e.path));
    PlacedBy by = placed.how == Strategy::hardlink ? PlacedBy::hardlink
                  : placed.how == Strategy::reflink ? PlacedBy::reflink
                  : placed.how == Strategy::copy    ? PlacedBy::copy
                                                    : PlacedBy::fresh;
    rows.push_back({e.path, stamp_of(st), by, e.digest.str()});
    // Only a link that changed nothing but ctime moves the fingerprint: a write through another
    // name during the restore changes mtime (or size, or mode) and is left for verify to see.
    FileStamp expected = placed.link_before;
    expected.ctime_ns = to_ns(st.st_ctim);
    if (by == PlacedBy::hardlink && placed.link_before.ino != 0 && stamp_of(st) == expected)
      links.push_back({placed.link_path, placed.link_before, expected.ctime_ns});
  }
  if (outcome.amend_record != 0) {
    TRY_VOID(db.amend_restore(outcome.amend_record, record, rows, outcome.drop));
  } else {
    TRY(auto id, db.record_restore(record, rows));
    (void)id;
  }
  return db.record_links(links);
}

}  // namespace treesnap
