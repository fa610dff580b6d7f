#include "util/error.hpp"

#include <cstring>

#include <fmt/format.h>

#include "treesnap/entry.hpp"
#include "treesnap/options.hpp"

namespace treesnap {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::exists: return "exists";
    case ErrorCode::corrupt: return "corrupt";
    case ErrorCode::io: return "io";
    case ErrorCode::invalid: return "invalid";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::busy: return "busy";
    case ErrorCode::cross_device: return "cross_device";
    case ErrorCode::too_many_links: return "too_many_links";
    case ErrorCode::no_space: return "no_space";
    case ErrorCode::permission: return "permission";
  }
  return "unknown";
}

const char* to_string(Strategy strategy) noexcept {
  switch (strategy) {
    case Strategy::automatic: return "auto";
    case Strategy::reflink: return "reflink";
    case Strategy::hardlink: return "hardlink";
    case Strategy::copy: return "copy";
  }
  return "unknown";
}

const char* to_string(DigestAlgorithm algorithm) noexcept {
  return algorithm == DigestAlgorithm::sha256 ? "sha256" : "xxh3-128";
}

const char* to_string(SyncPolicy policy) noexcept {
  switch (policy) {
    case SyncPolicy::batch: return "batch";
    case SyncPolicy::per_object: return "per-object";
    case SyncPolicy::none: return "none";
  }
  return "unknown";
}

const char* to_string(EntryType type) noexcept {
  switch (type) {
    case EntryType::directory: return "dir";
    case EntryType::file: return "file";
    case EntryType::symlink: return "symlink";
    case EntryType::hardlink: return "hardlink";
    case EntryType::fifo: return "fifo";
    case EntryType::char_device: return "chardev";
    case EntryType::block_device: return "blockdev";
  }
  return "unknown";
}

std::string Error::message() const { return fmt::format("{}: {}", to_string(code), context); }

Error os_error(int err, std::string_view what) {
  ErrorCode code = ErrorCode::io;
  switch (err) {
    case ENOENT: code = ErrorCode::not_found; break;
    case EEXIST:
    case ENOTEMPTY: code = ErrorCode::exists; break;
    case EXDEV: code = ErrorCode::cross_device; break;
    case EMLINK: code = ErrorCode::too_many_links; break;
    case ENOSPC:
    case EDQUOT: code = ErrorCode::no_space; break;
    case EPERM:
    case EACCES: code = ErrorCode::permission; break;
    case EOPNOTSUPP:
    case ENOTTY:
    case ENOSYS: code = ErrorCode::unsupported; break;
    case EBUSY: code = ErrorCode::busy; break;
    default: break;
  }
  return Error{code, err, fmt::format("{}: {}", what, std::strerror(err))};
}

Error make_error(ErrorCode code, std::string context) { return Error{code, 0, std::move(context)}; }

}  // namespace treesnap
