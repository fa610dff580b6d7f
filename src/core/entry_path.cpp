#include "core/entry_path.hpp"

#include <climits>
#include <string>
#include <unordered_set>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "util/error.hpp"

namespace treesnap {
namespace {

Result<void> check_components(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("manifest path {:?}: {}", path, why)));
  };
  if (path.front() == '/') return bad("absolute path");
  if (path.find('\0') != std::string_view::npos) return bad("NUL byte");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (component.empty()) return bad("empty component");
    if (component == "." || component == "..") return bad("'.' or '..' component");
    if (component.size() > NAME_MAX) return bad("component longer than NAME_MAX");
    start = end + 1;
  }
  return {};
}

}  // namespace

std::string_view base_name(std::string_view path) noexcept {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view parent_path(std::string_view path) noexcept {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

Result<void> validate_manifest(const Manifest& manifest) {
  const auto& entries = manifest.entries;
  if (entries.empty() || !entries[0].path.empty() || entries[0].type != EntryType::directory)
    return std::unexpected(make_error(ErrorCode::invalid, "manifest: the first entry must be the root directory"));
  if (entries[0].mode > 07777) return std::unexpected(make_error(ErrorCode::invalid, "manifest root: mode out of range"));
  const std::size_t digest_bytes = digest_size(manifest.algorithm);
  std::unordered_set<std::string_view> directories{""};
  for (std::size_t i = 1; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    auto bad = [&](std::string_view why) {
      return std::unexpected(make_error(ErrorCode::invalid, fmt::format("manifest entry {:?}: {}", e.path, why)));
    };
    if (e.path.empty()) return bad("empty path");
    TRY_VOID(check_components(e.path));
    if (!path_less(entries[i - 1].path, e.path)) return bad("out of order or duplicated");
    if (!directories.contains(parent_path(e.path))) return bad("parent is not a directory of the snapshot");
    if (e.mode > 07777) return bad("mode out of range");
    switch (e.type) {
      case EntryType::directory: directories.insert(e.path); break;
      case EntryType::file:
        if (e.size > 0 && e.digest.size() != digest_bytes) return bad("digest of the wrong size");
        break;
      case EntryType::hardlink:
        if (e.link_index >= i || entries[e.link_index].type != EntryType::file)
          return bad("hardlink to something that is not an earlier file");
        break;
      default: break;
    }
  }
  return {};
}

}  // namespace treesnap
