// The public Store: opens the layers below and forwards each call to its module.
#include "treesnap/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "core/entry_path.hpp"
#include "core/manifest.hpp"
#include "gc/collector.hpp"
#include "config/settings.hpp"
#include "meta/database.hpp"
#include "meta/lease.hpp"
#include "remote/reference.hpp"
#include "remote/registry.hpp"
#include "restore/probe.hpp"
#include "restore/record.hpp"
#include "restore/restorer.hpp"
#include "restore/updater.hpp"
#include "snapshot/snapshotter.hpp"
#include "store/layout.hpp"
#include "store/object_store.hpp"
#include "transfer/pull.hpp"
#include "transfer/push.hpp"
#include "util/posix.hpp"
#include "util/thread_pool.hpp"
#include "util/trace.hpp"
#include "verify/repairer.hpp"
#include "verify/tree_status.hpp"
#include "verify/verifier.hpp"

namespace treesnap {

namespace {

// A store that exists for one call, in the store's tmp/ under a staging name that carries our pid:
// gc leaves it alone while we run and removes it if we die. Removed when this goes out of scope.
struct ScratchStore {
  int parent_fd = -1;
  std::string name;
  std::filesystem::path path;
  std::string reference;  // the oci:// reference pulled into it
  std::optional<Store> store;

  ScratchStore() = default;
  ScratchStore(const ScratchStore&) = delete;
  ScratchStore& operator=(const ScratchStore&) = delete;
  ~ScratchStore() {
    store.reset();  // closes its database and directories first
    if (!name.empty()) (void)remove_tree(parent_fd, name);
  }
};

}  // namespace

// The library's background collector (Store::start_auto_gc).
struct AutoGcThread {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::jthread thread;
};

struct Store::Impl {
  std::filesystem::path path;
  std::string db_path;
  StoreOptions options;
  ObjectStore objects;
  unsigned threads;
  std::unique_ptr<AutoGcThread> auto_gc = std::make_unique<AutoGcThread>();

  Result<Database> db() const { return Database::open(db_path, false); }
  Result<GcConfig> gc_config() const {
    TRY(auto settings, load_settings(path));
    return GcConfig{settings.gc_high_watermark.value, settings.gc_low_watermark.value};
  }

  // Evicts down to the low watermark when usage is over the high one; nothing otherwise.
  Result<std::optional<GcReport>> auto_gc_round() const {
    TRY(auto config, gc_config());
    TRY(auto fs, fs_space(objects.root_fd()));
    if (fs.size == 0) return std::optional<GcReport>{};
    const double used = 100.0 * static_cast<double>(fs.size - std::min(fs.free, fs.size)) / static_cast<double>(fs.size);
    if (used <= config.high_watermark) return std::optional<GcReport>{};
    GcOptions gc_options;
    gc_options.min_free_percent = 100.0 - config.low_watermark;
    TRY(auto report, collect_garbage(objects, db_path, gc_options));
    return std::optional<GcReport>{std::move(report)};
  }

  // "name:tag", "name" (tag latest), or a unique prefix of a snapshot id.
  Result<SnapshotRecord> resolve(Database& db, const std::string& text) const {
    auto names = parse_snapshot_name(text);
    if (names) {
      TRY(auto found, db.find_snapshot(names->first, names->second));
      if (found) return *found;
    }
    bool hex = text.size() >= 4 && text.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (hex) {
      TRY(auto matches, db.find_by_id_prefix(text));
      // Names that share one manifest share the id: any of them restores the same tree.
      auto same_tree = [&](const SnapshotRecord& r) { return r.manifest == matches.front().manifest; };
      if (!matches.empty() && std::all_of(matches.begin(), matches.end(), same_tree)) return matches.front();
      if (matches.size() > 1)
        return std::unexpected(make_error(ErrorCode::invalid, fmt::format("snapshot id prefix {} is ambiguous", text)));
    }
    return std::unexpected(make_error(ErrorCode::not_found, fmt::format("no snapshot named {}", text)));
  }

  Result<Manifest> load_manifest(const SnapshotRecord& record) const {
    TRY(auto bytes, objects.read_verified(record.manifest));
    TRY(auto manifest, decode_manifest(bytes));
    if (manifest.algorithm != objects.algorithm())
      return std::unexpected(make_error(ErrorCode::corrupt, "manifest digest algorithm differs from the store's"));
    return manifest;
  }

  // A client for `ref`: the caller's access options first, then the store's
  // [registry."host:port"] table (headers and mirrors of both apply), then the defaults.
  Result<remote::RegistryClient> registry(const remote::Reference& ref, const RegistryAccess& access) const {
    TRY(auto settings, load_settings(path));
    remote::RegistryOptions client_options;
    client_options.plain_http = access.plain_http;
    if (auto it = settings.registries.find(ref.registry()); it != settings.registries.end()) {
      const auto& r = it->second;
      if (!client_options.plain_http) client_options.plain_http = r.plain_http;
      client_options.blob_proxy = r.proxy;
      client_options.blob_headers = r.headers;
      client_options.mirrors = r.mirrors;
    }
    if (!access.proxy.empty()) client_options.blob_proxy = access.proxy;
    client_options.blob_headers.insert(client_options.blob_headers.end(), access.headers.begin(), access.headers.end());
    client_options.mirrors.insert(client_options.mirrors.end(), access.mirrors.begin(), access.mirrors.end());
    return remote::RegistryClient::open(ref, std::move(client_options));
  }

  // A snapshot that needs a quarantined object cannot be restored: `corrupt`, naming the object
  // and the paths that need it (docs/integrity.md).
  Result<void> refuse_quarantined(Database& db, const SnapshotRecord& record, const Manifest& manifest) const {
    TRY(auto quarantined, db.quarantined());
    std::vector<std::string> damaged, paths;
    for (const auto& q : quarantined) {
      if (!q.object) continue;
      bool needed = false;
      for (const auto& e : manifest.entries) {
        if (e.type != EntryType::file || e.digest.view() != q.digest) continue;
        needed = true;
        if (paths.size() < 10) paths.push_back(e.path);
      }
      if (needed) damaged.push_back(digest_text(objects.algorithm(), q.digest));
    }
    if (damaged.empty()) return {};
    std::string list;
    for (const auto& p : paths) list += (list.empty() ? "" : ", ") + fmt::format("{:?}", p);
    return std::unexpected(make_error(
        ErrorCode::corrupt, fmt::format("snapshot {}:{} needs {} damaged object(s) in quarantine ({}{}), for {}; run "
                                        "treesnap repair on a tree restored from it, or snapshot an intact copy again",
                                        record.name, record.tag, damaged.size(), damaged.front(),
                                        damaged.size() > 1 ? ", …" : "", list)));
  }

  // Pulls `ref` into a new scratch store beside this one's staging files, with this store's
  // registry settings and digest algorithm, so that its objects/ has the names repair looks up.
  // Nothing is synced: the scratch store is read once and removed.
  Result<void> pull_scratch(const std::string& reference, const RegistryAccess& access, ScratchStore& scratch) const {
    TRY(auto ref, remote::parse_reference(reference));
    scratch.parent_fd = objects.staging_fd();
    scratch.name = layout::staging_name("repair", ::getpid(), fmt::format("{:08x}", std::random_device{}()));
    scratch.path = path / layout::k_staging / scratch.name;
    scratch.reference = reference;
    StoreOptions side_options;
    side_options.digest = objects.algorithm();
    side_options.sync = SyncPolicy::none;
    side_options.threads = threads;
    TRY(auto side, Store::open(scratch.path, side_options));
    scratch.store.emplace(std::move(side));
    TRY(auto client, registry(ref, access));
    auto& impl = *scratch.store->m_impl;
    TRY(auto db, impl.db());
    TRY(auto lease, Lease::acquire(impl.db_path, "pull"));
    PullOptions pull_options;
    pull_options.access = access;
    auto pulled = transfer::pull_snapshot(impl.objects, db, *lease, client,
                                          ref.reference().empty() ? "latest" : ref.reference(), "repair", "source",
                                          pull_options);
    if (!pulled) {
      Error e = pulled.error();
      e.context = fmt::format("pull {} for repair: {}", reference, e.context);
      return std::unexpected(std::move(e));
    }
    return {};
  }

  SnapshotSummary summarize(const SnapshotRecord& r) const {
    SnapshotSummary s;
    s.name = r.name + ":" + r.tag;
    s.id = to_hex(r.manifest);
    s.manifest_digest = digest_text(objects.algorithm(), r.manifest);
    s.entries = r.entries;
    s.files = r.files;
    s.bytes = r.bytes;
    s.new_objects = r.new_objects;
    s.new_bytes = r.new_bytes;
    s.created_ns = r.created_ns;
    s.last_used_ns = r.last_used_ns;
    return s;
  }
};

std::filesystem::path Store::default_path() {
  if (const char* env = std::getenv("TREESNAP_STORE"); env && *env) return env;
  if (::geteuid() == 0) return "/var/lib/treesnap";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / "treesnap";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : ".") / ".local/share/treesnap";
}

Result<Store> Store::open(const std::filesystem::path& dir, const StoreOptions& options) {
  std::string db_path = (dir / layout::k_database).string();
  struct stat st {};
  const bool exists = ::stat(db_path.c_str(), &st) == 0;
  if (!exists) {
    if (!options.create)
      return std::unexpected(make_error(ErrorCode::not_found, fmt::format("no treesnap store at {}", dir.string())));
    // Refuse to turn an unrelated, non-empty directory into a store.
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec))
      return std::unexpected(make_error(ErrorCode::invalid,
                                        fmt::format("{} is not empty and is not a treesnap store", dir.string())));
    TRY_VOID(mkdir_p(dir.string(), 0700));
  }
  TRY(auto db, Database::open(db_path, !exists));
  if (!exists) TRY_VOID(db.set_info_if_absent("digest", to_string(options.digest)));
  TRY(auto recorded, db.get_info("digest"));
  if (!recorded) return std::unexpected(make_error(ErrorCode::corrupt, "store records no digest algorithm"));
  TRY(auto algorithm, parse_algorithm(*recorded));
  TRY(auto objects, ObjectStore::open(dir.string(), algorithm, options.sync, !exists));
  if (!exists) TRY_VOID(write_default_config(dir));
  auto impl = std::make_unique<Impl>(Impl{dir, db_path, options, std::move(objects),
                                          options.threads ? options.threads : default_thread_count()});
  return Store(std::move(impl));
}

Store::Store(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() {
  if (m_impl) stop_auto_gc();
}

const std::filesystem::path& Store::path() const { return m_impl->path; }
DigestAlgorithm Store::digest_algorithm() const { return m_impl->objects.algorithm(); }

Result<SnapshotSummary> Store::snapshot(const std::filesystem::path& source, const SnapshotOptions& options) const {
  TRY(auto db, m_impl->db());
  SnapshotSummary summary;
  {
    TRY(auto lease, Lease::acquire(m_impl->db_path, "snapshot"));
    TRY(summary, take_snapshot(m_impl->objects, db, *lease, source, options, m_impl->threads));
  }
  // The snapshot stands whatever the automatic collection does; its failure is left to the next
  // round (or to an explicit `treesnap gc`).
  (void)auto_gc();
  return summary;
}

Result<RestoreSummary> Store::restore(const std::string& name, const std::filesystem::path& target,
                                      const RestoreOptions& options) const {
  TRY(auto db, m_impl->db());
  RestoreSummary summary;
  {
    // Taken before the name is resolved: every object the snapshot references is live then, so
    // an `rm` and a `gc` during the restore cannot remove any of them (meta/lease.hpp).
    TRY(auto lease, Lease::acquire(m_impl->db_path, "restore"));
    TRY(auto record, m_impl->resolve(db, name));
    TRY(auto manifest, m_impl->load_manifest(record));
    TRY_VOID(validate_manifest(manifest));
    TRY_VOID(m_impl->refuse_quarantined(db, record, manifest));
    TRY(auto outcome, options.mode == RestoreMode::update
                          ? update_tree(m_impl->objects, db, manifest, target, options, m_impl->threads)
                          : restore_tree(m_impl->objects, db, manifest, target, options, m_impl->threads));
    summary = outcome.summary;
    summary.name = record.name + ":" + record.tag;
    summary.id = to_hex(record.manifest);
    // The tree is in place: a failure to record it is reported, and status/repair will not know it.
    PhaseTimer timer("restore");
    TRY_VOID(record_restored_tree(db, manifest, outcome, summary.name, record.manifest));
    timer.phase("record");
    TRY_VOID(db.touch_snapshot(record.row_id, now_ns()));
  }
  (void)auto_gc();
  return summary;
}

Result<ProbeReport> Store::probe(const std::filesystem::path& dir) const {
  TRY(auto db, m_impl->db());
  TRY(auto fd, open_at(AT_FDCWD, dir.string(), O_RDONLY | O_DIRECTORY));
  return pair_probe(db, m_impl->objects, fd.get(), ProbeMode::fresh);
}

Result<std::vector<SnapshotSummary>> Store::list() const {
  TRY(auto db, m_impl->db());
  TRY(auto records, db.list_snapshots());
  std::vector<SnapshotSummary> out;
  for (const auto& r : records) out.push_back(m_impl->summarize(r));
  return out;
}

Result<SnapshotSummary> Store::show(const std::string& name) const {
  TRY(auto db, m_impl->db());
  TRY(auto record, m_impl->resolve(db, name));
  return m_impl->summarize(record);
}

Result<std::vector<Entry>> Store::entries(const std::string& name) const {
  TRY(auto db, m_impl->db());
  TRY(auto record, m_impl->resolve(db, name));
  TRY(auto manifest, m_impl->load_manifest(record));
  return std::vector<Entry>(std::make_move_iterator(manifest.entries.begin()),
                            std::make_move_iterator(manifest.entries.end()));
}

Result<void> Store::remove(const std::string& name) const {
  TRY(auto db, m_impl->db());
  TRY(auto record, m_impl->resolve(db, name));
  TRY(auto removed, db.remove_snapshot(record.name, record.tag));
  if (!removed) return std::unexpected(make_error(ErrorCode::not_found, fmt::format("no snapshot named {}", name)));
  return {};
}

Result<void> Store::pin(const std::string& name, bool pinned) const {
  TRY(auto db, m_impl->db());
  TRY(auto record, m_impl->resolve(db, name));
  TRY(auto changed, db.set_pinned(record.name, record.tag, pinned));
  if (!changed) return std::unexpected(make_error(ErrorCode::not_found, fmt::format("no snapshot named {}", name)));
  return {};
}

Result<GcReport> Store::gc(const GcOptions& options) const {
  return collect_garbage(m_impl->objects, m_impl->db_path, options);
}

Result<UsageReport> Store::usage(const UsageOptions& options) const {
  TRY(auto config, m_impl->gc_config());
  TRY(auto db, m_impl->db());
  return measure_usage(m_impl->objects, db, config, options);
}

Result<std::optional<GcReport>> Store::auto_gc() const { return m_impl->auto_gc_round(); }

void Store::start_auto_gc(std::chrono::milliseconds interval) {
  stop_auto_gc();
  auto& state = *m_impl->auto_gc;
  // Captures the Impl, not the Store: a Store may be moved while the thread runs.
  const Impl* impl = m_impl.get();
  state.thread = std::jthread([impl, interval, &state](std::stop_token stop) {
    std::unique_lock lock(state.mutex);
    while (!stop.stop_requested()) {
      lock.unlock();
      auto round = impl->auto_gc_round();
      if (round && !*round) (void)collect_garbage(impl->objects, impl->db_path, {});  // orphans and staging only
      lock.lock();
      state.wake.wait_for(lock, stop, interval, [] { return false; });
    }
  });
}

void Store::stop_auto_gc() {
  auto& state = *m_impl->auto_gc;
  if (!state.thread.joinable()) return;
  state.thread.request_stop();
  state.thread.join();
}

Result<VerifySummary> Store::verify(const VerifyOptions& options) const {
  TRY(auto db, m_impl->db());
  std::optional<std::set<std::string>> only;
  if (!options.names.empty()) {
    only.emplace();
    for (const auto& name : options.names) {
      TRY(auto record, m_impl->resolve(db, name));
      TRY_VOID(db.each_ref(record.row_id, [&](std::string_view digest) { only->emplace(digest); }));
      only->insert(record.manifest);
    }
  }
  return verify_store(m_impl->objects, db, m_impl->threads, options.fast, only);
}

Result<TreeStatus> Store::status(const std::filesystem::path& target, const StatusOptions& options) const {
  const std::int64_t start = now_ns();
  TRY(auto db, m_impl->db());
  TRY(auto scan, scan_restored_tree(m_impl->objects, db, target, options.verify, m_impl->threads));
  TreeStatus status;
  status.target = scan.target;
  status.snapshot = scan.record.snapshot;
  status.id = to_hex(scan.record.manifest);
  status.restored_ns = scan.record.restored_ns;
  status.entries = scan.manifest.entries.size();
  status.hashed = scan.hashed;
  for (auto& f : scan.findings) status.changes.push_back(std::move(f.change));
  status.seconds = static_cast<double>(now_ns() - start) / 1e9;
  return status;
}

Result<RepairReport> Store::repair(const std::filesystem::path& target, const RepairOptions& options) const {
  // Local sources first; registries last, as each costs a download.
  const std::int64_t start = now_ns();
  RepairOptions local = options;
  local.from.clear();
  std::vector<std::string> remotes;
  for (const auto& from : options.from) {
    if (!from.starts_with("oci://")) {
      local.from.push_back(from);
      continue;
    }
    TRY_VOID(remote::parse_reference(from));  // a malformed reference fails before anything changes
    remotes.push_back(from);
  }
  TRY(auto db, m_impl->db());
  // Like a restore, repair reads objects: a lease keeps gc from removing them meanwhile.
  TRY(auto lease, Lease::acquire(m_impl->db_path, "repair"));
  TRY(auto report, repair_tree(m_impl->objects, db, target, local, m_impl->threads));
  // Content still lost: pull the next registry and run again. Repair is idempotent, so the second
  // run redoes nothing the first did and only heals what the pulled objects provide; its report
  // is appended to the first's (a dry run changed nothing, so its second report says it all).
  std::vector<std::unique_ptr<ScratchStore>> scratches;
  std::vector<RepairAction> done;
  for (const auto& reference : remotes) {
    if (report.complete()) break;
    scratches.push_back(std::make_unique<ScratchStore>());
    TRY_VOID(m_impl->pull_scratch(reference, options.access, *scratches.back()));
    local.from.push_back(scratches.back()->path.string());
    if (!options.dry_run) done.insert(done.end(), report.actions.begin(), report.actions.end());
    TRY(report, repair_tree(m_impl->objects, db, target, local, m_impl->threads));
    // The scratch store is gone when the report is read: name the registry instead.
    for (auto& action : report.actions)
      for (const auto& scratch : scratches)
        if (action.source.starts_with(scratch->path.string() + "/")) action.source = scratch->reference;
  }
  report.actions.insert(report.actions.begin(), done.begin(), done.end());
  if (!scratches.empty()) report.seconds = static_cast<double>(now_ns() - start) / 1e9;  // pulls included
  return report;
}

const char* to_string(ChangeKind kind) noexcept {
  switch (kind) {
    case ChangeKind::content: return "content";
    case ChangeKind::metadata: return "metadata";
    case ChangeKind::link: return "link";
    case ChangeKind::type: return "type";
    case ChangeKind::removed: return "removed";
    case ChangeKind::added: return "added";
  }
  return "?";
}

Result<TransferSummary> Store::push(const std::string& name, const std::string& reference,
                                   const PushOptions& options) const {
  TRY(auto ref, remote::parse_reference(reference));
  if (ref.tag.empty())
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("push needs a tag: {}:TAG", reference)));
  TRY(auto client, m_impl->registry(ref, options.access));
  for (const auto& base : options.bases) {
    TRY(auto base_ref, remote::parse_reference(base));
    if (base_ref.registry() != ref.registry() || base_ref.repository != ref.repository)
      return std::unexpected(make_error(ErrorCode::invalid, fmt::format("base {} is not in the pushed repository", base)));
  }
  PushOptions resolved = options;
  resolved.bases.clear();
  for (const auto& base : options.bases) resolved.bases.push_back(remote::parse_reference(base)->reference());
  TRY(auto db, m_impl->db());
  // The lease keeps every object of the snapshot while it is read, whatever `rm` and gc do.
  TRY(auto lease, Lease::acquire(m_impl->db_path, "push"));
  TRY(auto record, m_impl->resolve(db, name));
  TRY(auto manifest, m_impl->load_manifest(record));
  TRY(auto summary, transfer::push_snapshot(m_impl->objects, manifest, record.manifest, record.name + ":" + record.tag,
                                            client, ref.tag, resolved));
  TRY_VOID(db.touch_snapshot(record.row_id, now_ns()));
  return summary;
}

Result<TransferSummary> Store::pull(const std::string& reference, const PullOptions& options) const {
  TRY(auto ref, remote::parse_reference(reference));
  std::string local = options.name;
  if (local.empty()) {
    // The repository and the tag, or the digest's first 12 hex digits when pulled by digest.
    std::string tag = !ref.tag.empty() ? ref.tag : !ref.digest.empty() ? "sha256-" + ref.digest.substr(7, 12) : "latest";
    local = ref.repository + ":" + tag;
  }
  TRY(auto names, parse_snapshot_name(local));
  TRY(auto client, m_impl->registry(ref, options.access));
  TRY(auto db, m_impl->db());
  TRY(auto lease, Lease::acquire(m_impl->db_path, "pull"));
  return transfer::pull_snapshot(m_impl->objects, db, *lease, client, ref.reference().empty() ? "latest" : ref.reference(),
                                 names.first, names.second, options);
}

}  // namespace treesnap
