#include "util/failpoint.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include <cstdio>

#include <fmt/format.h>

namespace treesnap::failpoint {
namespace {

constexpr std::string_view k_names[] = {
    "object.write",            // writing content into a staged object (ingest, manifest, pull)
    "object.link",             // the no-replace link that publishes a staged object
    "object.after_link",       // crash: an object is published, nothing refers to it yet
    "store.sync",              // flushing the store before a commit (syncfs; fsync per object)
    "snapshot.after_objects",  // crash: every file's object published, no manifest yet
    "snapshot.after_manifest", // crash: the manifest published, not yet synced
    "snapshot.after_sync",     // crash: everything durable, the snapshot not committed
    "snapshot.commit",         // the transaction that makes the snapshot visible
    "snapshot.after_commit",   // crash: committed, the command has not reported yet
    "restore.write",           // copying an object's bytes into a restored file
    "restore.rename",          // moving the finished tree into place
    "restore.after_rename",    // crash: the tree in place, its restore record not written
    "restore.record",          // in the record's transaction (new or amended), before its commit
    "gc.unlink",               // removing a collected object's file
    "gc.after_unlink",         // crash: a batch's files removed, its rows not yet deleted
    "gc.after_aside",          // crash: --full moved an unrecorded file into tmp/, not yet deleted
};

constexpr std::pair<std::string_view, int> k_errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
    {"ENOMEM", ENOMEM}, {"EACCES", EACCES}, {"EPERM", EPERM},
};

constexpr int k_crash = -1;

struct Armed {
  std::string name;
  int err = 0;  // an errno, or k_crash
  std::uint64_t from = 1;
  std::atomic<std::uint64_t> passes{0};
};

// A deque: Armed holds an atomic, so entries must never move.
std::deque<Armed>& armed() {
  static std::deque<Armed> all;
  return all;
}

std::optional<std::string> parse(std::string_view text) {
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    auto bad = [&](std::string_view why) {
      return fmt::format("TREESNAP_FAILPOINTS: {:?}: {}", item, why);
    };
    auto eq = item.find('=');
    if (eq == std::string_view::npos) return bad("expected name=action");
    std::string_view name = item.substr(0, eq), action = item.substr(eq + 1);
    bool known = false;
    for (auto n : k_names) known = known || n == name;
    if (!known) return bad("no such failpoint (docs/failpoints.md lists them)");
    std::uint64_t from = 1;
    if (auto at = action.find('@'); at != std::string_view::npos) {
      std::string_view count_text = action.substr(at + 1);
      auto [end, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), from);
      if (ec != std::errc() || end != count_text.data() + count_text.size() || from == 0)
        return bad("@N needs a count from 1");
      action = action.substr(0, at);
    }
    int err = 0;
    if (action == "crash") err = k_crash;
    for (const auto& [text_errno, value] : k_errnos)
      if (action == text_errno) err = value;
    if (err == 0) return bad("the action is `crash` or one of EIO, ENOSPC, EDQUOT, EROFS, ENOMEM, EACCES, EPERM");
    auto& a = armed().emplace_back();
    a.name = std::string(name);
    a.err = err;
    a.from = from;
  }
  return std::nullopt;
}

std::once_flag g_once;

void load() {
  const char* env = std::getenv("TREESNAP_FAILPOINTS");
  if (env == nullptr || *env == '\0') {
    detail::g_state.store(1, std::memory_order_relaxed);
    return;
  }
  if (auto bad = parse(env)) {
    fmt::print(stderr, "treesnap: {}\n", *bad);
    std::_Exit(2);
  }
  detail::g_state.store(2, std::memory_order_release);
}

}  // namespace

namespace detail {

std::atomic<int> g_state{0};

int check_slow(std::string_view name) {
  std::call_once(g_once, load);
  if (g_state.load(std::memory_order_acquire) == 1) return 0;
  for (auto& a : armed()) {
    if (a.name != name) continue;
    if (a.passes.fetch_add(1, std::memory_order_relaxed) + 1 < a.from) continue;
    if (a.err == k_crash) {
      ::kill(::getpid(), SIGKILL);
      ::_exit(137);  // not reached
    }
    return a.err;
  }
  return 0;
}

}  // namespace detail

std::span<const std::string_view> names() { return k_names; }

}  // namespace treesnap::failpoint
