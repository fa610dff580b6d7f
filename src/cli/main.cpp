// treesnap's command line: parses arguments, calls the library, prints. No logic of its own.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/output.hpp"
#include "core/digest.hpp"
#include "treesnap/store.hpp"

namespace {

using namespace treesnap;

// Exit statuses, documented in docs/cli.md: 0 ok, 1 failure or damage found, 2 usage.
constexpr int k_exit_ok = 0;
constexpr int k_exit_failure = 1;
constexpr int k_exit_usage = 2;

struct Globals {
  std::string store;
  bool json = false;
  bool quiet = false;
  unsigned threads = 0;
  std::string sync = "batch";
};

int report(const Error& error, int status = k_exit_failure) {
  std::fprintf(stderr, "treesnap: error: %s\n", error.message().c_str());
  return status;
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

Result<Store> open_store(const Globals& g, bool create = true, DigestAlgorithm digest = DigestAlgorithm::sha256) {
  StoreOptions options;
  options.create = create;
  options.digest = digest;
  options.threads = g.threads;
  options.sync = g.sync == "none" ? SyncPolicy::none : g.sync == "per-object" ? SyncPolicy::per_object : SyncPolicy::batch;
  return Store::open(g.store.empty() ? Store::default_path() : std::filesystem::path(g.store), options);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"treesnap: snapshot directory trees into a deduplicated content-addressed store and\n"
               "restore them by hardlink, reflink or copy, chosen per file, safely.\n"
               "Exit status: 0 ok, 1 failure or damage found, 2 usage error."};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--store", g.store,
                 "store directory (default: $TREESNAP_STORE, else /var/lib/treesnap for root, else "
                 "$XDG_DATA_HOME/treesnap or ~/.local/share/treesnap)");
  app.add_flag("--json", g.json, "print one JSON document instead of the human summary");
  app.add_flag("-q,--quiet", g.quiet, "print nothing on success");
  app.add_option("--threads", g.threads, "worker threads for hashing and copying (default: one per core)");
  app.add_option("--sync", g.sync, "durability: batch (one syncfs before a snapshot commits; default), "
                                   "per-object (fsync each object), none (scratch stores)")
      ->check(CLI::IsMember({"batch", "per-object", "none"}));

  std::string digest = "sha256";
  auto* init = app.add_subcommand("init", "create the store (choosing its digest algorithm)");
  init->add_option("--digest", digest, "sha256 (default; equals OCI digests) or xxh3-128 (fast, trusted stores only)")
      ->check(CLI::IsMember({"sha256", "xxh3-128"}));

  std::string source, name;
  SnapshotOptions snap_options;
  auto* snapshot = app.add_subcommand("snapshot", "snapshot the tree at SRC into the store");
  snapshot->add_option("SRC", source, "directory to snapshot")->required();
  snapshot->add_option("--name", name, "NAME[:TAG] (default: SRC's base name, tag latest)");
  snapshot->add_flag("--force", snap_options.replace, "replace an existing snapshot of the same name");
  snapshot->add_flag("--cross-devices", snap_options.cross_devices,
                     "descend into other mounted file systems (default: record mount points as empty dirs)");

  std::string target, strategy = "auto";
  auto* restore = app.add_subcommand(
      "restore", "restore snapshot NAME into DEST (new or empty); built aside and renamed into place");
  restore->add_option("NAME", name, "NAME[:TAG] or an id prefix")->required();
  restore->add_option("DEST", target, "target directory")->required();
  restore->add_option("--strategy", strategy,
                      "auto (default): hardlink read-only files through a store inode with their mode,\n"
                      "owner and xattrs, reflink others where possible, else copy; hardlink: link every\n"
                      "non-empty read-only file, clone or copy the writable ones; reflink; copy\n"
                      "(verifies each object's digest while copying)")
      ->check(CLI::IsMember({"auto", "reflink", "hardlink", "copy"}));
  RestoreOptions restore_options;
  restore->add_flag("--strict-metadata", restore_options.strict_metadata,
                    "link only through inodes whose mtime equals the entry's too (a linked file otherwise\n"
                    "has the mtime of the first entry linked to its inode)");
  restore->add_flag("--hardlink-writable", restore_options.hardlink_writable,
                    "with --strategy hardlink, link writable files too (pnpm's behaviour). HAZARD: a write\n"
                    "through any name then changes that file in the store and in every tree linked to it");
  restore->add_flag("--no-copy-fallback", restore_options.no_copy_fallback,
                    "fail instead of copying a file that cannot be hardlinked or reflinked");

  auto* list = app.add_subcommand("list", "list snapshots");
  bool with_entries = false;
  auto* show = app.add_subcommand("show", "show one snapshot");
  show->add_option("NAME", name, "NAME[:TAG] or an id prefix")->required();
  show->add_flag("--entries", with_entries, "list every entry of the manifest");
  std::vector<std::string> names;
  auto* rm = app.add_subcommand("rm", "remove snapshots (content stays until garbage collection)");
  rm->add_option("NAME", names, "NAME[:TAG] or id prefix")->required();
  auto* verify = app.add_subcommand("verify", "re-hash every object; exit 1 naming each bad one");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int status = app.exit(e);
    return status == 0 ? k_exit_ok : k_exit_usage;
  }

  if (init->parsed()) {
    auto algorithm = parse_algorithm(digest);
    auto store = open_store(g, true, *algorithm);
    if (!store) return report(store.error());
    if (store->digest_algorithm() != *algorithm)
      return report(Error{ErrorCode::exists, 0,
                          fmt::format("store {} exists with digest {}", store->path().string(), to_string(store->digest_algorithm()))});
    if (g.json) print_json({{"store", store->path().string()}, {"digest", to_string(store->digest_algorithm())}});
    else if (!g.quiet) fmt::print("store {} ({})\n", store->path().string(), to_string(store->digest_algorithm()));
    return k_exit_ok;
  }

  auto store = open_store(g, snapshot->parsed() || restore->parsed());
  if (!store) return report(store.error());

  if (snapshot->parsed()) {
    if (name.empty()) {
      auto base = std::filesystem::absolute(source).lexically_normal();
      if (!base.has_filename()) base = base.parent_path();
      name = base.filename().string();
    }
    snap_options.name = name;
    auto result = store->snapshot(source, snap_options);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result));
    return k_exit_ok;
  }
  if (restore->parsed()) {
    RestoreOptions options = restore_options;
    options.strategy = strategy == "reflink" ? Strategy::reflink
                       : strategy == "hardlink" ? Strategy::hardlink
                       : strategy == "copy"     ? Strategy::copy
                                                : Strategy::automatic;
    if (options.no_copy_fallback && options.strategy == Strategy::copy)
      return report(Error{ErrorCode::invalid, 0, "--no-copy-fallback contradicts --strategy copy"}, k_exit_usage);
    // Progress only where a person watches: a terminal, and no output meant for a program.
    const bool show_progress = !g.json && !g.quiet && ::isatty(STDERR_FILENO) != 0;
    if (show_progress) {
      options.progress = [](const RestoreProgress& p) { fmt::print(stderr, "\r{}\033[K", cli::progress_line(p)); };
    }
    auto result = store->restore(name, target, options);
    if (show_progress) fmt::print(stderr, "\r\033[K");
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result));
    return k_exit_ok;
  }
  if (list->parsed()) {
    auto result = store->list();
    if (!result) return report(result.error());
    if (g.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& s : *result) out.push_back(cli::to_json(s));
      print_json(out);
    } else {
      for (const auto& s : *result)
        fmt::print("{:<30} {}  {}  {:>8} entries  {:>10}\n", s.name, s.id.substr(0, 12), cli::rfc3339(s.created_ns),
                   s.entries, cli::human_bytes(s.bytes));
    }
    return k_exit_ok;
  }
  if (show->parsed()) {
    auto result = store->show(name);
    if (!result) return report(result.error());
    std::vector<Entry> entries;
    if (with_entries) {
      auto loaded = store->entries(name);
      if (!loaded) return report(loaded.error());
      entries = std::move(*loaded);
    }
    if (g.json) {
      auto j = cli::to_json(*result);
      if (with_entries) {
        j["entries_list"] = nlohmann::json::array();
        for (const auto& e : entries) j["entries_list"].push_back(cli::to_json(e, store->digest_algorithm()));
      }
      print_json(j);
    } else {
      const auto& s = *result;
      fmt::print("name      {}\nid        {}\nmanifest  {}\ncreated   {}\nlast used {}\nentries   {}\nfiles     {} ({})\n"
                 "new       {} objects ({}) when snapshotted\n",
                 s.name, s.id, s.manifest_digest, cli::rfc3339(s.created_ns), cli::rfc3339(s.last_used_ns), s.entries,
                 s.files, cli::human_bytes(s.bytes), s.new_objects, cli::human_bytes(s.new_bytes));
      for (const auto& e : entries)
        fmt::print("{:<8} {:04o} {:>5} {:>5} {:>12} {} {}\n", to_string(e.type), e.mode, e.uid, e.gid, e.size,
                   e.digest.empty() ? "-" : to_hex(e.digest).substr(0, 16), e.path.empty() ? "." : cli::json_string(e.path));
    }
    return k_exit_ok;
  }
  if (rm->parsed()) {
    for (const auto& n : names) {
      auto result = store->remove(n);
      if (!result) return report(result.error());
      if (!g.quiet && !g.json) fmt::print("removed {}\n", n);
    }
    if (g.json) print_json({{"removed", names}});
    return k_exit_ok;
  }
  if (verify->parsed()) {
    auto result = store->verify({});
    if (!result) return report(result.error());
    if (g.json) {
      print_json(cli::to_json(*result));
    } else {
      for (const auto& b : result->bad) fmt::print("bad: {} {}: {}\n", b.digest, b.path, b.reason);
      if (!g.quiet)
        fmt::print("verified {} objects, {} in {:.2f} s: {}\n", result->objects, cli::human_bytes(result->bytes),
                   result->seconds, result->bad.empty() ? "all good" : fmt::format("{} bad", result->bad.size()));
    }
    return result->bad.empty() ? k_exit_ok : k_exit_failure;
  }
  return k_exit_usage;
}
