// The `[gc]` table of the store's treesnap.toml: the automatic collection's watermarks. Only this
// table is read here; other tables are left to whoever owns them.
//
//   [gc]
//   high_watermark = 90   # percent of the store's file system in use that starts eviction
//   low_watermark = 70    # eviction stops once usage is at most this
#pragma once

#include <string>

#include "treesnap/result.hpp"

namespace treesnap {

struct GcConfig {
  int high_watermark = 90;
  int low_watermark = 70;
};

// Reads `path`; a missing file or table gives the defaults. `invalid` for a file that does not
// parse or values outside 1 <= low < high <= 100 (never silently ignored).
Result<GcConfig> load_gc_config(const std::string& path);
// Writes the defaults to `path` unless it exists (a new store's file).
Result<void> write_default_gc_config(const std::string& path);

}  // namespace treesnap
