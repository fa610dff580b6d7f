// The one error type of treesnap. Every fallible call returns Result<T>; no exception crosses the
// library API. The CLI maps ErrorCode to exit statuses in one place (src/cli/main.cpp).
#pragma once

#include <expected>
#include <string>

namespace treesnap {

enum class ErrorCode {
  not_found,       // a snapshot, object or path that does not exist
  exists,          // the name or target is already taken
  corrupt,         // stored bytes do not match their digest, or a format does not parse
  io,              // any other operating-system failure
  invalid,         // bad input: a hostile manifest path, a malformed name, a bad option
  unsupported,     // the file system or platform cannot do what was asked
  busy,            // the database stayed locked past the retry budget
  cross_device,    // EXDEV: source and target are on different file systems
  too_many_links,  // EMLINK
  no_space,        // ENOSPC or EDQUOT
  permission,      // EPERM or EACCES
};

// Stable lower-case name of a code, e.g. "not_found"; used in messages and --json.
const char* to_string(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::io;
  int sys_errno = 0;    // the errno behind it, 0 when the error is not from the OS
  std::string context;  // what failed and where: "open objects/ab/cd…: No such file or directory"

  // "corrupt: object sha256:… has digest sha256:…" — one line, for users.
  std::string message() const;
};

template <typename T>
using Result = std::expected<T, Error>;

}  // namespace treesnap
