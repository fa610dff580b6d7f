#include "transfer/oci_format.hpp"

#include <zstd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/digest.hpp"
#include "remote/reference.hpp"
#include "util/error.hpp"

namespace treesnap::transfer {
namespace {

constexpr std::string_view k_index_magic = "tspackix";
// Version 1: sha256 only. Version 2: a store-algorithm byte after the pack size, and each entry's
// store digest after its sha256.
constexpr std::uint8_t k_index_version_sha256 = 1;
constexpr std::uint8_t k_index_version_store = 2;
// The store-algorithm byte of version 2 (0 is not written: that is version 1).
constexpr std::uint8_t k_store_xxh3_128 = 1;
// Per-object compression: level 3 packs Python's stdlib ~3x in ~4 ms/MB on one core here.
constexpr int k_zstd_level = 3;
// A decoded index above this is refused: 64 bytes an object at most, 1M objects in one pack.
constexpr std::size_t k_max_index_decoded = 64 << 20;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

struct Cursor {
  std::string_view in;
  bool failed = false;
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
      auto b = static_cast<std::uint8_t>(in.front());
      in.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    failed = true;
    return 0;
  }
  std::string_view bytes(std::uint64_t n) {
    if (n > in.size()) {
      failed = true;
      return {};
    }
    auto s = in.substr(0, n);
    in.remove_prefix(n);
    return s;
  }
};

Error bad_index(std::string_view why) { return make_error(ErrorCode::corrupt, fmt::format("pack index: {}", why)); }
Error bad_manifest(std::string_view why) {
  return make_error(ErrorCode::invalid, fmt::format("not a treesnap snapshot manifest: {}", why));
}

nlohmann::json to_json(const Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!d.store_digest.empty()) j["annotations"] = {{k_store_digest_annotation, d.store_digest}};
  return j;
}

// "xxh3-128:<32 hex>": the only store digest that differs from the blob digest.
bool valid_store_digest(std::string_view text) {
  constexpr std::string_view prefix = "xxh3-128:";
  if (!text.starts_with(prefix) || text.size() != prefix.size() + 32) return false;
  return text.substr(prefix.size()).find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Result<Descriptor> descriptor_from(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("mediaType") || !j["mediaType"].is_string() || !j.contains("digest") ||
      !j["digest"].is_string() || !j.contains("size") || !j["size"].is_number_unsigned())
    return std::unexpected(bad_manifest("a descriptor lacks mediaType, digest or size"));
  Descriptor d{j["mediaType"].get<std::string>(), j["digest"].get<std::string>(), j["size"].get<std::uint64_t>(), {}};
  if (auto valid = remote::validate_digest(d.digest); !valid) return std::unexpected(bad_manifest(valid.error().context));
  if (j.contains("annotations") && j["annotations"].is_object()) {
    const auto& a = j["annotations"];
    const std::string key(k_store_digest_annotation);
    if (a.contains(key)) {
      if (!a[key].is_string() || !valid_store_digest(a[key].get<std::string>()))
        return std::unexpected(bad_manifest(fmt::format("bad {} annotation", key)));
      d.store_digest = a[key].get<std::string>();
    }
  }
  return d;
}

}  // namespace

std::string encode_pack_index(const PackIndex& index) {
  const bool store = index.store_algorithm.has_value();
  std::string raw(k_index_magic);
  raw.push_back(static_cast<char>(store ? k_index_version_store : k_index_version_sha256));
  put_varint(raw, index.pack_digest.size());
  raw += index.pack_digest;
  put_varint(raw, index.pack_size);
  if (store) raw.push_back(static_cast<char>(k_store_xxh3_128));
  put_varint(raw, index.objects.size());
  std::uint64_t previous_end = 0;  // offsets delta-encoded
  for (const auto& o : index.objects) {
    raw += o.digest;
    if (store) raw += o.store_digest;
    put_varint(raw, o.offset - previous_end);
    put_varint(raw, o.stored);
    put_varint(raw, o.size);
    raw.push_back(static_cast<char>(o.codec));
    previous_end = o.offset + o.stored;
  }
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), k_zstd_level);
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

Result<PackIndex> decode_pack_index(std::string_view compressed) {
  unsigned long long decoded = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (decoded == ZSTD_CONTENTSIZE_ERROR || decoded == ZSTD_CONTENTSIZE_UNKNOWN || decoded > k_max_index_decoded)
    return std::unexpected(bad_index("not a zstd frame of a known, bounded size"));
  std::string raw(static_cast<std::size_t>(decoded), '\0');
  std::size_t n = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n) || n != raw.size()) return std::unexpected(bad_index("the zstd frame does not decode"));
  Cursor c{raw};
  if (c.bytes(k_index_magic.size()) != k_index_magic) return std::unexpected(bad_index("bad magic"));
  auto version = c.bytes(1);
  if (c.failed) return std::unexpected(bad_index("truncated"));
  const auto v = static_cast<std::uint8_t>(version[0]);
  if (v != k_index_version_sha256 && v != k_index_version_store)
    return std::unexpected(make_error(ErrorCode::unsupported, fmt::format("pack index version {}", +v)));
  PackIndex index;
  index.pack_digest = std::string(c.bytes(c.varint()));
  index.pack_size = c.varint();
  std::size_t store_size = 0;
  if (v == k_index_version_store) {
    auto algorithm = c.bytes(1);
    if (c.failed) return std::unexpected(bad_index("truncated"));
    if (static_cast<std::uint8_t>(algorithm[0]) != k_store_xxh3_128)
      return std::unexpected(bad_index(fmt::format("unknown store algorithm {}", +static_cast<std::uint8_t>(algorithm[0]))));
    index.store_algorithm = DigestAlgorithm::xxh3_128;
    store_size = digest_size(DigestAlgorithm::xxh3_128);
  }
  std::uint64_t count = c.varint();
  // An entry takes at least its digests, three one-byte varints and the codec.
  if (c.failed || count > c.in.size() / (32 + store_size + 4)) return std::unexpected(bad_index("truncated or impossible count"));
  if (!remote::validate_digest(index.pack_digest)) return std::unexpected(bad_index("bad pack digest"));
  index.objects.reserve(count);
  std::uint64_t previous_end = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    PackedObject o;
    o.digest = std::string(c.bytes(32));
    if (store_size) o.store_digest = std::string(c.bytes(store_size));
    std::uint64_t gap = c.varint();
    o.stored = c.varint();
    o.size = c.varint();
    auto codec = c.bytes(1);
    if (c.failed) return std::unexpected(bad_index("truncated"));
    o.offset = previous_end + gap;
    if (o.offset < previous_end || o.stored > index.pack_size || o.offset > index.pack_size - o.stored)
      return std::unexpected(bad_index(fmt::format("object {} lies outside the pack", i)));
    o.codec = static_cast<Codec>(codec[0]);
    if (o.codec == Codec::raw && o.stored != o.size)
      return std::unexpected(bad_index(fmt::format("object {}: stored and logical sizes differ", i)));
    if (o.codec == Codec::zstd && o.size > k_max_compressed_object)
      return std::unexpected(bad_index(fmt::format("object {}: compressed object too large", i)));
    if (o.codec != Codec::raw && o.codec != Codec::zstd)
      return std::unexpected(bad_index(fmt::format("object {}: unknown codec", i)));
    previous_end = o.offset + o.stored;
    index.objects.push_back(std::move(o));
  }
  if (!c.in.empty()) return std::unexpected(bad_index("trailing bytes"));
  return index;
}

std::string encode_oci_manifest(const OciSnapshot& s) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& p : s.packs) {
    layers.push_back(to_json(p.index));
    layers.push_back(to_json(p.pack));
  }
  bool store_digests = false;
  for (const auto& o : s.objects) {
    layers.push_back(to_json(o));
    store_digests = store_digests || !o.store_digest.empty();
  }
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"mediaType", k_oci_manifest_type},
      {"artifactType", k_artifact_type},
      {"config", to_json(s.config)},
      {"layers", layers},
      {"annotations",
       {{"org.opencontainers.image.created", s.created},
        {"dev.treesnap.format", std::to_string(store_digests || s.store_digests ? k_format_version : 1)},
        {"dev.treesnap.name", s.name}}}};
  return m.dump();
}

Result<OciSnapshot> decode_oci_manifest(std::string_view bytes) {
  auto j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected(bad_manifest("not a JSON object"));
  auto text = [&](const char* key) { return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : ""; };
  if (text("artifactType") != k_artifact_type)
    return std::unexpected(bad_manifest(fmt::format("artifactType {:?}", text("artifactType"))));
  OciSnapshot s;
  if (j.contains("annotations") && j["annotations"].is_object()) {
    const auto& a = j["annotations"];
    auto note = [&](const char* key) { return a.contains(key) && a[key].is_string() ? a[key].get<std::string>() : ""; };
    const std::string format = note("dev.treesnap.format");
    if (format != "1" && format != std::to_string(k_format_version))
      return std::unexpected(make_error(ErrorCode::unsupported,
                                        fmt::format("treesnap registry format {:?}; this build reads 1 to {}",
                                                    format, k_format_version)));
    s.store_digests = format != "1";
    s.name = note("dev.treesnap.name");
    s.created = note("org.opencontainers.image.created");
  } else {
    return std::unexpected(bad_manifest("no annotations"));
  }
  if (!j.contains("config")) return std::unexpected(bad_manifest("no config"));
  TRY(s.config, descriptor_from(j["config"]));
  if (s.config.media_type != k_config_type) return std::unexpected(bad_manifest("config media type"));
  if (!j.contains("layers") || !j["layers"].is_array()) return std::unexpected(bad_manifest("no layers"));
  const auto& layers = j["layers"];
  for (std::size_t i = 0; i < layers.size(); ++i) {
    TRY(auto d, descriptor_from(layers[i]));
    if (d.media_type == k_object_type) {
      s.objects.push_back(std::move(d));
    } else if (d.media_type == k_pack_index_type) {
      if (i + 1 == layers.size()) return std::unexpected(bad_manifest("a pack index is the last layer"));
      TRY(auto pack, descriptor_from(layers[++i]));
      if (pack.media_type != k_pack_type) return std::unexpected(bad_manifest("a pack index not followed by its pack"));
      s.packs.push_back({std::move(d), std::move(pack)});
    } else {
      return std::unexpected(bad_manifest(fmt::format("layer media type {:?}", d.media_type)));
    }
  }
  return s;
}

std::string compress_if_smaller(std::string_view bytes) {
  if (bytes.size() < 64 || bytes.size() > k_max_compressed_object) return {};
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), k_zstd_level);
  if (ZSTD_isError(n) || n > bytes.size() - bytes.size() / 8) return {};
  out.resize(n);
  return out;
}

Result<std::string> decompress_object(std::string_view stored, std::uint64_t size) {
  if (size > k_max_compressed_object) return std::unexpected(make_error(ErrorCode::corrupt, "packed object too large"));
  unsigned long long declared = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (declared != size) return std::unexpected(make_error(ErrorCode::corrupt, "packed object: frame size differs from the index"));
  std::string out(static_cast<std::size_t>(size), '\0');
  std::size_t n = ZSTD_decompress(out.data(), out.size(), stored.data(), stored.size());
  if (ZSTD_isError(n) || n != size) return std::unexpected(make_error(ErrorCode::corrupt, "packed object does not decompress"));
  return out;
}

}  // namespace treesnap::transfer
