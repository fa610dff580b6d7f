// Resolution of the user's settings (include/treesnap/config.hpp) from flags, the environment and
// the store's treesnap.toml, and the file a new store starts with.
#pragma once

#include <filesystem>

#include "treesnap/config.hpp"

namespace treesnap {

// Writes the commented default treesnap.toml into a new store, unless one exists.
Result<void> write_default_config(const std::filesystem::path& store_dir);

}  // namespace treesnap
