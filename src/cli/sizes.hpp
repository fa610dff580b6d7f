// Parsing the CLI's sizes ("10G", "500M", "1.5T", "4096"), percentages ("15%") and durations
// ("90s", "30m", "1h", "2d", "0"). Units are binary (K = 1024) and case-insensitive; a trailing
// "B" or "iB" is allowed ("10GiB").
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace treesnap::cli {

std::optional<std::uint64_t> parse_size(std::string_view text);
// "15%" -> 15.0; nullopt when the text is not a percentage from 0 to 100.
std::optional<double> parse_percent(std::string_view text);
std::optional<std::int64_t> parse_duration_seconds(std::string_view text);

}  // namespace treesnap::cli
