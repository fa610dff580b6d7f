// The packed restore record (restore_files.entries, schema 5): one zstd frame per restore instead
// of a row per file (docs/format.md).
#include "meta/restore_files.hpp"

#include <xxhash.h>
#include <zstd.h>

#include <bit>
#include <cstring>

#include <fmt/format.h>

namespace treesnap {

namespace {

// restore_files.entries (docs/format.md): "TSRF", version 1, u64 size of the payload, then the
// payload compressed with zstd (level 1: 6.4 MB of records for the 46k-file Python stdlib become
// 2 MB in ~15 ms, a third of the pages to write). Payload: u32 count, then per file u8 strategy,
// u64 ino, u64 size, i64 mtime_ns, i64 ctime_ns, u32 mode, u32 path length, path, u8 digest
// length, digest; then the XXH3-64 of all that. Little-endian, as every host treesnap builds for.
constexpr std::string_view k_packed_magic = "TSRF\x01";

template <typename T>
void put(std::string& out, T value) {
  static_assert(std::endian::native == std::endian::little);
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

class Unpacker {
 public:
  explicit Unpacker(std::string_view data) : m_data(data) {}
  template <typename T>
  bool get(T& value) {
    if (m_data.size() - m_at < sizeof value) return false;
    std::memcpy(&value, m_data.data() + m_at, sizeof value);
    m_at += sizeof value;
    return true;
  }
  bool bytes(std::size_t n, std::string_view& out) {
    if (m_data.size() - m_at < n) return false;
    out = m_data.substr(m_at, n);
    m_at += n;
    return true;
  }

 private:
  std::string_view m_data;
  std::size_t m_at = 0;
};

}  // namespace

Result<std::string> pack_restore_files(const std::vector<RestoreEntryRecord>& entries) {
  std::string raw;
  std::size_t size = 4 + 8;
  for (const auto& e : entries) size += 42 + e.path.size() + e.digest.size();
  raw.reserve(size);
  put(raw, static_cast<std::uint32_t>(entries.size()));
  for (const auto& e : entries) {
    put(raw, static_cast<std::uint8_t>(e.placed));
    put(raw, e.stamp.ino);
    put(raw, e.stamp.size);
    put(raw, e.stamp.mtime_ns);
    put(raw, e.stamp.ctime_ns);
    put(raw, e.stamp.mode);
    put(raw, static_cast<std::uint32_t>(e.path.size()));
    raw.append(e.path);
    put(raw, static_cast<std::uint8_t>(e.digest.size()));
    raw.append(e.digest);
  }
  put(raw, static_cast<std::uint64_t>(XXH3_64bits(raw.data(), raw.size())));
  std::string out(k_packed_magic);
  put(out, static_cast<std::uint64_t>(raw.size()));
  const std::size_t header = out.size();
  out.resize(header + ZSTD_compressBound(raw.size()));
  const std::size_t n = ZSTD_compress(out.data() + header, out.size() - header, raw.data(), raw.size(), 1);
  if (ZSTD_isError(n))
    return std::unexpected(make_error(ErrorCode::io, fmt::format("compress restore record: {}", ZSTD_getErrorName(n))));
  out.resize(header + n);
  return out;
}

Result<std::vector<RestoreEntryRecord>> unpack_restore_files(std::string_view packed,
                                                             std::optional<std::string_view> digest) {
  auto damaged = [] { return std::unexpected(make_error(ErrorCode::corrupt, "restore record (restore_files) is damaged")); };
  std::uint64_t raw_size = 0;
  if (packed.size() < k_packed_magic.size() + 8 || !packed.starts_with(k_packed_magic)) return damaged();
  std::memcpy(&raw_size, packed.data() + k_packed_magic.size(), 8);
  packed.remove_prefix(k_packed_magic.size() + 8);
  if (raw_size < 4 + 8 || raw_size > (std::uint64_t{1} << 36)) return damaged();
  std::string raw(raw_size, '\0');
  const std::size_t n = ZSTD_decompress(raw.data(), raw.size(), packed.data(), packed.size());
  if (ZSTD_isError(n) || n != raw.size()) return damaged();
  std::uint64_t sum = 0;
  std::memcpy(&sum, raw.data() + raw.size() - 8, 8);
  std::string_view data(raw.data(), raw.size() - 8);
  if (XXH3_64bits(data.data(), data.size()) != sum) return damaged();
  Unpacker in(data);
  std::uint32_t count = 0;
  if (!in.get(count)) return damaged();
  std::vector<RestoreEntryRecord> out;
  if (!digest) out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint8_t placed = 0, digest_size = 0;
    FileStamp stamp;
    std::uint32_t path_size = 0;
    std::string_view path, file_digest;
    if (!in.get(placed) || !in.get(stamp.ino) || !in.get(stamp.size) || !in.get(stamp.mtime_ns) ||
        !in.get(stamp.ctime_ns) || !in.get(stamp.mode) || !in.get(path_size) || !in.bytes(path_size, path) ||
        !in.get(digest_size) || !in.bytes(digest_size, file_digest))
      return damaged();
    if (digest && file_digest != *digest) continue;
    out.push_back({std::string(path), stamp, static_cast<PlacedBy>(placed), std::string(file_digest)});
  }
  return out;
}

}  // namespace treesnap
