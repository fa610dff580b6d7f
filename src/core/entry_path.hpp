// The safety check every restore runs before it writes anything: a manifest whose paths could
// escape the target is refused whole.
#pragma once

#include <string_view>

#include "core/manifest.hpp"

namespace treesnap {

// Rejects, with `invalid` naming the entry: a root that is not a directory; a path that is
// absolute, empty, has "." or ".." or empty components, or a component over NAME_MAX; entries out
// of canonical order or duplicated; an entry whose parent is not an earlier directory entry (so
// no path can pass through a symlink); a hardlink that names anything but an earlier file; a
// file without a digest of the manifest's size; mode bits beyond 07777.
Result<void> validate_manifest(const Manifest& manifest);

// The last component of a valid path ("a/b/c" -> "c") and its parent ("a/b").
std::string_view base_name(std::string_view path) noexcept;
std::string_view parent_path(std::string_view path) noexcept;

}  // namespace treesnap
