// The settings a user can configure, and where each effective value came from. Precedence:
// a flag (or a library caller's override) > the environment > the store's treesnap.toml > the
// default. `treesnap config` prints them; docs/cli.md lists every key.
//
//   treesnap.toml                     environment                   flag
//   [restore] strategy = "auto"       TREESNAP_STRATEGY             --strategy
//   [restore] no_copy_fallback        TREESNAP_NO_COPY_FALLBACK     --no-copy-fallback
//   [restore] hardlink_writable       TREESNAP_HARDLINK_WRITABLE    --hardlink-writable
//   [restore] strict_metadata         TREESNAP_STRICT_METADATA      --strict-metadata
//   [store] parallelism = 0           TREESNAP_PARALLELISM          --threads   (0: one per core)
//   [gc] high_watermark = 90          TREESNAP_GC_HIGH_WATERMARK
//   [gc] low_watermark = 70           TREESNAP_GC_LOW_WATERMARK
//   [registry."HOST:PORT"] plain_http, proxy, headers, mirrors   --plain-http --proxy --header
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "treesnap/options.hpp"
#include "treesnap/result.hpp"

namespace treesnap {

enum class SettingSource { flag, environment, store_file, default_value };
const char* to_string(SettingSource source) noexcept;

template <typename T>
struct Setting {
  Setting() = default;
  Setting(T default_value) : value(default_value) {}  // NOLINT(google-explicit-constructor): a default
  Setting(T v, SettingSource s, std::string o) : value(v), source(s), origin(std::move(o)) {}

  T value{};
  SettingSource source = SettingSource::default_value;
  std::string origin;  // the variable, or the file and key, the value came from; empty for defaults
};

// How to reach one registry (a [registry."HOST:PORT"] table): for Dragonfly, proxy =
// "http://127.0.0.1:4001" and headers = ["X-Dragonfly-Use-P2P: true"].
struct RegistrySettings {
  std::optional<bool> plain_http;
  std::string proxy;                 // blob downloads only
  std::vector<std::string> headers;  // added to blob downloads
  std::vector<std::string> mirrors;  // base URLs tried first for downloads
};

struct Settings {
  Setting<Strategy> strategy{Strategy::automatic};
  Setting<bool> no_copy_fallback{false};
  Setting<bool> hardlink_writable{false};
  Setting<bool> strict_metadata{false};
  Setting<unsigned> parallelism{0};
  Setting<int> gc_high_watermark{90};
  Setting<int> gc_low_watermark{70};
  // Keyed by "host:port" (the port as written in references; none for the default port).
  std::map<std::string, RegistrySettings> registries;

  // The restore options these settings give (callbacks such as progress stay unset).
  RestoreOptions restore_options() const;
};

// What the caller decided itself (command-line flags); unset fields fall through.
struct SettingOverrides {
  std::optional<Strategy> strategy;
  std::optional<bool> no_copy_fallback, hardlink_writable, strict_metadata;
  std::optional<unsigned> parallelism;
};

// Resolves every setting for the store at `store_dir` (its treesnap.toml may be missing). An
// unknown key, a value of the wrong type or out of range, in the file or the environment, is
// `invalid` naming where it came from: a typo never silently falls back to a default.
Result<Settings> load_settings(const std::filesystem::path& store_dir, const SettingOverrides& overrides = {});

// Parses "auto", "reflink", "hardlink", "copy".
std::optional<Strategy> parse_strategy(std::string_view text) noexcept;

}  // namespace treesnap
