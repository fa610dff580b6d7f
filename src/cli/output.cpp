#include "cli/output.hpp"

#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/digest.hpp"

namespace treesnap::cli {
namespace {

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += n;
  }
  return true;
}

nlohmann::json strategy_json(const StrategyCount& c) { return {{"files", c.files}, {"bytes", c.bytes}}; }

std::string fallback_reason(const Fallback& f) {
  return f.sys_errno != 0 ? std::strerror(f.sys_errno) : f.policy;
}

// "ok", or the errno's name and text: "EOPNOTSUPP (Operation not supported)".
std::string capability(int err) {
  if (err == 0) return "ok";
  const char* name = strerrorname_np(err);
  return fmt::format("{} ({})", name ? name : std::to_string(err), std::strerror(err));
}

}  // namespace

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* k_units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, k_units[unit]);
}

std::string progress_line(const RestoreProgress& p) {
  return fmt::format("restoring {}/{} files, {}/{}", p.files_done, p.files_total, human_bytes(p.bytes_done),
                     human_bytes(p.bytes_total));
}

std::string progress_line(const TransferProgress& p, std::string_view verb) {
  return fmt::format("{} {}/{} objects, {}/{}", verb, p.objects_done, p.objects_total, human_bytes(p.bytes_done),
                     human_bytes(p.bytes_total));
}

nlohmann::json to_json(const TransferSummary& t) {
  return {{"reference", t.reference},
          {"oci_digest", t.oci_digest},
          {"name", t.name},
          {"id", t.id},
          {"objects", t.objects},
          {"bytes", t.bytes},
          {"objects_moved", t.objects_moved},
          {"bytes_moved", t.bytes_moved},
          {"objects_skipped", t.objects_skipped},
          {"objects_resumed", t.objects_resumed},
          {"standalone_objects", t.standalone_objects},
          {"packs_new", t.packs_new},
          {"packs_reused", t.packs_reused},
          {"requests", t.requests},
          {"retries", t.retries},
          {"http_bytes_sent", t.http_bytes_sent},
          {"http_bytes_received", t.http_bytes_received},
          {"blobs_uploaded", t.blobs_uploaded},
          {"blobs_skipped", t.blobs_skipped},
          {"blobs_mounted", t.blobs_mounted},
          {"seconds", t.seconds}};
}

std::string to_text(const TransferSummary& t, std::string_view verb) {
  const bool push = verb == "pushed";
  std::string out = fmt::format("{} {} {} {}\n", verb, t.name, push ? "to" : "from", t.reference);
  out += fmt::format("  {} objects, {}: {} {}, {}; {} skipped{}\n", t.objects, human_bytes(t.bytes),
                     push ? "sent" : "fetched", t.objects_moved, human_bytes(t.bytes_moved), t.objects_skipped,
                     t.objects_resumed ? fmt::format(", {} resumed", t.objects_resumed) : std::string());
  if (push) {
    out += fmt::format("  packs: {} new, {} reused; {} large objects as blobs\n", t.packs_new, t.packs_reused, t.standalone_objects);
    out += fmt::format("  blobs: {} uploaded, {} mounted, {} already there\n", t.blobs_uploaded, t.blobs_mounted,
                       t.blobs_skipped);
  }
  double rate = t.seconds > 0 ? static_cast<double>(push ? t.http_bytes_sent : t.http_bytes_received) / t.seconds : 0;
  out += fmt::format("  {} requests ({} retries), {} sent, {} received, {:.2f} s ({}/s)\n", t.requests, t.retries,
                     human_bytes(t.http_bytes_sent), human_bytes(t.http_bytes_received), t.seconds,
                     human_bytes(static_cast<std::uint64_t>(rate)));
  return out;
}

std::string json_string(std::string_view bytes) {
  if (valid_utf8(bytes)) return std::string(bytes);
  std::string out;
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

std::string rfc3339(std::int64_t ns) {
  std::time_t seconds = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm {};
  ::gmtime_r(&seconds, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

nlohmann::json to_json(const SnapshotSummary& s) {
  return {{"name", s.name},          {"id", s.id},
          {"manifest", s.manifest_digest}, {"entries", s.entries},
          {"files", s.files},        {"bytes", s.bytes},
          {"new_objects", s.new_objects}, {"new_bytes", s.new_bytes},
          {"hashed_files", s.hashed_files}, {"seconds", s.seconds},
          {"relocation_root", s.relocation_root.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.relocation_root)},
          {"relocated_files", s.relocated_files},
          {"created", rfc3339(s.created_ns)}, {"last_used", rfc3339(s.last_used_ns)}};
}

nlohmann::json to_json(const RestoreSummary& r) {
  nlohmann::json fallbacks = nlohmann::json::array();
  for (const auto& f : r.fallbacks)
    fallbacks.push_back({{"path", json_string(f.path)}, {"from", to_string(f.from)}, {"to", to_string(f.to)},
                         {"errno", f.sys_errno}, {"reason", fallback_reason(f)}});
  return {{"name", r.name},
          {"id", r.id},
          {"target", r.target.string()},
          {"entries", r.entries},
          {"strategies",
           {{"hardlink", strategy_json(r.hardlinked)}, {"reflink", strategy_json(r.reflinked)}, {"copy", strategy_json(r.copied)}}},
          {"empty_files", r.empty_files},
          {"bytes_written", r.bytes_written},
          {"bytes_shared", r.bytes_shared},
          {"fallbacks", fallbacks},
          {"fallback_count", r.fallback_count},
          {"probe", to_json(r.probe)},
          {"relocation", r.relocated_to.empty() ? nlohmann::json(nullptr)
                                                : nlohmann::json{{"from", r.relocated_from}, {"to", r.relocated_to},
                                                                 {"files", r.relocated.files}, {"bytes", r.relocated.bytes}}},
          {"update", to_json(r.update)},
          {"seconds", r.seconds}};
}

nlohmann::json to_json(const UpdateReport& u) {
  if (!u.performed) return nullptr;
  auto strings = [](const std::vector<std::string>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : list) out.push_back(json_string(s));
    return out;
  };
  nlohmann::json conflicts = nlohmann::json::array();
  for (const auto& c : u.conflict_list) conflicts.push_back({{"path", json_string(c.path)}, {"reason", c.reason}});
  return {{"kept", u.kept},
          {"updated", u.updated},
          {"added", u.added},
          {"removed", u.removed},
          {"directories_added", u.directories_added},
          {"directories_removed", u.directories_removed},
          {"conflicts", u.conflicts},
          {"updated_paths", strings(u.updated_paths)},
          {"added_paths", strings(u.added_paths)},
          {"removed_paths", strings(u.removed_paths)},
          {"conflict_list", conflicts}};
}

nlohmann::json to_json(const ProbeReport& p) {
  auto op = [](int err) {
    return nlohmann::json{{"ok", err == 0}, {"errno", err}, {"error", err ? capability(err) : ""}};
  };
  return {{"store_fs", p.store_fs},        {"target_fs", p.target_fs},
          {"store_fsid", p.store_fsid},    {"target_fsid", p.target_fsid},
          {"hardlink", op(p.link_errno)},  {"reflink", op(p.reflink_errno)},
          {"copy_file_range", op(p.copy_range_errno)},
          {"probed", rfc3339(p.probed_ns)}, {"fresh", p.fresh}, {"reprobed", p.reprobed}};
}

std::string to_text(const ProbeReport& p, std::string_view indent) {
  return fmt::format("{}file systems: store {} ({}) -> target {} ({}); probed {}{}\n"
                     "{}  hardlink {}, reflink {}, copy_file_range {}\n",
                     indent, p.store_fs, p.store_fsid, p.target_fs, p.target_fsid, rfc3339(p.probed_ns),
                     p.reprobed ? " (again: an operation failed that the record said works)" : p.fresh ? " (now)" : "",
                     indent, capability(p.link_errno), capability(p.reflink_errno), capability(p.copy_range_errno));
}

nlohmann::json to_json(const VerifySummary& v) {
  nlohmann::json bad = nlohmann::json::array();
  auto strings = [](const std::vector<std::string>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : list) out.push_back(json_string(s));
    return out;
  };
  for (const auto& b : v.bad)
    bad.push_back({{"digest", b.digest}, {"path", b.path}, {"reason", b.reason}, {"quarantined", b.quarantined},
                   {"snapshots", strings(b.snapshots)}, {"paths", strings(b.paths)}, {"trees", strings(b.trees)}});
  nlohmann::json fixed = nlohmann::json::array();
  for (const auto& f : v.fixed) fixed.push_back({{"path", f.path}, {"fixed", f.what}});
  return {{"fast", v.fast}, {"objects", v.objects}, {"hashed", v.hashed}, {"bytes", v.bytes}, {"bad", bad},
          {"fixed", fixed}, {"seconds", v.seconds}};
}

std::string to_text(const VerifySummary& v, bool quiet) {
  std::string out;
  for (const auto& b : v.bad) {
    out += fmt::format("bad: {} {}: {}{}\n", b.digest, b.path, b.reason,
                       b.quarantined.empty() ? "" : " (moved to " + b.quarantined + ")");
    for (const auto& p : b.paths) out += fmt::format("  needed by {}\n", json_string(p));
    for (const auto& t : b.trees) out += fmt::format("  damaged in restored tree: {}\n", json_string(t));
  }
  for (const auto& f : v.fixed) out += fmt::format("fixed: {}: {}\n", f.path, f.what);
  if (!quiet)
    out += fmt::format("verified {} store files ({}; {} hashed, {}) in {:.2f} s: {}\n", v.objects,
                       v.fast ? "fast" : "full", v.hashed, human_bytes(v.bytes), v.seconds,
                       v.clean() ? "all good" : fmt::format("{} bad, {} fixed", v.bad.size(), v.fixed.size()));
  return out;
}

nlohmann::json to_json(const TreeStatus& s) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& c : s.changes)
    changes.push_back({{"path", json_string(c.path)}, {"kind", to_string(c.kind)}, {"detail", c.detail}});
  return {{"target", s.target.string()}, {"snapshot", s.snapshot}, {"id", s.id}, {"restored", rfc3339(s.restored_ns)},
          {"entries", s.entries}, {"hashed", s.hashed}, {"clean", s.clean()}, {"changes", changes},
          {"seconds", s.seconds}};
}

std::string to_text(const TreeStatus& s, bool quiet) {
  std::string out;
  for (const auto& c : s.changes)
    out += fmt::format("{:<8} {}{}\n", to_string(c.kind), c.path.empty() ? "." : json_string(c.path),
                       c.detail.empty() ? "" : ": " + c.detail);
  if (!quiet)
    out += fmt::format("{} restored from {} ({}) on {}: {} entries, {} hashed, {} in {:.2f} s\n", s.target.string(),
                       s.snapshot, s.id.substr(0, 12), rfc3339(s.restored_ns), s.entries, s.hashed,
                       s.clean() ? "unchanged" : fmt::format("{} changes", s.changes.size()), s.seconds);
  return out;
}

nlohmann::json to_json(const RepairReport& r) {
  nlohmann::json actions = nlohmann::json::array();
  for (const auto& a : r.actions)
    actions.push_back({{"path", json_string(a.path)}, {"action", a.action}, {"source", json_string(a.source)},
                       {"detail", a.detail}});
  nlohmann::json lost = nlohmann::json::array();
  for (const auto& l : r.lost) {
    nlohmann::json paths = nlohmann::json::array(), trees = nlohmann::json::array();
    for (const auto& p : l.paths) paths.push_back(json_string(p));
    for (const auto& t : l.trees) trees.push_back(json_string(t));
    lost.push_back({{"digest", l.digest}, {"paths", paths}, {"snapshots", l.snapshots}, {"trees", trees}});
  }
  nlohmann::json left = nlohmann::json::array();
  for (const auto& c : r.unrepaired)
    left.push_back({{"path", json_string(c.path)}, {"kind", to_string(c.kind)}, {"detail", c.detail}});
  return {{"target", r.target.string()}, {"dry_run", r.dry_run}, {"actions", actions}, {"lost", lost},
          {"unrepaired", left}, {"complete", r.complete()}, {"seconds", r.seconds}};
}

std::string to_text(const RepairReport& r, bool quiet) {
  std::string out;
  const char* would = r.dry_run ? "would have " : "";
  for (const auto& a : r.actions)
    out += fmt::format("{}{}: {}{}{}\n", would, a.action, a.path.empty() ? "." : json_string(a.path),
                       a.source.empty() ? "" : " from " + json_string(a.source), a.detail.empty() ? "" : " (" + a.detail + ")");
  for (const auto& l : r.lost) {
    out += fmt::format("LOST: {}: no intact copy anywhere\n", l.digest);
    for (const auto& p : l.paths) out += fmt::format("  needed here by {}\n", json_string(p));
    for (const auto& s : l.snapshots) out += fmt::format("  needed by snapshot {}\n", s);
    for (const auto& t : l.trees) out += fmt::format("  held by restored file {}\n", json_string(t));
  }
  for (const auto& c : r.unrepaired)
    if (c.kind == ChangeKind::added) out += fmt::format("kept added {} (--prune removes it)\n", json_string(c.path));
  if (!quiet)
    out += fmt::format("{}: {} actions{}, {:.2f} s\n", r.target.string(), r.actions.size(),
                       r.lost.empty() ? "" : fmt::format(", {} contents lost", r.lost.size()), r.seconds);
  return out;
}

nlohmann::json to_json(const Entry& e, DigestAlgorithm algorithm) {
  nlohmann::json j = {{"path", json_string(e.path)}, {"type", to_string(e.type)}, {"mode", e.mode},
                      {"uid", e.uid}, {"gid", e.gid}, {"mtime_ns", e.mtime_ns}, {"size", e.size}};
  if (!e.digest.empty()) j["digest"] = digest_text(algorithm, e.digest);
  if (e.type == EntryType::symlink) j["target"] = json_string(e.link_target());
  if (e.type == EntryType::hardlink) j["link_index"] = e.link_index;
  if (!e.xattrs().empty()) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& x : e.xattrs()) names.push_back(json_string(x.name));
    j["xattrs"] = names;
  }
  return j;
}

std::string to_text(const SnapshotSummary& s) {
  std::string out = fmt::format(
      "snapshot {}  id {}\n  {} entries, {} files, {}; new: {} objects, {}; hashed {} files; {:.2f} s\n",
      s.name, s.id.substr(0, 12), s.entries, s.files, human_bytes(s.bytes), s.new_objects,
      human_bytes(s.new_bytes), s.hashed_files, s.seconds);
  if (!s.relocation_root.empty())
    out += fmt::format("  relocatable: {} files hold {}\n", s.relocated_files, s.relocation_root);
  return out;
}

std::string to_text(const RestoreSummary& r) {
  std::string out = fmt::format("{} {} {} {}: {} entries in {:.2f} s\n", r.update.performed ? "updated" : "restored",
                                r.update.performed ? r.target.string() : r.name, r.update.performed ? "to" : "into",
                                r.update.performed ? r.name : r.target.string(), r.entries, r.seconds);
  if (r.update.performed) {
    const auto& u = r.update;
    out += fmt::format("  kept {}, updated {}, added {}, removed {}; directories +{} -{}; conflicts {}\n", u.kept,
                       u.updated, u.added, u.removed, u.directories_added, u.directories_removed, u.conflicts);
    for (const auto& c : u.conflict_list) out += fmt::format("    conflict: {}: {}\n", json_string(c.path), c.reason);
    if (u.conflicts > u.conflict_list.size()) out += fmt::format("    … and {} more\n", u.conflicts - u.conflict_list.size());
  }
  auto line = [&](const char* label, const StrategyCount& c) {
    if (c.files) out += fmt::format("  {:<9} {} files, {}\n", label, c.files, human_bytes(c.bytes));
  };
  line("hardlink", r.hardlinked);
  line("reflink", r.reflinked);
  line("copy", r.copied);
  if (r.empty_files) out += fmt::format("  {:<9} {} files\n", "empty", r.empty_files);
  if (!r.relocated_to.empty())
    out += fmt::format("  relocated {} files ({}): {} -> {}\n", r.relocated.files, human_bytes(r.relocated.bytes),
                       r.relocated_from, r.relocated_to);
  out += fmt::format("  written {}, shared with the store {}\n", human_bytes(r.bytes_written), human_bytes(r.bytes_shared));
  out += to_text(r.probe, "  ");
  if (r.fallback_count) {
    out += fmt::format("  fallbacks: {}\n", r.fallback_count);
    for (const auto& f : r.fallbacks)
      out += fmt::format("    {} -> {}: {}: {}\n", to_string(f.from), to_string(f.to), fallback_reason(f),
                         json_string(f.path));
    if (r.fallback_count > r.fallbacks.size())
      out += fmt::format("    … and {} more\n", r.fallback_count - r.fallbacks.size());
  }
  return out;
}

nlohmann::json to_json(const GcReport& r) {
  nlohmann::json evicted = nlohmann::json::array();
  for (const auto& e : r.evicted)
    evicted.push_back({{"name", e.name}, {"id", e.id}, {"last_used", rfc3339(e.last_used_ns)}, {"objects", e.objects},
                       {"bytes", e.bytes}, {"freed_bytes", e.freed_bytes}});
  return {{"dry_run", r.dry_run},
          {"evicted", evicted},
          {"objects_removed", r.objects_removed},
          {"bytes_removed", r.bytes_removed},
          {"bytes_freed", r.bytes_freed},
          {"variants_removed", r.variants_removed},
          {"orphans_kept", r.orphans_kept},
          {"staging_removed", r.staging_removed},
          {"staging_bytes", r.staging_bytes},
          {"unrecorded_removed", r.unrecorded_removed},
          {"unrecorded_bytes", r.unrecorded_bytes},
          {"leases_cleaned", r.leases_cleaned},
          {"quarantine_removed", r.quarantine_removed},
          {"restore_records_removed", r.restore_records_removed},
          {"store_bytes_before", r.store_bytes_before},
          {"store_bytes_after", r.store_bytes_after},
          {"fs_free_before", r.fs_free_before},
          {"fs_free_after", r.fs_free_after},
          {"target_met", r.target_met},
          {"seconds", r.seconds}};
}

nlohmann::json to_json(const UsageReport& u) {
  nlohmann::json snapshots = nlohmann::json::array();
  for (const auto& s : u.snapshots)
    snapshots.push_back({{"name", s.name}, {"id", s.id}, {"pinned", s.pinned}, {"last_used", rfc3339(s.last_used_ns)},
                         {"unique_objects", s.unique_objects}, {"unique_bytes", s.unique_bytes}});
  nlohmann::json j = {{"objects", u.objects},
                      {"store_bytes", u.store_bytes},
                      {"shared_bytes", u.shared_bytes},
                      {"orphan_objects", u.orphan_objects},
                      {"orphan_bytes", u.orphan_bytes},
                      {"snapshots", snapshots},
                      {"fs_size", u.fs_size},
                      {"fs_free", u.fs_free},
                      {"high_watermark", u.high_watermark},
                      {"low_watermark", u.low_watermark},
                      {"seconds", u.seconds}};
  if (u.exact) j["linked_outside_bytes"] = u.linked_outside_bytes;
  return j;
}

std::string to_text(const GcReport& r) {
  const char* verb = r.dry_run ? "would remove" : "removed";
  std::string out;
  for (const auto& e : r.evicted)
    out += fmt::format("{} {:<30} {}  last used {}  {} objects, {} ({} freed)\n", r.dry_run ? "would evict" : "evicted",
                       e.name, e.id.substr(0, 12), rfc3339(e.last_used_ns), e.objects, human_bytes(e.bytes),
                       human_bytes(e.freed_bytes));
  out += fmt::format("gc: {} {} objects ({}; {} freed on disk), {} variants, {} staging files ({})\n", verb,
                     r.objects_removed, human_bytes(r.bytes_removed), human_bytes(r.bytes_freed), r.variants_removed,
                     r.staging_removed, human_bytes(r.staging_bytes));
  if (r.unrecorded_removed)
    out += fmt::format("  {} {} unrecorded files ({})\n", verb, r.unrecorded_removed, human_bytes(r.unrecorded_bytes));
  if (r.orphans_kept) out += fmt::format("  kept {} orphans that live leases protect\n", r.orphans_kept);
  if (r.leases_cleaned) out += fmt::format("  forgot {} leases of dead processes\n", r.leases_cleaned);
  out += fmt::format("  store {} -> {}, free space {} -> {}{}; {:.2f} s\n", human_bytes(r.store_bytes_before),
                     human_bytes(r.store_bytes_after), human_bytes(r.fs_free_before), human_bytes(r.fs_free_after),
                     r.target_met ? "" : " (target NOT met: the rest is pinned or in use)", r.seconds);
  return out;
}

std::string to_text(const UsageReport& u) {
  std::string out = fmt::format("store      {} in {} objects\nshared     {}\ngc frees   {} ({} orphans)\n",
                                human_bytes(u.store_bytes), u.objects, human_bytes(u.shared_bytes),
                                human_bytes(u.orphan_bytes), u.orphan_objects);
  if (u.exact) out += fmt::format("linked     {} also linked from outside the store (frees nothing)\n", human_bytes(u.linked_outside_bytes));
  const double used = u.fs_size ? 100.0 * static_cast<double>(u.fs_size - std::min(u.fs_free, u.fs_size)) / static_cast<double>(u.fs_size) : 0;
  out += fmt::format("disk       {} free of {} ({:.0f}% used; auto-gc above {}% down to {}%)\n", human_bytes(u.fs_free),
                     human_bytes(u.fs_size), used, u.high_watermark, u.low_watermark);
  if (!u.snapshots.empty()) out += "eviction order (least recently used first), bytes only each holds:\n";
  for (const auto& s : u.snapshots)
    out += fmt::format("  {:<30} {}  {}  {:>10}  {} objects{}\n", s.name, s.id.substr(0, 12), rfc3339(s.last_used_ns),
                       human_bytes(s.unique_bytes), s.unique_objects, s.pinned ? "  pinned" : "");
  return out;
}

namespace {

// Each setting once, in the order `treesnap config` prints them.
template <typename Visit>
void for_each_setting(const Settings& s, Visit visit) {
  visit("strategy", to_string(s.strategy.value), s.strategy);
  visit("no_copy_fallback", s.no_copy_fallback.value, s.no_copy_fallback);
  visit("hardlink_writable", s.hardlink_writable.value, s.hardlink_writable);
  visit("strict_metadata", s.strict_metadata.value, s.strict_metadata);
  visit("parallelism", s.parallelism.value, s.parallelism);
  visit("gc.high_watermark", s.gc_high_watermark.value, s.gc_high_watermark);
  visit("gc.low_watermark", s.gc_low_watermark.value, s.gc_low_watermark);
}

}  // namespace

nlohmann::json to_json(const Settings& s) {
  nlohmann::json out = nlohmann::json::object();
  for_each_setting(s, [&](const char* key, const nlohmann::json& value, const auto& setting) {
    out[key] = {{"value", value}, {"source", to_string(setting.source)}, {"origin", setting.origin}};
  });
  return out;
}

std::string to_text(const Settings& s) {
  std::string out;
  for_each_setting(s, [&](const char* key, const nlohmann::json& value, const auto& setting) {
    const std::string shown = value.is_string() ? value.get<std::string>() : value.dump();
    out += fmt::format("{:<18} {:<9} {}{}\n", key, shown, to_string(setting.source),
                       setting.origin.empty() ? "" : " (" + setting.origin + ")");
  });
  return out;
}

}  // namespace treesnap::cli
