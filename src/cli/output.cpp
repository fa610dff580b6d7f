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
          {"created", rfc3339(s.created_ns)}, {"last_used", rfc3339(s.last_used_ns)}};
}

nlohmann::json to_json(const RestoreSummary& r) {
  nlohmann::json fallbacks = nlohmann::json::array();
  for (const auto& f : r.fallbacks)
    fallbacks.push_back({{"path", json_string(f.path)}, {"from", to_string(f.from)}, {"to", to_string(f.to)},
                         {"errno", f.sys_errno}, {"reason", std::strerror(f.sys_errno)}});
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
          {"seconds", r.seconds}};
}

nlohmann::json to_json(const VerifySummary& v) {
  nlohmann::json bad = nlohmann::json::array();
  for (const auto& b : v.bad) bad.push_back({{"digest", b.digest}, {"path", b.path}, {"reason", b.reason}});
  return {{"objects", v.objects}, {"bytes", v.bytes}, {"bad", bad}, {"seconds", v.seconds}};
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
  return fmt::format(
      "snapshot {}  id {}\n  {} entries, {} files, {}; new: {} objects, {}; hashed {} files; {:.2f} s\n",
      s.name, s.id.substr(0, 12), s.entries, s.files, human_bytes(s.bytes), s.new_objects,
      human_bytes(s.new_bytes), s.hashed_files, s.seconds);
}

std::string to_text(const RestoreSummary& r) {
  std::string out = fmt::format("restored {} into {}: {} entries in {:.2f} s\n", r.name, r.target.string(),
                                r.entries, r.seconds);
  auto line = [&](const char* label, const StrategyCount& c) {
    if (c.files) out += fmt::format("  {:<9} {} files, {}\n", label, c.files, human_bytes(c.bytes));
  };
  line("hardlink", r.hardlinked);
  line("reflink", r.reflinked);
  line("copy", r.copied);
  if (r.empty_files) out += fmt::format("  {:<9} {} files\n", "empty", r.empty_files);
  out += fmt::format("  written {}, shared with the store {}\n", human_bytes(r.bytes_written), human_bytes(r.bytes_shared));
  if (r.fallback_count) {
    out += fmt::format("  fallbacks: {}\n", r.fallback_count);
    for (const auto& f : r.fallbacks)
      out += fmt::format("    {} -> {}: {}: {}\n", to_string(f.from), to_string(f.to), std::strerror(f.sys_errno),
                         json_string(f.path));
    if (r.fallback_count > r.fallbacks.size())
      out += fmt::format("    … and {} more\n", r.fallback_count - r.fallbacks.size());
  }
  return out;
}

}  // namespace treesnap::cli
