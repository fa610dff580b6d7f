#include "gc/config.hpp"

#include <fcntl.h>

#include <toml++/toml.h>
#include <fmt/format.h>

#include "util/posix.hpp"

namespace treesnap {
namespace {

constexpr const char* k_default_config = R"(# treesnap store configuration
[gc]
# Automatic garbage collection (after each snapshot and restore, `treesnap gc --watch`, and
# Store::start_auto_gc): when more than high_watermark percent of the store's file system is in
# use, evict least recently used snapshots until at most low_watermark percent is.
high_watermark = 90
low_watermark = 70
)";

}  // namespace

Result<GcConfig> load_gc_config(const std::string& path) {
  GcConfig config;
  auto text = read_file(AT_FDCWD, path);
  if (!text) {
    if (text.error().code == ErrorCode::not_found) return config;
    return std::unexpected(text.error());
  }
  // Debian's toml++ is built with exceptions (TOML_EXCEPTIONS): a parse error throws, and is
  // caught here so that none crosses the library API.
  toml::table table;
  try {
    table = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("{}: {}", path, e.description())));
  }
  auto read = [&](const char* key, int& out) -> Result<void> {
    auto node = table["gc"][key];
    if (!node) return {};
    auto value = node.value<std::int64_t>();
    if (!value || *value < 1 || *value > 100)
      return std::unexpected(make_error(ErrorCode::invalid, fmt::format("{}: gc.{} must be a whole percent, 1 to 100", path, key)));
    out = static_cast<int>(*value);
    return {};
  };
  TRY_VOID(read("high_watermark", config.high_watermark));
  TRY_VOID(read("low_watermark", config.low_watermark));
  if (config.low_watermark >= config.high_watermark)
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("{}: gc.low_watermark ({}) must be below gc.high_watermark ({})",
                                                                      path, config.low_watermark, config.high_watermark)));
  return config;
}

Result<void> write_default_gc_config(const std::string& path) {
  auto fd = open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (!fd) return fd.error().code == ErrorCode::exists ? Result<void>{} : std::unexpected(fd.error());
  return write_full(fd->get(), k_default_config, path);
}

}  // namespace treesnap
