#include "transfer/push.hpp"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "transfer/common.hpp"
#include "util/error.hpp"
#include "transfer/oci_format.hpp"
#include "util/posix.hpp"
#include "util/thread_pool.hpp"

namespace treesnap::transfer {
namespace {

// An object already in a pack on the registry.
struct Located {
  std::size_t pack = 0;  // index into BaseIndex::packs
};

struct BaseIndex {
  std::vector<Pack> packs;
  std::unordered_map<std::string, Located> objects;  // raw digest -> pack
};

// Reads the packs of the OCI manifests at `references` (tags or digests of this repository)
// that exist and are treesnap snapshots; anything else contributes nothing.
Result<BaseIndex> load_bases(remote::RegistryClient& client, const std::vector<std::string>& references, unsigned jobs) {
  BaseIndex base;
  std::unordered_map<std::string, bool> seen_packs;
  const std::vector<std::string> accept{std::string(k_oci_manifest_type)};
  for (const auto& reference : references) {
    auto fetched = client.get_manifest(reference, accept);
    if (!fetched) {
      if (fetched.error().code == ErrorCode::not_found) continue;
      return std::unexpected(fetched.error());
    }
    auto snapshot = decode_oci_manifest(fetched->bytes);
    if (!snapshot) continue;  // another kind of artifact under that tag: nothing to reuse
    for (auto& p : snapshot->packs)
      if (seen_packs.emplace(p.pack.digest, true).second) base.packs.push_back(std::move(p));
  }
  std::vector<PackIndex> indexes(base.packs.size());
  ClientPool pool(client);
  if (auto done = parallel_for(base.packs.size(), jobs, 1, [&](std::size_t i) -> Result<void> {
    auto c = pool.take();
    std::string bytes;
    const auto& d = base.packs[i].index;
    TRY_VOID(c->get_blob(d.digest, [&](std::string_view chunk) -> Result<void> {
      bytes.append(chunk);
      return {};
    }, {.expected_size = d.size, .range = std::nullopt}));
    TRY(indexes[i], decode_pack_index(bytes));
    if (indexes[i].pack_digest != base.packs[i].pack.digest || indexes[i].pack_size != base.packs[i].pack.size)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("pack index {} describes another pack", d.digest)));
    return {};
  }); !done)
    return std::unexpected(done.error());
  for (std::size_t i = 0; i < indexes.size(); ++i)
    for (const auto& o : indexes[i].objects) base.objects.emplace(o.digest, Located{i});
  return base;
}

// The registry's copy of each object: a blob of its own, a pack already there, or a new pack.
struct Plan {
  std::vector<ObjectRef> standalone;
  std::vector<std::size_t> reused_packs;            // into BaseIndex::packs, in base order
  std::vector<std::vector<ObjectRef>> new_packs;    // objects of each new pack, in manifest order
  std::uint64_t reused_objects = 0, reused_bytes = 0;
};

Plan make_plan(const std::vector<ObjectRef>& all, const BaseIndex& base) {
  Plan plan;
  std::vector<bool> pack_used(base.packs.size(), false);
  std::vector<ObjectRef> small;
  for (const auto& o : all) {
    if (o.size >= k_standalone_threshold) {
      plan.standalone.push_back(o);
    } else if (auto it = base.objects.find(o.digest); it != base.objects.end()) {
      pack_used[it->second.pack] = true;
      plan.reused_objects += 1;
      plan.reused_bytes += o.size;
    } else {
      small.push_back(o);
    }
  }
  for (std::size_t i = 0; i < pack_used.size(); ++i)
    if (pack_used[i]) plan.reused_packs.push_back(i);
  // Keep the OCI manifest under k_max_layers: the smallest large objects join the packs.
  std::uint64_t small_bytes = 0;
  for (const auto& o : small) small_bytes += o.size;
  auto layers = [&] {
    return plan.standalone.size() + 2 * (plan.reused_packs.size() + small_bytes / k_pack_target + 1);
  };
  if (layers() > k_max_layers) {
    std::stable_sort(plan.standalone.begin(), plan.standalone.end(),
                     [](const ObjectRef& a, const ObjectRef& b) { return a.size > b.size; });
    while (!plan.standalone.empty() && layers() > k_max_layers) {
      small_bytes += plan.standalone.back().size;
      small.push_back(std::move(plan.standalone.back()));
      plan.standalone.pop_back();
    }
  }
  std::uint64_t filled = 0;
  for (auto& o : small) {
    if (plan.new_packs.empty() || filled >= k_pack_target) {
      plan.new_packs.emplace_back();
      filled = 0;
    }
    filled += o.size;
    plan.new_packs.back().push_back(std::move(o));
  }
  return plan;
}

// Reads, checks and (where it pays) compresses the objects of one pack, then uploads the pack
// and its index.
Result<Pack> build_pack(const ObjectStore& objects, const std::vector<ObjectRef>& members, remote::RegistryClient& client) {
  std::string pack;
  PackIndex index;
  std::string buffer;
  for (const auto& o : members) {
    TRY(auto fd, objects.open_object(o.digest));
    buffer.resize(static_cast<std::size_t>(o.size));
    TRY(auto got, pread_full(fd.get(), buffer, 0, "object"));
    if (got != o.size || hash_bytes(DigestAlgorithm::sha256, buffer) != o.digest)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("object {} in the store is damaged (run treesnap verify)",
                                                                        oci_text(o.digest))));
    std::string compressed = compress_if_smaller(buffer);
    PackedObject entry{o.digest, pack.size(), 0, o.size, compressed.empty() ? Codec::raw : Codec::zstd};
    pack += compressed.empty() ? buffer : compressed;
    entry.stored = pack.size() - entry.offset;
    index.objects.push_back(std::move(entry));
  }
  index.pack_digest = remote::oci_digest(pack);
  index.pack_size = pack.size();
  std::string index_bytes = encode_pack_index(index);
  Pack out{{std::string(k_pack_index_type), remote::oci_digest(index_bytes), index_bytes.size()},
           {std::string(k_pack_type), index.pack_digest, pack.size()}};
  TRY_VOID(client.put_blob(out.pack.digest, out.pack.size, remote::read_memory(pack)));
  TRY_VOID(client.put_blob(out.index.digest, out.index.size, remote::read_memory(index_bytes)));
  return out;
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
  const auto all = distinct_objects(manifest);

  // Packs of the tag's current manifest and of the bases the caller named.
  std::vector<std::string> base_refs{tag};
  for (const auto& b : options.bases) base_refs.push_back(b);
  TRY(auto base, load_bases(client, base_refs, jobs));
  Plan plan = make_plan(all, base);

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
      TRY(standalone_results[i], c->put_blob(oci_text(o.digest), o.size, remote::read_fd(fd.get()), options.mount_from));
      progress.add(1, o.size);
      return {};
    }
    const std::size_t p = i - plan.standalone.size();
    TRY(new_packs[p], build_pack(objects, plan.new_packs[p], *c));
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

  // The config blob is the snapshot's manifest object, byte for byte.
  TRY(auto config_bytes, objects.read_verified(manifest_digest));
  OciSnapshot oci;
  oci.config = {std::string(k_config_type), oci_text(manifest_digest), config_bytes.size()};
  TRY_VOID(client.put_blob(oci.config.digest, oci.config.size, remote::read_memory(config_bytes)));
  for (std::size_t i : plan.reused_packs) oci.packs.push_back(base.packs[i]);
  for (auto& p : new_packs) oci.packs.push_back(std::move(p));
  for (const auto& o : plan.standalone) oci.objects.push_back({std::string(k_object_type), oci_text(o.digest), o.size});
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
