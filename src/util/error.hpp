// Building errors: the one place where errno becomes an ErrorCode (STYLE 4), and TRY.
#pragma once

#include <string>
#include <string_view>

#include "treesnap/result.hpp"

namespace treesnap {

// Translates errno to an Error; `what` says which operation on which path failed.
Error os_error(int err, std::string_view what);

// An error that does not come from the OS.
Error make_error(ErrorCode code, std::string context);

// Early return on failure: `TRY(auto fd, open_file(...));` or `TRY_VOID(do_thing());`.
#define TS_CONCAT_INNER(a, b) a##b
#define TS_CONCAT(a, b) TS_CONCAT_INNER(a, b)
#define TRY_IMPL(tmp, decl, expr)                       \
  auto tmp = (expr);                                    \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  decl = std::move(tmp).value()
#define TRY(decl, expr) TRY_IMPL(TS_CONCAT(try_tmp_, __LINE__), decl, expr)
#define TRY_VOID(expr)                                                  \
  do {                                                                  \
    auto try_void_tmp = (expr);                                         \
    if (!try_void_tmp) return std::unexpected(std::move(try_void_tmp).error()); \
  } while (0)

}  // namespace treesnap
