// treesnap's command line: parses arguments, calls the library, prints. No logic of its own.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/output.hpp"
#include "cli/sizes.hpp"
#include "core/digest.hpp"
#include "treesnap/config.hpp"
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

int usage_error(const std::string& message) {
  std::fprintf(stderr, "treesnap: usage: %s\n", message.c_str());
  return k_exit_usage;
}

std::int64_t now_ns_for_cli() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

// `gc --watch`: one automatic round (eviction above the high watermark), or orphans and staging
// only, every `interval` seconds until SIGINT or SIGTERM. A failed round is reported and retried.
int watch(const Store& store, const GcOptions& base, double interval, const Globals& g) {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  while (!g_stop) {
    auto round = store.auto_gc();
    Result<GcReport> report = round ? (*round ? Result<GcReport>(std::move(**round)) : store.gc(base))
                                    : Result<GcReport>(std::unexpected(round.error()));
    if (!report) {
      std::fprintf(stderr, "treesnap: error: %s\n", report.error().message().c_str());
    } else if (g.json) {
      std::cout << cli::to_json(*report).dump() << std::endl;  // one JSON document per line
    } else if (!g.quiet && (report->objects_removed || report->staging_removed || !report->evicted.empty())) {
      fmt::print("{} {}", cli::rfc3339(now_ns_for_cli()), cli::to_text(*report));
      std::fflush(stdout);
    }
    for (double waited = 0; waited < interval && !g_stop; waited += 0.1)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return k_exit_ok;
}

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
  auto* threads_option = app.add_option(
      "--threads", g.threads, "worker threads for hashing and copying (default: one per core; also\n"
                              "TREESNAP_PARALLELISM, treesnap.toml [store] parallelism)");
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
  snapshot->add_flag("--relocatable", snap_options.relocatable,
                     "record every file and offset where SRC's absolute path occurs (text and binary),\n"
                     "so that `restore --relocate` can rewrite it; reads every file (no stat cache)");

  std::string target, strategy;
  auto* restore = app.add_subcommand(
      "restore", "restore snapshot NAME into DEST (new or empty); built aside and renamed into place.\n"
                 "--update: bring a tree treesnap restored at DEST to NAME in place (exit 1 on conflicts)");
  restore->add_option("NAME", name, "NAME[:TAG], an id prefix, or oci://HOST[:PORT]/REPO[:TAG|@DIGEST] (pulled\n"
                                    "first, fetching only what the store lacks, then restored)")->required();
  restore->add_option("DEST", target, "target directory")->required();
  restore->add_option("--strategy", strategy,
                      "auto (default): hardlink read-only files through a store inode with their mode,\n"
                      "owner and xattrs, reflink others where possible, else copy; hardlink: link every\n"
                      "non-empty read-only file, clone or copy the writable ones; reflink; copy\n"
                      "(verifies each object's digest while copying). Also TREESNAP_STRATEGY, treesnap.toml")
      ->check(CLI::IsMember({"auto", "reflink", "hardlink", "copy"}));
  bool strict_metadata = false, hardlink_writable = false, no_copy_fallback = false;
  auto* strict_flag = restore->add_flag(
      "--strict-metadata,!--no-strict-metadata", strict_metadata,
      "link only through inodes whose mtime equals the entry's too (a linked file otherwise\n"
      "has the mtime of the first entry linked to its inode)");
  auto* writable_flag = restore->add_flag(
      "--hardlink-writable,!--no-hardlink-writable", hardlink_writable,
      "with --strategy hardlink, link writable files too (pnpm's behaviour). HAZARD: a write\n"
      "through any name then changes that file in the store and in every tree linked to it");
  auto* no_copy_flag = restore->add_flag("--no-copy-fallback,!--copy-fallback", no_copy_fallback,
                                         "fail instead of copying a file that cannot be hardlinked or reflinked");
  bool relocate = false;
  restore->add_flag("--relocate", relocate,
                    "rewrite the source path a --relocatable snapshot recorded to DEST's absolute path\n"
                    "(text: any length; binary: only a path at most as long, NUL-padded). Those files\n"
                    "are private copies; a refusal lists the files and writes nothing");

  bool update = false, force = false;
  restore->add_flag("--update", update,
                    "DEST holds a tree treesnap restored: keep entries equal to NAME's (same inode),\n"
                    "replace the ones that differ atomically, add new ones, remove the ones NAME lacks.\n"
                    "Files changed since the restore, or not created by treesnap, are left alone and\n"
                    "reported as conflicts (exit 1). Run it again after an interruption to finish");
  restore->add_flag("--force", force,
                    "with --update: replace conflicting files too, and update a DEST with no restore\n"
                    "record (never removes a file treesnap did not create)");

  std::string probe_dir = ".";
  auto* probe = app.add_subcommand(
      "probe", "try hardlink, reflink (FICLONE) and copy_file_range between the store and DIR's file\n"
               "system with throwaway files, record the result in the store (restores use it) and print it");
  probe->add_option("DIR", probe_dir, "a writable directory on the target file system (default: .)");

  // Registry access shared by push, pull, restore oci://… and repair --from oci://…
  RegistryAccess access;
  bool plain_http = false;
  auto add_access = [&](CLI::App* cmd, bool downloads) {
    cmd->add_option("--jobs", access.jobs, "transfers at once, each with its own connection (default 4)")
        ->check(CLI::Range(1, 64));
    cmd->add_flag("--plain-http", plain_http,
                  "speak plain HTTP to the registry (default: only for localhost, 127.0.0.1 and ::1)");
    if (!downloads) return;
    cmd->add_option("--proxy", access.proxy,
                    "HTTP proxy for blob downloads, e.g. Dragonfly's dfdaemon http://127.0.0.1:4001\n"
                    "(default: treesnap.toml [registry.\"HOST:PORT\"] proxy)");
    cmd->add_option("--header", access.headers,
                    "header line added to blob downloads, e.g. 'X-Dragonfly-Use-P2P: true' (repeatable)");
    cmd->add_option("--mirror", access.mirrors, "mirror base URL tried before the registry (repeatable)");
  };
  add_access(restore, true);

  std::string push_name, reference, mount_from;
  std::vector<std::string> bases;
  auto* push = app.add_subcommand(
      "push", "push snapshot NAME to an OCI registry: REFERENCE is oci://HOST[:PORT]/REPO:TAG. Files of 1 MiB and\n"
              "more become blobs of their own, smaller ones go into packs; blobs the registry has and packs\n"
              "of the tag's current manifest (and of --base) are reused, so an incremental push sends what changed");
  push->add_option("NAME", push_name, "NAME[:TAG] or an id prefix")->required();
  push->add_option("REFERENCE", reference, "oci://HOST[:PORT]/REPO:TAG")->required();
  push->add_option("--mount-from", mount_from,
                   "repository of the same registry to mount blobs from (its manifest of the same tag is reused too); "
                   "blobs the registry will not mount are uploaded");
  push->add_option("--base", bases, "another oci:// reference in the same repository whose packs may be reused (repeatable)");
  add_access(push, false);

  bool pull_force = false;
  std::string pull_name;
  auto* pull = app.add_subcommand(
      "pull", "pull a snapshot from an OCI registry into the store, fetching only the objects the store lacks;\n"
              "every byte is checked against its sha256 before it is stored. Run again after a failure, it\n"
              "resumes. restore oci://… pulls and restores in one step");
  pull->add_option("REFERENCE", reference, "oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]")->required();
  pull->add_option("--name", pull_name, "local NAME[:TAG] (default: REPO:TAG of the reference)");
  pull->add_flag("--force", pull_force, "point an existing local name at the pulled snapshot");
  add_access(pull, true);

  auto* config = app.add_subcommand(
      "config", "print every setting's effective value and where it came from\n"
                "(flag > environment TREESNAP_* > STORE/treesnap.toml > default)");

  auto* list = app.add_subcommand("list", "list snapshots");
  bool with_entries = false;
  auto* show = app.add_subcommand("show", "show one snapshot");
  show->add_option("NAME", name, "NAME[:TAG] or an id prefix")->required();
  show->add_flag("--entries", with_entries, "list every entry of the manifest");
  std::vector<std::string> names;
  auto* rm = app.add_subcommand("rm", "remove snapshots (content stays until garbage collection)");
  rm->add_option("NAME", names, "NAME[:TAG] or id prefix")->required();
  VerifyOptions verify_options;
  auto* verify = app.add_subcommand(
      "verify", "check every object and link variant (or those of the snapshots NAME...); a damaged one is\n"
                "moved to quarantine and reported with the snapshots, paths and restored trees that need it;\n"
                "exit 1 when anything was damaged");
  verify->add_flag("--fast", verify_options.fast,
                   "re-hash only files whose stat (inode, size, mtime, ctime, mode) differs from the one recorded\n"
                   "when their content was last known good: catches a write through any hardlink in seconds");
  verify->add_option("NAME", verify_options.names, "NAME[:TAG] or id prefix (default: the whole store)");

  StatusOptions status_options;
  std::string tree_dir;
  auto* status = app.add_subcommand(
      "status", "how the tree treesnap restored at DIR differs from its snapshot (content, metadata, link,\n"
                "type, removed, added); exit 1 when anything differs");
  status->add_option("DIR", tree_dir, "a restored tree")->required();
  status->add_flag("--verify", status_options.verify, "hash every file (default: only files whose stat changed)");

  RepairOptions repair_options;
  auto* repair = app.add_subcommand(
      "repair", "bring the restored tree at DIR back to its snapshot: a damaged inode with other names is\n"
                "rewritten in place (every name heals, link counts stay), a file only DIR has is replaced\n"
                "atomically; intact bytes come from the store, the snapshot's source, trees restored by copy\n"
                "or reflink, --from stores, then --from registries (pulled only when content is still lost),\n"
                "each hashed first. Exit 1 when content is lost");
  repair->add_option("DIR", tree_dir, "a restored tree")->required();
  repair->add_option("--from", repair_options.from,
                     "another store to take intact objects from, or oci://HOST[:PORT]/REPO[:TAG|@DIGEST] (repeatable);\n"
                     "stores are tried first, in order; a registry only when content is still lost: the whole\n"
                     "snapshot is then pulled into a scratch store in the store's tmp/, used, and removed");
  repair->add_flag("--dry-run", repair_options.dry_run, "report what would be done; change nothing");
  repair->add_flag("--prune", repair_options.prune, "also remove files and directories the snapshot does not have");
  add_access(repair, true);

  std::string pin_name;
  auto* pin = app.add_subcommand("pin", "protect snapshot NAME from eviction by gc");
  pin->add_option("NAME", pin_name, "NAME[:TAG] or an id prefix")->required();
  auto* unpin = app.add_subcommand("unpin", "let gc evict snapshot NAME again");
  unpin->add_option("NAME", pin_name, "NAME[:TAG] or an id prefix")->required();

  GcOptions gc_options;
  std::string max_size, min_free, grace = "1h";
  bool watch_mode = false;
  double interval = 60;
  auto* gc = app.add_subcommand(
      "gc", "remove orphaned objects and stale staging files; with --max-size or --min-free also evict\n"
            "whole snapshots, least recently used first, never pinned ones");
  gc->add_flag("--dry-run", gc_options.dry_run, "report what would go and what it would free; remove nothing");
  gc->add_option("--max-size", max_size, "evict until the store's size is at most SIZE (e.g. 10G, 500M)");
  gc->add_option("--min-free", min_free, "evict until the store's file system has SIZE or PCT% free (e.g. 20G, 15%)");
  gc->add_option("--grace", grace, "keep staging files younger than DURATION (default 1h; e.g. 90s, 30m, 0)");
  gc->add_flag("--full", gc_options.full,
               "also remove files under objects/ and variants/ that no database row records (reads the whole store)");
  gc->add_flag("--watch", watch_mode,
               "run until SIGINT/SIGTERM: every --interval, evict down to the low watermark of treesnap.toml when\n"
               "usage is above the high one, else remove orphans and stale staging files");
  gc->add_option("--interval", interval, "seconds between --watch rounds (default 60)")->check(CLI::PositiveNumber);

  UsageOptions usage_options;
  auto* du = app.add_subcommand("du", "store size, bytes unique to each snapshot, shared bytes, what gc would free");
  du->add_flag("--exact", usage_options.exact,
               "also stat every object to find bytes linked from outside the store (restored trees), which\n"
               "eviction would not free (reads the whole store)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int status = app.exit(e);
    return status == 0 ? k_exit_ok : k_exit_usage;
  }

  if (no_copy_fallback && strategy == "copy")
    return report(Error{ErrorCode::invalid, 0, "--no-copy-fallback contradicts --strategy copy"}, k_exit_usage);
  // Settings: flags first, then the environment, the store's treesnap.toml, the defaults.
  SettingOverrides overrides;
  if (!strategy.empty()) overrides.strategy = parse_strategy(strategy);
  if (strict_flag->count()) overrides.strict_metadata = strict_metadata;
  if (writable_flag->count()) overrides.hardlink_writable = hardlink_writable;
  if (no_copy_flag->count()) overrides.no_copy_fallback = no_copy_fallback;
  if (threads_option->count()) overrides.parallelism = g.threads;
  const std::filesystem::path store_dir = g.store.empty() ? Store::default_path() : std::filesystem::path(g.store);
  auto settings = load_settings(store_dir, overrides);
  if (!settings) return report(settings.error());
  g.threads = settings->parallelism.value;

  if (config->parsed()) {
    if (g.json) print_json(cli::to_json(*settings));
    else fmt::print("{}", cli::to_text(*settings));
    return k_exit_ok;
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

  auto store = open_store(g, snapshot->parsed() || restore->parsed() || pull->parsed());
  if (!store) return report(store.error());

  if (probe->parsed()) {
    auto result = store->probe(probe_dir);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result));
    return k_exit_ok;
  }

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
  if (plain_http) access.plain_http = true;
  // Progress only where a person watches: a terminal, and no output meant for a program.
  const bool on_terminal = !g.json && !g.quiet && ::isatty(STDERR_FILENO) != 0;
  auto transfer_progress = [&](std::string_view verb) -> std::function<void(const TransferProgress&)> {
    if (!on_terminal) return {};
    return [verb](const TransferProgress& p) { fmt::print(stderr, "\r{}\033[K", cli::progress_line(p, verb)); };
  };
  auto clear_progress = [&] {
    if (on_terminal) fmt::print(stderr, "\r\033[K");
  };
  if (push->parsed()) {
    PushOptions options;
    options.access = access;
    options.mount_from = mount_from;
    options.bases = bases;
    options.progress = transfer_progress("pushing");
    auto result = store->push(push_name, reference, options);
    clear_progress();
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result, "pushed"));
    return k_exit_ok;
  }
  std::optional<TransferSummary> pulled;
  if (pull->parsed() || (restore->parsed() && name.starts_with("oci://"))) {
    PullOptions options;
    options.access = access;
    options.name = pull_name;
    // restore oci://… follows the tag: the local name moves with it.
    options.replace = pull_force || restore->parsed();
    options.progress = transfer_progress("pulling");
    auto result = store->pull(pull->parsed() ? reference : name, options);
    clear_progress();
    if (!result) return report(result.error());
    if (pull->parsed()) {
      if (g.json) print_json(cli::to_json(*result));
      else if (!g.quiet) fmt::print("{}", cli::to_text(*result, "pulled"));
      return k_exit_ok;
    }
    if (!g.json && !g.quiet) fmt::print("{}", cli::to_text(*result, "pulled"));
    name = result->name;
    pulled = std::move(*result);
  }
  if (restore->parsed()) {
    RestoreOptions options = settings->restore_options();
    options.relocate = relocate;
    if (force && !update)
      return report(Error{ErrorCode::invalid, 0, "restore --force needs --update"}, k_exit_usage);
    if (update && relocate)
      return report(Error{ErrorCode::invalid, 0, "restore --update cannot --relocate"}, k_exit_usage);
    options.mode = update ? RestoreMode::update : RestoreMode::create;
    options.force = force;
    // Progress only where a person watches: a terminal, and no output meant for a program.
    const bool show_progress = !g.json && !g.quiet && ::isatty(STDERR_FILENO) != 0;
    if (show_progress) {
      options.progress = [](const RestoreProgress& p) { fmt::print(stderr, "\r{}\033[K", cli::progress_line(p)); };
    }
    auto result = store->restore(name, target, options);
    if (show_progress) fmt::print(stderr, "\r\033[K");
    if (!result) return report(result.error());
    if (g.json && pulled) print_json({{"pull", cli::to_json(*pulled)}, {"restore", cli::to_json(*result)}});
    else if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result));
    if (result->update.conflicts > 0 && !g.json)
      fmt::print(stderr, "treesnap: {} conflict(s) left alone in {}; --force replaces them\n", result->update.conflicts,
                 result->target.string());
    return result->update.conflicts > 0 ? k_exit_failure : k_exit_ok;
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
  if (pin->parsed() || unpin->parsed()) {
    auto result = store->pin(pin_name, pin->parsed());
    if (!result) return report(result.error());
    if (g.json) print_json({{"name", pin_name}, {"pinned", pin->parsed()}});
    else if (!g.quiet) fmt::print("{} {}\n", pin->parsed() ? "pinned" : "unpinned", pin_name);
    return k_exit_ok;
  }
  if (gc->parsed()) {
    if (!max_size.empty()) {
      auto bytes = cli::parse_size(max_size);
      if (!bytes) return usage_error("--max-size wants a size such as 10G or 500M, not " + max_size);
      gc_options.max_size = std::max<std::uint64_t>(*bytes, 1);
    }
    if (!min_free.empty()) {
      if (auto pct = cli::parse_percent(min_free)) gc_options.min_free_percent = *pct;
      else if (auto bytes = cli::parse_size(min_free)) gc_options.min_free_bytes = *bytes;
      else return usage_error("--min-free wants a size (20G) or a percentage (15%), not " + min_free);
    }
    auto grace_s = cli::parse_duration_seconds(grace);
    if (!grace_s) return usage_error("--grace wants a duration such as 90s, 30m or 1h, not " + grace);
    gc_options.grace_seconds = *grace_s;
    if (watch_mode) return watch(*store, gc_options, interval, g);
    auto result = store->gc(gc_options);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result));
    return k_exit_ok;
  }
  if (du->parsed()) {
    auto result = store->usage(usage_options);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else if (!g.quiet) fmt::print("{}", cli::to_text(*result));
    return k_exit_ok;
  }
  if (verify->parsed()) {
    auto result = store->verify(verify_options);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else fmt::print("{}", cli::to_text(*result, g.quiet));
    return result->clean() ? k_exit_ok : k_exit_failure;
  }
  if (status->parsed()) {
    auto result = store->status(tree_dir, status_options);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else fmt::print("{}", cli::to_text(*result, g.quiet));
    return result->clean() ? k_exit_ok : k_exit_failure;
  }
  if (repair->parsed()) {
    repair_options.access = access;
    auto result = store->repair(tree_dir, repair_options);
    if (!result) return report(result.error());
    if (g.json) print_json(cli::to_json(*result));
    else fmt::print("{}", cli::to_text(*result, g.quiet));
    return result->complete() ? k_exit_ok : k_exit_failure;
  }
  return k_exit_usage;
}
