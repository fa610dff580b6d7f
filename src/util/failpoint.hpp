// Failpoints: named places in the I/O paths where a test makes the operation fail with a chosen
// errno, or kills the process, to prove what a failure or a crash there leaves behind (STYLE 17).
// They are for tests only; the names and their places are listed in docs/failpoints.md.
//
//   TREESNAP_FAILPOINTS="object.write=ENOSPC,snapshot.after_manifest=crash"
//
// Each entry is name=action, where action is an errno name (EIO, ENOSPC, EDQUOT, EROFS, ENOMEM,
// EACCES, EPERM) or `crash` (SIGKILL on the spot: no destructor, no flush, as `kill -9`). An
// optional `@N` fires only from the Nth time the point is passed on (`object.link=EIO@3`), so a
// run can fail after some work is done. The variable is read once, at the first check; unknown
// names or actions end the process at the first check with status 2 and the reason on stderr,
// so a typo cannot make a test pass silently.
// When the variable is unset a check costs one load and one predictable branch.
#pragma once

#include <atomic>
#include <span>
#include <string_view>


namespace treesnap::failpoint {

namespace detail {
// 0: not read yet, 1: unset (every check passes), 2: armed.
extern std::atomic<int> g_state;
int check_slow(std::string_view name);
}  // namespace detail

// 0 unless `name` is armed; armed with an errno, that errno, which the caller turns into its
// error with os_error as if the system call had failed; armed with crash, does not return.
//   if (int err = failpoint::error("object.link")) return std::unexpected(os_error(err, "publish " + name));
[[nodiscard]] inline int error(std::string_view name) {
  if (detail::g_state.load(std::memory_order_relaxed) == 1) [[likely]]
    return 0;
  return detail::check_slow(name);
}

// Every failpoint name the code knows.
std::span<const std::string_view> names();

}  // namespace treesnap::failpoint
