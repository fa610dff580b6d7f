#include "core/manifest.hpp"

#include <zstd.h>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "util/error.hpp"

namespace treesnap {
namespace {

constexpr std::string_view k_magic = "treesnap";
// Level 3 is zstd's default: a 100k-entry manifest compresses in a few ms and shrinks ~5x.
constexpr int k_zstd_level = 3;
// A decoded manifest larger than this is refused: 1M entries average well under 256 bytes.
constexpr std::size_t k_max_decoded_size = std::size_t{4} << 30;

class Writer {
 public:
  void byte(std::uint8_t b) { m_out.push_back(static_cast<char>(b)); }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      byte(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    byte(static_cast<std::uint8_t>(v));
  }
  void svarint(std::int64_t v) {
    varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void bytes(std::string_view s) { m_out.append(s); }
  void string(std::string_view s) {
    varint(s.size());
    bytes(s);
  }
  std::string& out() { return m_out; }

 private:
  std::string m_out;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : m_in(in) {}
  bool failed() const { return m_failed; }
  std::size_t remaining() const { return m_in.size() - m_pos; }
  std::uint8_t byte() {
    if (m_pos >= m_in.size()) return fail(), 0;
    return static_cast<std::uint8_t>(m_in[m_pos++]);
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      std::uint8_t b = byte();
      if (m_failed) return 0;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return fail(), 0;
  }
  std::int64_t svarint() {
    std::uint64_t v = varint();
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
  }
  std::string bytes(std::uint64_t n) {
    if (n > remaining()) return fail(), std::string();
    std::string s(m_in.substr(m_pos, n));
    m_pos += n;
    return s;
  }
  std::string string() { return bytes(varint()); }

 private:
  void fail() { m_failed = true; }
  std::string_view m_in;
  std::size_t m_pos = 0;
  bool m_failed = false;
};

void encode_entry(Writer& w, const Entry& e) {
  w.string(e.path);
  w.byte(static_cast<std::uint8_t>(e.type));
  w.varint(e.mode);
  w.varint(e.uid);
  w.varint(e.gid);
  w.svarint(e.mtime_ns);
  switch (e.type) {
    case EntryType::file: {
      w.varint(e.size);
      if (e.size > 0) w.bytes(e.digest);
      w.varint(e.data_ranges.size());
      std::uint64_t previous_end = 0;  // offsets delta-encoded: small varints
      for (const auto& r : e.data_ranges) {
        w.varint(r.offset - previous_end);
        w.varint(r.length);
        previous_end = r.offset + r.length;
      }
      break;
    }
    case EntryType::symlink: w.string(e.link_target); break;
    case EntryType::hardlink: w.varint(e.link_index); break;
    case EntryType::char_device:
    case EntryType::block_device: w.varint(e.rdev); break;
    case EntryType::directory:
    case EntryType::fifo: break;
  }
  w.varint(e.xattrs.size());
  for (const auto& x : e.xattrs) {
    w.string(x.name);
    w.string(x.value);
  }
}

Result<Entry> decode_entry(Reader& r, std::size_t digest_bytes) {
  auto bad = [](std::string what) {
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: " + what));
  };
  Entry e;
  e.path = r.string();
  std::uint8_t type = r.byte();
  if (type > static_cast<std::uint8_t>(EntryType::block_device))
    return bad(fmt::format("unknown entry type {}", type));
  e.type = static_cast<EntryType>(type);
  std::uint64_t mode = r.varint(), uid = r.varint(), gid = r.varint();
  if (mode > 07777 || uid > UINT32_MAX || gid > UINT32_MAX) return bad("mode or owner out of range");
  e.mode = static_cast<std::uint32_t>(mode);
  e.uid = static_cast<std::uint32_t>(uid);
  e.gid = static_cast<std::uint32_t>(gid);
  e.mtime_ns = r.svarint();
  switch (e.type) {
    case EntryType::file: {
      e.size = r.varint();
      if (e.size > 0) e.digest = r.bytes(digest_bytes);
      std::uint64_t ranges = r.varint();
      if (ranges > r.remaining()) return bad("range count exceeds manifest");
      std::uint64_t previous_end = 0;
      for (std::uint64_t i = 0; i < ranges && !r.failed(); ++i) {
        std::uint64_t gap = r.varint(), length = r.varint();
        // previous_end <= size holds, so these subtractions cannot wrap.
        if (gap > e.size - previous_end || length > e.size - previous_end - gap)
          return bad("data range outside the file");
        e.data_ranges.push_back({previous_end + gap, length});
        previous_end += gap + length;
      }
      break;
    }
    case EntryType::symlink: e.link_target = r.string(); break;
    case EntryType::hardlink: e.link_index = r.varint(); break;
    case EntryType::char_device:
    case EntryType::block_device: e.rdev = r.varint(); break;
    case EntryType::directory:
    case EntryType::fifo: break;
  }
  std::uint64_t xattrs = r.varint();
  if (xattrs > r.remaining()) return bad("xattr count exceeds manifest");
  for (std::uint64_t i = 0; i < xattrs && !r.failed(); ++i) {
    Xattr x;
    x.name = r.string();
    x.value = r.string();
    e.xattrs.push_back(std::move(x));
  }
  if (r.failed()) return bad("truncated entry");
  return e;
}

}  // namespace

bool path_less(std::string_view a, std::string_view b) noexcept {
  std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto ca = static_cast<unsigned char>(a[i]), cb = static_cast<unsigned char>(b[i]);
    if (ca == cb) continue;
    if (ca == '/') return true;
    if (cb == '/') return false;
    return ca < cb;
  }
  return a.size() < b.size();
}

std::string encode_manifest(const Manifest& manifest) {
  // Streamed: entries are encoded into a small buffer and compressed as it fills, so a
  // million-entry manifest never exists uncompressed in memory.
  constexpr std::size_t k_flush_at = 1 << 20;
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, k_zstd_level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);  // the format's checksum (XXH64)
  std::string out;
  auto compress = [&](std::string_view raw, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{raw.data(), raw.size(), 0};
    for (;;) {
      std::size_t old_size = out.size();
      out.resize(old_size + ZSTD_CStreamOutSize());
      ZSTD_outBuffer o{out.data() + old_size, ZSTD_CStreamOutSize(), 0};
      std::size_t remaining = ZSTD_compressStream2(cctx, &o, &in, mode);
      out.resize(old_size + o.pos);
      if (ZSTD_isError(remaining)) return;  // cannot happen with valid parameters
      bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
      if (done) return;
    }
  };
  Writer w;
  w.bytes(k_magic);
  w.byte(k_manifest_version);
  w.byte(manifest.algorithm == DigestAlgorithm::sha256 ? 0 : 1);
  w.varint(manifest.entries.size());
  for (const auto& e : manifest.entries) {
    encode_entry(w, e);
    if (w.out().size() >= k_flush_at) {
      compress(w.out(), ZSTD_e_continue);
      w.out().clear();
    }
  }
  compress(w.out(), ZSTD_e_end);
  ZSTD_freeCCtx(cctx);
  out.shrink_to_fit();
  return out;
}

Result<Manifest> decode_manifest(std::string_view compressed) {
  // The frame does not record its decoded size (it is streamed), so decode with a ceiling.
  std::string raw;
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  std::size_t last = 1;
  while (in.pos < in.size || last != 0) {
    if (raw.size() > k_max_decoded_size) break;
    std::size_t old_size = raw.size();
    raw.resize(old_size + ZSTD_DStreamOutSize());
    ZSTD_outBuffer o{raw.data() + old_size, ZSTD_DStreamOutSize(), 0};
    last = ZSTD_decompressStream(dctx, &o, &in);
    raw.resize(old_size + o.pos);
    if (ZSTD_isError(last)) {
      ZSTD_freeDCtx(dctx);
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("manifest: {}", ZSTD_getErrorName(last))));
    }
    if (in.pos == in.size && o.pos == 0 && last != 0) break;  // truncated frame: no progress possible
  }
  ZSTD_freeDCtx(dctx);
  if (last != 0 || raw.size() > k_max_decoded_size)
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: truncated or oversized zstd frame"));

  Reader r(raw);
  if (r.bytes(k_magic.size()) != k_magic)
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: bad magic"));
  std::uint8_t version = r.byte();
  if (version != k_manifest_version)
    return std::unexpected(make_error(ErrorCode::unsupported, fmt::format("manifest version {}", version)));
  Manifest m;
  std::uint8_t algorithm = r.byte();
  if (algorithm > 1) return std::unexpected(make_error(ErrorCode::corrupt, "manifest: unknown digest"));
  m.algorithm = algorithm == 0 ? DigestAlgorithm::sha256 : DigestAlgorithm::xxh3_128;
  std::uint64_t count = r.varint();
  if (r.failed() || count > r.remaining())
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: bad entry count"));

  for (std::uint64_t i = 0; i < count; ++i) {
    TRY(auto entry, decode_entry(r, digest_size(m.algorithm)));
    m.entries.push_back(std::move(entry));
  }
  if (r.remaining() != 0)
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: trailing bytes"));
  return m;
}

}  // namespace treesnap
