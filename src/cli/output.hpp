// Turning the library's summaries into the CLI's human text and --json documents.
#pragma once

#include <nlohmann/json.hpp>

#include "treesnap/config.hpp"
#include "treesnap/store.hpp"

namespace treesnap::cli {

std::string human_bytes(std::uint64_t bytes);
// "restoring 12345/54519 files, 120.0 MiB/572.0 MiB": one line, redrawn in place on a terminal.
std::string progress_line(const RestoreProgress& p);
// "pushing 120/7000 objects, 3.1 MiB/40.2 MiB" (verb: pushing or pulling).
std::string progress_line(const TransferProgress& p, std::string_view verb);
// JSON-safe form of raw path bytes: valid UTF-8 as is, otherwise each byte as the Latin-1 code
// point of the same value.
std::string json_string(std::string_view bytes);
std::string rfc3339(std::int64_t ns);

nlohmann::json to_json(const SnapshotSummary& s);
nlohmann::json to_json(const RestoreSummary& r);
nlohmann::json to_json(const UpdateReport& u);  // null unless an update
nlohmann::json to_json(const VerifySummary& v);
nlohmann::json to_json(const Entry& e, DigestAlgorithm algorithm);
nlohmann::json to_json(const GcReport& r);
nlohmann::json to_json(const UsageReport& u);
nlohmann::json to_json(const ProbeReport& p);
// Two lines, each after `indent`.
std::string to_text(const ProbeReport& p, std::string_view indent = "");

nlohmann::json to_json(const TransferSummary& t);

std::string to_text(const SnapshotSummary& s);
// verb: "pushed" or "pulled".
std::string to_text(const TransferSummary& t, std::string_view verb);
std::string to_text(const RestoreSummary& r);
nlohmann::json to_json(const Settings& s);
std::string to_text(const Settings& s);
std::string to_text(const GcReport& r);
std::string to_text(const UsageReport& u);
nlohmann::json to_json(const TreeStatus& s);
nlohmann::json to_json(const RepairReport& r);
std::string to_text(const VerifySummary& v, bool quiet);
std::string to_text(const TreeStatus& s, bool quiet);
std::string to_text(const RepairReport& r, bool quiet);

}  // namespace treesnap::cli
