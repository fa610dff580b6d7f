#include "config/settings.hpp"

#include <fcntl.h>

#include <cstdlib>
#include <toml++/toml.h>

#include <fmt/format.h>

#include "store/layout.hpp"
#include "util/posix.hpp"

namespace treesnap {
namespace {

constexpr const char* k_default_file = R"(# treesnap store configuration. Precedence: command-line flag > environment
# (TREESNAP_*) > this file > built-in default; `treesnap config` shows the effective values.

[restore]
# auto | hardlink | reflink | copy
# strategy = "auto"
# Fail instead of copying a file that cannot be hardlinked or reflinked.
# no_copy_fallback = false
# Let --strategy hardlink link writable files too. Hazard: a write through any name changes the
# file in the store and in every tree linked to it.
# hardlink_writable = false
# Link only through inodes whose mtime equals the entry's too.
# strict_metadata = false

[store]
# Worker threads for hashing and copying; 0 = one per core.
# parallelism = 0

[gc]
# Automatic garbage collection (after each snapshot and restore, `treesnap gc --watch`, and
# Store::start_auto_gc): when more than high_watermark percent of the store's file system is in
# use, evict least recently used snapshots until at most low_watermark percent is.
high_watermark = 90
low_watermark = 70

# Per registry, for push, pull and restore oci://… (the key is HOST or HOST:PORT as written in
# references). Downloads through Dragonfly's dfdaemon and a mirror, for example:
# [registry."registry.example:5000"]
# plain_http = false
# proxy = "http://127.0.0.1:4001"
# headers = ["X-Dragonfly-Use-P2P: true", "X-Dragonfly-Application: treesnap"]
# mirrors = ["http://mirror.local:5000"]
)";

Error invalid(std::string_view origin, std::string_view why) {
  return make_error(ErrorCode::invalid, fmt::format("{}: {}", origin, why));
}

std::optional<bool> parse_bool(std::string_view text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return std::nullopt;
}

// One setting's three lower layers; the flag layer is applied by the caller.
struct Layer {
  const char* table;
  const char* key;
  const char* variable;
};

template <typename T, typename Parse>
Result<void> resolve(Setting<T>& setting, const Layer& layer, const toml::table& file, const std::string& file_path,
                     Parse parse_env, const std::optional<T>& flag) {
  if (auto node = file[layer.table][layer.key]) {
    std::string origin = fmt::format("{} [{}] {}", file_path, layer.table, layer.key);
    std::optional<T> value;
    if constexpr (std::is_same_v<T, bool>) {
      value = node.template value<bool>();
    } else if constexpr (std::is_same_v<T, Strategy>) {
      if (auto text = node.template value<std::string>()) value = parse_strategy(*text);
    } else {
      auto number = node.template value<std::int64_t>();
      if (number && *number >= 0 && *number <= 1'000'000) value = static_cast<T>(*number);
    }
    if (!value) return std::unexpected(invalid(origin, "a value of the wrong type or out of range"));
    setting = {*value, SettingSource::store_file, origin};
  }
  if (const char* env = std::getenv(layer.variable); env && *env) {
    std::optional<T> value = parse_env(std::string_view(env));
    if (!value) return std::unexpected(invalid(layer.variable, fmt::format("cannot use {:?}", env)));
    setting = {*value, SettingSource::environment, layer.variable};
  }
  if (flag) setting = {*flag, SettingSource::flag, ""};
  return {};
}

std::optional<std::int64_t> parse_number(std::string_view text) {
  char* end = nullptr;
  std::string copy(text);
  long long n = std::strtoll(copy.c_str(), &end, 10);
  if (end == copy.c_str() || *end != '\0' || n < 0 || n > 1'000'000) return std::nullopt;
  return n;
}

// Keys the file may hold; anything else is a typo worth an error.
Result<void> check_known_keys(const toml::table& file, const std::string& path) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> known = {
      {"restore", {"strategy", "no_copy_fallback", "hardlink_writable", "strict_metadata"}},
      {"store", {"parallelism"}},
      {"gc", {"high_watermark", "low_watermark"}},
  };
  for (const auto& [table_name, node] : file) {
    if (table_name.str() == "registry") continue;  // checked by load_registries
    auto it = std::find_if(known.begin(), known.end(), [&](const auto& k) { return k.first == table_name.str(); });
    if (it == known.end() || !node.is_table())
      return std::unexpected(invalid(path, fmt::format("unknown table [{}]", table_name.str())));
    for (const auto& [key, value] : *node.as_table()) {
      (void)value;
      if (std::find(it->second.begin(), it->second.end(), key.str()) == it->second.end())
        return std::unexpected(invalid(path, fmt::format("unknown key {:?} in [{}]", key.str(), table_name.str())));
    }
  }
  return {};
}

Result<std::vector<std::string>> string_list(const toml::node& node, const std::string& origin) {
  const auto* array = node.as_array();
  if (!array) return std::unexpected(invalid(origin, "a list of strings is expected"));
  std::vector<std::string> out;
  for (const auto& item : *array) {
    auto text = item.value<std::string>();
    if (!text) return std::unexpected(invalid(origin, "a list of strings is expected"));
    out.push_back(*text);
  }
  return out;
}

// [registry."host:port"] tables: plain_http, proxy, headers, mirrors; nothing else.
Result<std::map<std::string, RegistrySettings>> load_registries(const toml::table& file, const std::string& path) {
  std::map<std::string, RegistrySettings> out;
  const auto* registries = file["registry"].as_table();
  if (!file["registry"]) return out;
  if (!registries) return std::unexpected(invalid(path, "[registry] must hold tables [registry.\"HOST:PORT\"]"));
  for (const auto& [host, node] : *registries) {
    const auto* table = node.as_table();
    const std::string where = fmt::format("{} [registry.{:?}]", path, host.str());
    if (!table) return std::unexpected(invalid(where, "must be a table"));
    RegistrySettings r;
    for (const auto& [key, value] : *table) {
      const std::string origin = fmt::format("{} {}", where, key.str());
      if (key.str() == "plain_http") {
        auto b = value.value<bool>();
        if (!b) return std::unexpected(invalid(origin, "true or false is expected"));
        r.plain_http = *b;
      } else if (key.str() == "proxy") {
        auto text = value.value<std::string>();
        if (!text) return std::unexpected(invalid(origin, "a string is expected"));
        r.proxy = *text;
      } else if (key.str() == "headers") {
        TRY(r.headers, string_list(value, origin));
      } else if (key.str() == "mirrors") {
        TRY(r.mirrors, string_list(value, origin));
      } else {
        return std::unexpected(invalid(where, fmt::format("unknown key {:?}", key.str())));
      }
    }
    out.emplace(std::string(host.str()), std::move(r));
  }
  return out;
}

}  // namespace

const char* to_string(SettingSource source) noexcept {
  switch (source) {
    case SettingSource::flag: return "flag";
    case SettingSource::environment: return "environment";
    case SettingSource::store_file: return "store file";
    case SettingSource::default_value: return "default";
  }
  return "?";
}

std::optional<Strategy> parse_strategy(std::string_view text) noexcept {
  if (text == "auto") return Strategy::automatic;
  if (text == "reflink") return Strategy::reflink;
  if (text == "hardlink") return Strategy::hardlink;
  if (text == "copy") return Strategy::copy;
  return std::nullopt;
}

RestoreOptions Settings::restore_options() const {
  RestoreOptions options;
  options.strategy = strategy.value;
  options.no_copy_fallback = no_copy_fallback.value;
  options.hardlink_writable = hardlink_writable.value;
  options.strict_metadata = strict_metadata.value;
  return options;
}

Result<Settings> load_settings(const std::filesystem::path& store_dir, const SettingOverrides& overrides) {
  const std::string path = (store_dir / layout::k_config).string();
  toml::table file;
  auto text = read_file(AT_FDCWD, path);
  if (!text && text.error().code != ErrorCode::not_found) return std::unexpected(text.error());
  if (text) {
    // Debian's toml++ is built with exceptions: a parse error throws, and is caught here so that
    // none crosses the library API.
    try {
      file = toml::parse(*text, path);
    } catch (const toml::parse_error& e) {
      return std::unexpected(invalid(path, e.description()));
    }
    TRY_VOID(check_known_keys(file, path));
  }

  Settings s;
  TRY(s.registries, load_registries(file, path));
  auto env_bool = [](std::string_view t) { return parse_bool(t); };
  auto env_unsigned = [](std::string_view t) -> std::optional<unsigned> {
    auto n = parse_number(t);
    return n ? std::optional<unsigned>(static_cast<unsigned>(*n)) : std::nullopt;
  };
  auto env_percent = [](std::string_view t) -> std::optional<int> {
    auto n = parse_number(t);
    return n ? std::optional<int>(static_cast<int>(*n)) : std::nullopt;
  };
  TRY_VOID(resolve(s.strategy, {"restore", "strategy", "TREESNAP_STRATEGY"}, file, path,
                   [](std::string_view t) { return parse_strategy(t); }, overrides.strategy));
  TRY_VOID(resolve(s.no_copy_fallback, {"restore", "no_copy_fallback", "TREESNAP_NO_COPY_FALLBACK"}, file, path,
                   env_bool, overrides.no_copy_fallback));
  TRY_VOID(resolve(s.hardlink_writable, {"restore", "hardlink_writable", "TREESNAP_HARDLINK_WRITABLE"}, file, path,
                   env_bool, overrides.hardlink_writable));
  TRY_VOID(resolve(s.strict_metadata, {"restore", "strict_metadata", "TREESNAP_STRICT_METADATA"}, file, path,
                   env_bool, overrides.strict_metadata));
  TRY_VOID(resolve(s.parallelism, {"store", "parallelism", "TREESNAP_PARALLELISM"}, file, path, env_unsigned,
                   overrides.parallelism));
  TRY_VOID(resolve(s.gc_high_watermark, {"gc", "high_watermark", "TREESNAP_GC_HIGH_WATERMARK"}, file, path,
                   env_percent, std::optional<int>{}));
  TRY_VOID(resolve(s.gc_low_watermark, {"gc", "low_watermark", "TREESNAP_GC_LOW_WATERMARK"}, file, path,
                   env_percent, std::optional<int>{}));

  for (const Setting<int>* w : {&s.gc_high_watermark, &s.gc_low_watermark}) {
    if (w->value < 1 || w->value > 100)
      return std::unexpected(invalid(w->origin, "a watermark is a whole percent, 1 to 100"));
  }
  if (s.gc_low_watermark.value >= s.gc_high_watermark.value)
    return std::unexpected(make_error(ErrorCode::invalid,
                                      fmt::format("gc low_watermark ({}, {}) must be below high_watermark ({}, {})",
                                                  s.gc_low_watermark.value, to_string(s.gc_low_watermark.source),
                                                  s.gc_high_watermark.value, to_string(s.gc_high_watermark.source))));
  if (s.no_copy_fallback.value && s.strategy.value == Strategy::copy)
    return std::unexpected(make_error(ErrorCode::invalid, "no_copy_fallback contradicts strategy copy"));
  return s;
}

Result<void> write_default_config(const std::filesystem::path& store_dir) {
  const std::string path = (store_dir / layout::k_config).string();
  auto fd = open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (!fd) return fd.error().code == ErrorCode::exists ? Result<void>{} : std::unexpected(fd.error());
  return write_full(fd->get(), k_default_file, path);
}

}  // namespace treesnap
