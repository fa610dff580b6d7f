#include "transfer/pull.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "core/entry_path.hpp"
#include "transfer/common.hpp"
#include "util/error.hpp"
#include "transfer/oci_format.hpp"
#include "util/posix.hpp"
#include "util/thread_pool.hpp"

namespace treesnap::transfer {
namespace {

// A snapshot manifest above this is refused before it is downloaded (1M entries take ~40 MB).
constexpr std::uint64_t k_max_config_size = std::uint64_t{1} << 30;
constexpr std::uint64_t k_max_index_size = 64 << 20;
// Range coalescing: neighbours in a pack closer than this are fetched in one request (the bytes
// between them cost less than a request on any link faster than ~10 Mbit/s at 20 ms RTT), up to
// k_max_range per request.
constexpr std::uint64_t k_max_gap = 256 << 10;
constexpr std::uint64_t k_max_range = 8 << 20;

Result<std::string> fetch_small_blob(remote::RegistryClient& client, const Descriptor& d, std::uint64_t limit,
                                     std::string_view what) {
  if (d.size > limit)
    return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("{} {} declares {} bytes, more than the {} allowed",
                                                                      what, d.digest, d.size, limit)));
  std::string bytes;
  TRY_VOID(client.get_blob(d.digest, [&](std::string_view chunk) -> Result<void> {
    bytes.append(chunk);
    return {};
  }, {.expected_size = d.size, .range = std::nullopt}));
  return bytes;
}

struct PackedRef {
  std::size_t pack = 0;
  PackedObject object;
  std::size_t index = 0;  // into the pull's distinct objects
};

// One Range GET: objects of one pack lying in [offset, offset + length).
struct RangeTask {
  std::size_t pack = 0;
  std::uint64_t offset = 0, length = 0;
  std::vector<PackedRef> objects;
};

std::vector<RangeTask> coalesce(std::vector<PackedRef> refs) {
  std::sort(refs.begin(), refs.end(), [](const PackedRef& a, const PackedRef& b) {
    return a.pack != b.pack ? a.pack < b.pack : a.object.offset < b.object.offset;
  });
  std::vector<RangeTask> tasks;
  for (auto& r : refs) {
    const std::uint64_t end = r.object.offset + r.object.stored;
    if (!tasks.empty()) {
      auto& t = tasks.back();
      const std::uint64_t t_end = t.offset + t.length;
      if (t.pack == r.pack && r.object.offset >= t_end && r.object.offset - t_end <= k_max_gap &&
          end - t.offset <= k_max_range) {
        t.length = end - t.offset;
        t.objects.push_back(std::move(r));
        continue;
      }
    }
    RangeTask t{r.pack, r.object.offset, r.object.stored, {}};
    t.objects.push_back(std::move(r));
    tasks.push_back(std::move(t));
  }
  return tasks;
}

// The pack indexes of a snapshot, each checked against the pack it precedes.
Result<std::vector<PackIndex>> fetch_indexes(ClientPool& pool, const OciSnapshot& oci, unsigned jobs) {
  std::vector<PackIndex> indexes(oci.packs.size());
  if (auto done = parallel_for(oci.packs.size(), jobs, 1, [&](std::size_t i) -> Result<void> {
    auto c = pool.take();
    TRY(auto bytes, fetch_small_blob(*c, oci.packs[i].index, k_max_index_size, "pack index"));
    TRY(indexes[i], decode_pack_index(bytes));
    if (indexes[i].pack_digest != oci.packs[i].pack.digest || indexes[i].pack_size != oci.packs[i].pack.size)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("pack index {} describes another pack",
                                                                        oci.packs[i].index.digest)));
    return {};
  }); !done)
    return std::unexpected(done.error());
  return indexes;
}

// Into a store of another algorithm than sha256: each object's store digest where the registry
// names it (format 2, pushed from a store of the same algorithm). Such an object that the store
// already holds is not fetched; one that is fetched must hash to both names.
void apply_store_digests(std::vector<ObjectRef>& all, DigestAlgorithm algorithm, const OciSnapshot& oci,
                         const std::vector<PackIndex>& indexes) {
  std::unordered_map<std::string, std::string> store_of;  // raw sha256 -> raw store digest
  const std::string prefix = std::string(to_string(algorithm)) + ":";
  for (const auto& d : oci.objects) {
    if (!d.store_digest.starts_with(prefix)) continue;
    auto raw = from_hex(std::string_view(d.store_digest).substr(prefix.size()));
    auto sha = raw_from_oci(d.digest);
    if (raw && sha) store_of.emplace(std::move(*sha), std::move(*raw));
  }
  for (const auto& index : indexes)
    if (index.store_algorithm == algorithm)
      for (const auto& o : index.objects) store_of.emplace(o.digest, o.store_digest);
  for (auto& o : all)
    if (auto it = store_of.find(o.sha256); it != store_of.end()) o.digest = it->second;
}

Result<void> refuse_other_content(const std::optional<SnapshotRecord>& existing, const std::string& manifest_digest,
                                  const std::string& name, const std::string& tag, const PullOptions& options) {
  if (existing && existing->manifest != manifest_digest && !options.replace)
    return std::unexpected(make_error(ErrorCode::exists,
                                      fmt::format("snapshot {}:{} already exists with other content (use --force to replace it)", name, tag)));
  return {};
}

}  // namespace

Result<TransferSummary> pull_snapshot(const ObjectStore& objects, Database& db, Lease& lease,
                                      remote::RegistryClient& client, const std::string& reference,
                                      const std::string& name, const std::string& tag,
                                      const PullOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const unsigned jobs = std::max(1u, options.access.jobs);
  const std::vector<std::string> accept{std::string(k_oci_manifest_type)};
  const DigestAlgorithm algorithm = objects.algorithm();
  const bool sha256_store = algorithm == DigestAlgorithm::sha256;

  // 1. The OCI manifest (checked against its digest by the client when fetched by digest).
  TRY(auto fetched, client.get_manifest(reference, accept));
  TRY(auto oci, decode_oci_manifest(fetched.bytes));

  // 2. The snapshot manifest: its sha256 is checked on download; nothing is written before it
  // decodes and validates.
  TRY(auto config_digest, raw_from_oci(oci.config.digest));
  TRY(auto config, fetch_small_blob(client, oci.config, k_max_config_size, "snapshot manifest"));
  TRY(auto manifest, decode_manifest(config));
  if (manifest.algorithm != DigestAlgorithm::sha256)
    return std::unexpected(make_error(ErrorCode::unsupported, "the pushed snapshot does not use sha256 digests"));
  TRY_VOID(validate_manifest(manifest));

  // In a sha256 store the config is the manifest object; in another its translation, whose digest
  // is known once every object's is (after the fetch).
  TRY(auto existing, db.find_snapshot(name, tag));
  if (sha256_store) TRY_VOID(refuse_other_content(existing, config_digest, name, tag, options));

  auto all = distinct_objects(manifest);
  ClientPool pool(client);
  std::vector<PackIndex> indexes;
  bool have_indexes = false;
  if (!sha256_store) {
    for (auto& o : all) o.digest.clear();
    if (oci.store_digests) {
      TRY(indexes, fetch_indexes(pool, oci, jobs));
      have_indexes = true;
      apply_store_digests(all, algorithm, oci, indexes);
    }
  }

  // 3. What the store lacks. Live objects are protected by the lease; orphans must be held. An
  // object whose store digest is unknown is fetched.
  TransferSummary summary;
  summary.objects = all.size();
  for (const auto& o : all) summary.bytes += o.size;
  std::vector<std::size_t> lacking;
  TRY_VOID(db.begin_read());
  for (std::size_t i = 0; i < all.size(); ++i) {
    bool have = false;
    if (!all[i].digest.empty()) {
      TRY(auto state, db.object_state(all[i].digest));
      have = state == ObjectState::live;
      if (state == ObjectState::orphan || state == ObjectState::collecting) {
        TRY(have, lease.hold(all[i].digest));
      }
    }
    if (have) summary.objects_skipped += 1;
    else lacking.push_back(i);
  }
  TRY_VOID(db.end_read());
  // Objects an interrupted pull already verified and published are kept (re-hashed locally).
  std::vector<char> intact(lacking.size(), 0);
  if (auto done = parallel_for(lacking.size(), jobs, 16, [&](std::size_t i) -> Result<void> {
    const auto& o = all[lacking[i]];
    if (o.digest.empty()) return {};
    TRY(auto ok, objects.has_intact(o.digest));
    intact[i] = ok;
    return {};
  }); !done)
    return std::unexpected(done.error());
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < lacking.size(); ++i) {
    if (intact[i]) summary.objects_resumed += 1;
    else missing.push_back(lacking[i]);
  }
  ProgressMeter progress(options.progress, summary.objects, summary.bytes);
  progress.add(summary.objects - missing.size(), 0);

  // 4. Where each missing object is: a blob of its own, else in a pack (indexes fetched only
  // when some object needs them).
  std::unordered_map<std::string, const Descriptor*> standalone;
  for (const auto& d : oci.objects) {
    TRY(auto raw, raw_from_oci(d.digest));
    standalone.emplace(std::move(raw), &d);
  }
  summary.standalone_objects = oci.objects.size();
  std::vector<std::size_t> blob_objects;
  std::vector<std::size_t> packed_objects;
  for (std::size_t i : missing) {
    const auto& o = all[i];
    if (auto it = standalone.find(o.sha256); it != standalone.end()) {
      if (it->second->size != o.size)
        return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("blob {} has {} bytes, the snapshot says {}",
                                                                          it->second->digest, it->second->size, o.size)));
      blob_objects.push_back(i);
    } else {
      packed_objects.push_back(i);
    }
  }
  std::vector<RangeTask> ranges;
  if (!packed_objects.empty()) {
    if (!have_indexes) {
      TRY(indexes, fetch_indexes(pool, oci, jobs));
    }
    std::unordered_map<std::string, PackedRef> where;
    for (std::size_t i = 0; i < indexes.size(); ++i)
      for (const auto& o : indexes[i].objects) where.emplace(o.digest, PackedRef{i, o, 0});
    std::vector<PackedRef> refs;
    for (std::size_t i : packed_objects) {
      const auto& o = all[i];
      auto it = where.find(o.sha256);
      if (it == where.end())
        return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("the registry's snapshot lacks object {}", oci_text(o.sha256))));
      if (it->second.object.size != o.size)
        return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("packed object {} has {} bytes, the snapshot says {}",
                                                                          oci_text(o.sha256), it->second.object.size, o.size)));
      refs.push_back(it->second);
      refs.back().index = i;
    }
    ranges = coalesce(std::move(refs));
  }

  // 5. Fetch: whole blobs streamed into staging, ranges cut into objects; every object checked
  // against its sha256 (and its store digest when known) before it is published under its store
  // digest. Each task sets the store digest of its own objects in `all`.
  std::atomic<std::uint64_t> moved_objects{0}, moved_bytes{0};
  const std::size_t tasks = blob_objects.size() + ranges.size();
  if (auto done = parallel_for(tasks, jobs, 1, [&](std::size_t i) -> Result<void> {
    auto c = pool.take();
    if (i < blob_objects.size()) {
      auto& o = all[blob_objects[i]];
      auto fetch = [&](const ObjectStore::ByteWriter& write) -> Result<void> {
        auto got = c->get_blob(oci_text(o.sha256), write, {.expected_size = o.size, .range = std::nullopt});
        if (!got) return std::unexpected(got.error());
        return {};
      };
      TRY(auto stored, objects.put_fetched(o.sha256, o.digest, o.size, o.mode, o.mtime_ns, fetch));
      o.digest = std::move(stored.digest);
      moved_objects += 1;
      moved_bytes += o.size;
      progress.add(1, o.size);
      return {};
    }
    const auto& t = ranges[i - blob_objects.size()];
    std::string bytes;
    bytes.reserve(t.length);
    TRY_VOID(c->get_blob(oci.packs[t.pack].pack.digest, [&](std::string_view chunk) -> Result<void> {
      bytes.append(chunk);
      return {};
    }, {.expected_size = std::nullopt, .range = remote::ByteRange{t.offset, t.length}}));
    if (bytes.size() != t.length)
      return std::unexpected(make_error(ErrorCode::corrupt, "a range of a pack came back short"));
    std::uint64_t done_bytes = 0;
    for (const auto& packed : t.objects) {
      const auto& p = packed.object;
      auto& o = all[packed.index];
      std::string_view stored(bytes.data() + (p.offset - t.offset), p.stored);
      std::string decoded;
      if (p.codec == Codec::zstd) {
        TRY(decoded, decompress_object(stored, p.size));
      }
      std::string_view content = p.codec == Codec::zstd ? std::string_view(decoded) : stored;
      TRY(auto put, objects.put_fetched(o.sha256, o.digest, o.size, o.mode, o.mtime_ns,
                                        [&](const ObjectStore::ByteWriter& write) { return write(content); }));
      o.digest = std::move(put.digest);
      done_bytes += o.size;
    }
    moved_objects += t.objects.size();
    moved_bytes += done_bytes;
    progress.add(t.objects.size(), done_bytes);
    return {};
  }); !done)
    return std::unexpected(done.error());
  summary.objects_moved = moved_objects.load();
  summary.bytes_moved = moved_bytes.load();

  // 6. The manifest object, then durability, then the one transaction that makes it visible.
  // The manifest is held before it is published, as a snapshot holds its own: an orphan copy of
  // it that no lease protects could otherwise be unlinked by a gc after publish finds it
  // present, before the commit.
  std::string manifest_digest;
  std::uint64_t manifest_size = 0;
  if (sha256_store) {
    TRY(auto manifest_held, lease.hold(config_digest));
    (void)manifest_held;
    TRY(auto stored, objects.put_expected(config_digest, config.size(), 0444, now_ns(), [&](const ObjectStore::ByteWriter& write) {
      return write(config);
    }));
    manifest_digest = std::move(stored.digest);
    manifest_size = stored.size;
  } else {
    std::unordered_map<std::string, std::string> store_of;
    for (const auto& o : all) store_of.emplace(o.sha256, o.digest);
    TRY(auto local, translate_manifest(manifest, algorithm, store_of));
    auto hold_manifest = [&](const std::string& digest) -> Result<void> {
      TRY(auto held, lease.hold(digest));
      (void)held;
      return {};
    };
    TRY(auto stored, objects.put_stream([&](const ObjectStore::ByteWriter& write) { return encode_manifest(local, write); },
                                        hold_manifest));
    manifest_digest = std::move(stored.digest);
    manifest_size = stored.size;
    TRY_VOID(refuse_other_content(existing, manifest_digest, name, tag, options));
  }
  TRY_VOID(objects.sync());

  SnapshotRecord record;
  record.name = name;
  record.tag = tag;
  record.manifest = manifest_digest;
  record.created_ns = record.last_used_ns = now_ns();
  record.entries = manifest.entries.size();
  for (const auto& e : manifest.entries) {
    if (e.type != EntryType::file) continue;
    record.files += 1;
    record.bytes += e.size;
  }
  record.new_objects = summary.objects_moved + summary.objects_resumed;
  record.new_bytes = summary.bytes_moved;
  bool refreshed = false;
  if (existing && existing->manifest == manifest_digest) {
    TRY(refreshed, db.refresh_snapshot(*existing, record.last_used_ns, 0, [](std::size_t) { return StatRecord{}; }));
  }
  if (!refreshed) {
    // Disk bytes unknown, and no stamp: these rows record no fingerprint.
    auto object_row = [&](std::size_t i) {
      if (i == all.size()) return ObjectRecord{manifest_digest, manifest_size, 0, std::nullopt, {}};
      return ObjectRecord{all[i].digest, all[i].size, 0, std::nullopt, {}};
    };
    TRY_VOID(db.commit_snapshot(record, all.size() + 1, object_row, 0, [](std::size_t) { return StatRecord{}; },
                                options.replace || existing.has_value()));
  }
  progress.finish();

  auto ref = client.reference();
  ref.tag.clear();
  ref.digest = fetched.digest;
  summary.reference = ref.to_string();
  summary.oci_digest = fetched.digest;
  summary.name = name + ":" + tag;
  summary.id = to_hex(manifest_digest);
  fill_transport(summary, client.stats(), start);
  return summary;
}

}  // namespace treesnap::transfer
