#include "transfer/push.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "transfer/common.hpp"
#include "util/error.hpp"
#include "transfer/oci_format.hpp"
#include "transfer/plan.hpp"
#include "util/posix.hpp"
#include "util/thread_pool.hpp"

namespace treesnap::transfer {
namespace {

// A manifest a push may build on: a reference in the destination repository, or (mount) in the
// --mount-from repository, whose packs are then mounted rather than uploaded.
struct BaseSource {
  remote::RegistryClient* client;
  std::string reference;
  bool mount = false;
};

// Reads the packs of the OCI manifests of `sources` that exist and are treesnap snapshots;
// anything else contributes nothing. A pack the destination holds is never taken from the mount
// source. Store digests of `algorithm` (format 2) fill sha256_of.
Result<BaseIndex> load_bases(const std::vector<BaseSource>& sources, DigestAlgorithm algorithm, unsigned jobs) {
  BaseIndex base;
  std::vector<remote::RegistryClient*> reader;  // per pack: a client of a repository holding it
  std::unordered_map<std::string, bool> seen_packs;
  const std::vector<std::string> accept{std::string(k_oci_manifest_type)};
  const std::string store_prefix = std::string(to_string(algorithm)) + ":";
  for (const auto& source : sources) {
    auto fetched = source.client->get_manifest(source.reference, accept);
    if (!fetched) {
      if (fetched.error().code == ErrorCode::not_found) continue;
      return std::unexpected(fetched.error());
    }
    auto snapshot = decode_oci_manifest(fetched->bytes);
    if (!snapshot) continue;  // another kind of artifact under that tag: nothing to reuse
    for (auto& p : snapshot->packs) {
      if (!seen_packs.emplace(p.pack.digest, true).second) continue;
      base.packs.push_back(std::move(p));
      base.mount.push_back(source.mount ? 1 : 0);
      reader.push_back(source.client);
    }
    for (const auto& o : snapshot->objects) {
      if (algorithm == DigestAlgorithm::sha256 || !o.store_digest.starts_with(store_prefix)) continue;
      auto raw = from_hex(std::string_view(o.store_digest).substr(store_prefix.size()));
      auto sha = raw_from_oci(o.digest);
      if (raw && sha) base.sha256_of.emplace(std::move(*raw), std::move(*sha));
    }
  }
  std::vector<PackIndex> indexes(base.packs.size());
  std::unordered_map<remote::RegistryClient*, std::unique_ptr<ClientPool>> pools;
  for (auto* c : reader)
    if (!pools.contains(c)) pools.emplace(c, std::make_unique<ClientPool>(*c));
  if (auto done = parallel_for(base.packs.size(), jobs, 1, [&](std::size_t i) -> Result<void> {
    auto c = pools.at(reader[i])->take();
    std::string bytes;
    const auto& d = base.packs[i].index;
    auto fetched = c->get_blob(d.digest, [&](std::string_view chunk) -> Result<void> {
      bytes.append(chunk);
      return {};
    }, {.expected_size = d.size, .range = std::nullopt});
    // The mount source may have lost the index since its manifest was pushed: the pack, with no
    // objects listed, is then never reused. The destination's own packs must be whole.
    if (!fetched && fetched.error().code == ErrorCode::not_found && base.mount[i]) return {};
    if (!fetched) return std::unexpected(std::move(fetched).error());
    TRY(indexes[i], decode_pack_index(bytes));
    if (indexes[i].pack_digest != base.packs[i].pack.digest || indexes[i].pack_size != base.packs[i].pack.size)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("pack index {} describes another pack", d.digest)));
    return {};
  }); !done)
    return std::unexpected(done.error());
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    const bool same_store = indexes[i].store_algorithm == algorithm;
    for (const auto& o : indexes[i].objects) {
      base.objects.emplace(o.digest, i);
      if (same_store) base.sha256_of.emplace(o.store_digest, o.digest);
    }
  }
  return base;
}

// Mounts the packs `to_mount` (into base.packs) of the --mount-from repository and their indexes;
// returns those the registry refused (it answers a mount with an upload session when the source
// lacks the blob or the client may not read it there). Such a pack cannot be uploaded instead:
// it may hold objects this store does not have, and its bytes are not here anyway.
Result<std::vector<std::size_t>> mount_packs(remote::RegistryClient& client, const BaseIndex& base,
                                             const std::vector<std::size_t>& to_mount, std::string_view mount_from,
                                             unsigned jobs) {
  std::vector<char> refused(to_mount.size(), 0);
  ClientPool pool(client);
  if (auto done = parallel_for(to_mount.size(), jobs, 1, [&](std::size_t i) -> Result<void> {
    auto c = pool.take();
    const Pack& pack = base.packs[to_mount[i]];
    for (const auto* d : {&pack.index, &pack.pack}) {
      TRY(auto mounted, c->mount_blob(d->digest, d->size, mount_from));
      if (mounted == remote::MountResult::refused) {
        refused[i] = 1;
        break;
      }
    }
    return {};
  }); !done)
    return std::unexpected(done.error());
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < to_mount.size(); ++i)
    if (refused[i]) out.push_back(to_mount[i]);
  return out;
}

// Reads an object of an xxh3-128 store once for both digests: its sha256 (its name on the
// registry), and its store digest, which must match (a damaged object is never pushed).
Result<std::string> sha256_of_object(const ObjectStore& objects, const ObjectRef& o) {
  TRY(auto fd, objects.open_object(o.digest));
  Hasher sha(DigestAlgorithm::sha256);
  std::uint64_t at = 0;
  TRY(auto digest, objects.hash_fd(fd.get(), o.size, "object", [&](std::uint64_t offset, std::string_view bytes) {
    if (offset > at) sha.update_zeros(offset - at);
    sha.update(bytes);
    at = offset + bytes.size();
  }));
  if (at < o.size) sha.update_zeros(o.size - at);
  if (digest != o.digest)
    return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("object {} in the store is damaged (run treesnap verify)",
                                                                      digest_text(objects.algorithm(), o.digest))));
  return sha.finish();
}

// Reads, checks and (where it pays) compresses the objects of one pack, then uploads the pack
// and its index (mounting either when `mount_from` holds it already).
Result<Pack> build_pack(const ObjectStore& objects, const std::vector<ObjectRef>& members, remote::RegistryClient& client,
                        std::string_view mount_from) {
  const bool sha256_store = objects.algorithm() == DigestAlgorithm::sha256;
  std::string pack;
  PackIndex index;
  if (!sha256_store) index.store_algorithm = objects.algorithm();
  std::string buffer;
  for (const auto& o : members) {
    TRY(auto fd, objects.open_object(o.digest));
    buffer.resize(static_cast<std::size_t>(o.size));
    TRY(auto got, pread_full(fd.get(), buffer, 0, "object"));
    // In an xxh3-128 store the sha256 may come from the registry's own index: checked here too.
    if (got != o.size || hash_bytes(objects.algorithm(), buffer) != o.digest ||
        (!sha256_store && hash_bytes(DigestAlgorithm::sha256, buffer) != o.sha256))
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("object {} in the store is damaged (run treesnap verify)",
                                                                        digest_text(objects.algorithm(), o.digest))));
    std::string compressed = compress_if_smaller(buffer);
    PackedObject entry{o.sha256, sha256_store ? std::string() : o.digest, pack.size(), 0, o.size,
                       compressed.empty() ? Codec::raw : Codec::zstd};
    pack += compressed.empty() ? buffer : compressed;
    entry.stored = pack.size() - entry.offset;
    index.objects.push_back(std::move(entry));
  }
  index.pack_digest = remote::oci_digest(pack);
  index.pack_size = pack.size();
  std::string index_bytes = encode_pack_index(index);
  Pack out{{std::string(k_pack_index_type), remote::oci_digest(index_bytes), index_bytes.size(), {}},
           {std::string(k_pack_type), index.pack_digest, pack.size(), {}}};
  TRY_VOID(client.put_blob(out.pack.digest, out.pack.size, remote::read_memory(pack), mount_from));
  TRY_VOID(client.put_blob(out.index.digest, out.index.size, remote::read_memory(index_bytes), mount_from));
  return out;
}

// The config blob: the snapshot's manifest object byte for byte in a sha256 store; elsewhere the
// manifest with every digest replaced by its sha256, so the registry holds sha256 names only.
Result<std::string> config_blob(const ObjectStore& objects, const Manifest& manifest, const std::string& manifest_digest,
                                const std::vector<ObjectRef>& all) {
  if (objects.algorithm() == DigestAlgorithm::sha256) return objects.read_verified(manifest_digest);
  std::unordered_map<std::string, std::string> sha256_of;
  for (const auto& o : all) sha256_of.emplace(o.digest, o.sha256);
  TRY(auto translated, translate_manifest(manifest, DigestAlgorithm::sha256, sha256_of));
  return encode_manifest(translated);
}

std::string rfc3339_now() {
  auto now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

Result<TransferSummary> push_snapshot(const ObjectStore& objects, const Manifest& manifest,
                                      const std::string& manifest_digest, const std::string& name,
                                      remote::RegistryClient& client, const std::string& tag,
                                      const PushOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const unsigned jobs = std::max(1u, options.access.jobs);
  auto all = distinct_objects(manifest);

  // Packs of the tag's current manifest, of the bases the caller named, and of the same tag in
  // the --mount-from repository (mounted).
  std::vector<BaseSource> sources{{&client, tag, false}};
  for (const auto& b : options.bases) sources.push_back({&client, b, false});
  std::optional<remote::RegistryClient> mount_client;
  if (!options.mount_from.empty()) {
    TRY(mount_client, client.for_repository(options.mount_from));
    sources.push_back({&*mount_client, tag, true});
  }
  TRY(auto base, load_bases(sources, objects.algorithm(), jobs));

  // The sha256 of each object of an xxh3-128 store: from the registry's store digests where they
  // name it, else read and hashed here (a first push reads such a store twice).
  if (objects.algorithm() != DigestAlgorithm::sha256) {
    for (auto& o : all)
      if (auto it = base.sha256_of.find(o.digest); it != base.sha256_of.end()) o.sha256 = it->second;
    if (auto done = parallel_for(all.size(), jobs, 16, [&](std::size_t i) -> Result<void> {
      if (all[i].sha256.empty()) {
        TRY(all[i].sha256, sha256_of_object(objects, all[i]));
      }
      return {};
    }); !done)
      return std::unexpected(done.error());
  }
  Plan plan = make_plan(all, base);

  // Mounts first, so that the objects of a pack the registry will not mount are planned again
  // without it: into new packs or blobs of their own, uploaded from this store.
  std::vector<std::size_t> to_mount;
  for (std::size_t i : plan.reused_packs)
    if (base.mount[i]) to_mount.push_back(i);
  TRY(auto refused, mount_packs(client, base, to_mount, options.mount_from, jobs));
  if (!refused.empty()) {
    std::erase_if(base.objects, [&](const auto& object) {
      return std::find(refused.begin(), refused.end(), object.second) != refused.end();
    });
    plan = make_plan(all, base);
  }

  TransferSummary summary;
  summary.objects = all.size();
  for (const auto& o : all) summary.bytes += o.size;
  summary.objects_skipped = plan.reused_objects;
  summary.packs_reused = plan.reused_packs.size();
  summary.standalone_objects = plan.standalone.size();
  ProgressMeter progress(options.progress, summary.objects, summary.bytes);
  progress.add(plan.reused_objects, plan.reused_bytes);

  // One task per standalone object and per new pack, `jobs` at a time.
  const std::size_t tasks = plan.standalone.size() + plan.new_packs.size();
  std::vector<Pack> new_packs(plan.new_packs.size());
  std::vector<remote::PutBlobResult> standalone_results(plan.standalone.size());
  ClientPool pool(client);
  if (auto done = parallel_for(tasks, jobs, 1, [&](std::size_t i) -> Result<void> {
    auto c = pool.take();
    if (i < plan.standalone.size()) {
      const auto& o = plan.standalone[i];
      TRY(auto fd, objects.open_object(o.digest));
      TRY(standalone_results[i], c->put_blob(oci_text(o.sha256), o.size, remote::read_fd(fd.get()), options.mount_from));
      progress.add(1, o.size);
      return {};
    }
    const std::size_t p = i - plan.standalone.size();
    TRY(new_packs[p], build_pack(objects, plan.new_packs[p], *c, options.mount_from));
    std::uint64_t bytes = 0;
    for (const auto& o : plan.new_packs[p]) bytes += o.size;
    progress.add(plan.new_packs[p].size(), bytes);
    return {};
  }); !done)
    return std::unexpected(done.error());

  for (std::size_t i = 0; i < plan.standalone.size(); ++i) {
    if (standalone_results[i] == remote::PutBlobResult::uploaded) {
      summary.objects_moved += 1;
      summary.bytes_moved += plan.standalone[i].size;
    } else {
      summary.objects_skipped += 1;
    }
  }
  for (const auto& members : plan.new_packs) {
    summary.objects_moved += members.size();
    for (const auto& o : members) summary.bytes_moved += o.size;
  }
  summary.packs_new = plan.new_packs.size();

  TRY(auto config_bytes, config_blob(objects, manifest, manifest_digest, all));
  OciSnapshot oci;
  oci.config = {std::string(k_config_type), remote::oci_digest(config_bytes), config_bytes.size(), {}};
  TRY_VOID(client.put_blob(oci.config.digest, oci.config.size, remote::read_memory(config_bytes), options.mount_from));
  for (std::size_t i : plan.reused_packs) oci.packs.push_back(base.packs[i]);
  for (auto& p : new_packs) oci.packs.push_back(std::move(p));
  const bool sha256_store = objects.algorithm() == DigestAlgorithm::sha256;
  oci.store_digests = !sha256_store;
  for (const auto& o : plan.standalone)
    oci.objects.push_back({std::string(k_object_type), oci_text(o.sha256), o.size,
                           sha256_store ? std::string() : digest_text(objects.algorithm(), o.digest)});
  oci.name = name;
  oci.created = rfc3339_now();
  std::string manifest_json = encode_oci_manifest(oci);
  TRY(summary.oci_digest, client.put_manifest(tag, k_oci_manifest_type, manifest_json));
  progress.finish();

  auto ref = client.reference();
  ref.tag.clear();
  ref.digest = summary.oci_digest;
  summary.reference = ref.to_string();
  summary.name = name;
  summary.id = to_hex(manifest_digest);
  fill_transport(summary, client.stats(), start);
  return summary;
}

}  // namespace treesnap::transfer
