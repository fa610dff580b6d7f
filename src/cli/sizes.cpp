#include "cli/sizes.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace treesnap::cli {
namespace {

// The number at the start of `text` and the rest; nullopt when there is none or it is negative.
std::optional<std::pair<double, std::string>> split_number(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc{} || end != text.data() + i || !std::isfinite(value)) return std::nullopt;
  std::string unit;
  for (char c : text.substr(i)) unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return std::pair{value, unit};
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  if (unit.ends_with("ib")) unit.resize(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("b")) unit.pop_back();
  else if (unit == "b") unit.clear();
  static constexpr std::string_view k_units = "kmgtp";
  double scale = 1;
  if (!unit.empty()) {
    auto pos = k_units.find(unit);
    if (unit.size() != 1 || pos == std::string_view::npos) return std::nullopt;
    scale = std::pow(1024.0, static_cast<double>(pos + 1));
  }
  double bytes = value * scale;
  if (bytes >= 1.8e19) return std::nullopt;
  return static_cast<std::uint64_t>(bytes);
}

std::optional<double> parse_percent(std::string_view text) {
  if (!text.ends_with('%')) return std::nullopt;
  auto parts = split_number(text.substr(0, text.size() - 1));
  if (!parts || !parts->second.empty() || parts->first > 100) return std::nullopt;
  return parts->first;
}

std::optional<std::int64_t> parse_duration_seconds(std::string_view text) {
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  const auto& [value, unit] = *parts;
  double scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : -1;
  if (scale < 0 || value * scale > 1e15) return std::nullopt;
  return static_cast<std::int64_t>(value * scale);
}

}  // namespace treesnap::cli
