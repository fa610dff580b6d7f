#include "core/manifest.hpp"

#include <zstd.h>

#include <memory>

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

// Reads the decoded bytes of a zstd frame through a window that is refilled on demand, so a
// million-entry manifest (~60 MB decoded) is parsed without ever being decoded whole.
class Reader {
 public:
  explicit Reader(std::string_view compressed) : m_in{compressed.data(), compressed.size(), 0} {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() { ZSTD_freeDCtx(m_dctx); }

  bool failed() const { return m_failed; }
  // Why the frame itself is bad (empty when it is not): zstd's message.
  const std::string& frame_error() const { return m_frame_error; }
  // True when the frame ended, every decoded byte was consumed and no input follows the frame.
  bool at_end() { return !available(1) && m_frame_done && m_frame_error.empty() && m_in.pos == m_in.size; }

  std::uint8_t byte() {
    if (!available(1)) return fail(), 0;
    return static_cast<std::uint8_t>(m_window[m_pos++]);
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
  std::string_view bytes(std::uint64_t n) {
    if (!available(n)) return fail(), std::string_view();
    std::string_view s(m_window.data() + m_pos, n);
    m_pos += n;
    return s;  // valid until the next read
  }
  std::string string() { return std::string(bytes(varint())); }

 private:
  void fail() { m_failed = true; }

  // Decodes until `n` bytes are buffered; false when the frame ends (or breaks) first.
  bool available(std::uint64_t n) {
    while (m_window.size() - m_pos < n) {
      if (m_frame_done || !m_frame_error.empty() || n > k_max_decoded_size) return false;
      m_window.erase(0, m_pos);  // keep only what is not consumed yet
      m_pos = 0;
      std::size_t old_size = m_window.size();
      m_window.resize(old_size + ZSTD_DStreamOutSize());
      ZSTD_outBuffer out{m_window.data() + old_size, ZSTD_DStreamOutSize(), 0};
      std::size_t left = ZSTD_decompressStream(m_dctx, &out, &m_in);
      m_window.resize(old_size + out.pos);
      m_decoded += out.pos;
      if (ZSTD_isError(left)) {
        m_frame_error = ZSTD_getErrorName(left);
      } else if (left == 0) {
        m_frame_done = true;
      } else if (m_in.pos == m_in.size && out.pos == 0) {
        m_frame_error = "truncated zstd frame";  // no input left and no progress possible
      }
      if (m_decoded > k_max_decoded_size) m_frame_error = "oversized zstd frame";
    }
    return true;
  }

  ZSTD_DCtx* m_dctx = ZSTD_createDCtx();
  ZSTD_inBuffer m_in;
  std::string m_window;
  std::size_t m_pos = 0;
  std::uint64_t m_decoded = 0;
  bool m_frame_done = false;
  std::string m_frame_error;
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
      w.varint(e.data_ranges().size());
      std::uint64_t previous_end = 0;  // offsets delta-encoded: small varints
      for (const auto& r : e.data_ranges()) {
        w.varint(r.offset - previous_end);
        w.varint(r.length);
        previous_end = r.offset + r.length;
      }
      break;
    }
    case EntryType::symlink: w.string(e.link_target()); break;
    case EntryType::hardlink: w.varint(e.link_index); break;
    case EntryType::char_device:
    case EntryType::block_device: w.varint(e.rdev()); break;
    case EntryType::directory:
    case EntryType::fifo: break;
  }
  w.varint(e.xattrs().size());
  for (const auto& x : e.xattrs()) {
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
      // A count the frame cannot hold ends the loop as a truncated entry: nothing is reserved.
      std::uint64_t ranges = r.varint();
      std::vector<DataRange> data_ranges;
      std::uint64_t previous_end = 0;
      for (std::uint64_t i = 0; i < ranges && !r.failed(); ++i) {
        std::uint64_t gap = r.varint(), length = r.varint();
        // previous_end <= size holds, so these subtractions cannot wrap.
        if (gap > e.size - previous_end || length > e.size - previous_end - gap)
          return bad("data range outside the file");
        data_ranges.push_back({previous_end + gap, length});
        previous_end += gap + length;
      }
      e.set_data_ranges(std::move(data_ranges));
      break;
    }
    case EntryType::symlink: e.set_link_target(r.string()); break;
    case EntryType::hardlink: e.link_index = r.varint(); break;
    case EntryType::char_device:
    case EntryType::block_device: e.set_rdev(r.varint()); break;
    case EntryType::directory:
    case EntryType::fifo: break;
  }
  std::uint64_t xattr_count = r.varint();
  std::vector<Xattr> xattrs;
  for (std::uint64_t i = 0; i < xattr_count && !r.failed(); ++i) {
    Xattr x;
    x.name = r.string();
    x.value = r.string();
    xattrs.push_back(std::move(x));
  }
  e.set_xattrs(std::move(xattrs));
  if (r.failed()) return bad("truncated entry");
  return e;
}

void encode_relocations(Writer& w, const Manifest& m) {
  w.string(m.relocation_root);
  w.varint(m.relocations.size());
  std::uint64_t previous_index = 0;  // entry indexes and offsets delta-encoded
  for (const auto& r : m.relocations) {
    w.varint(r.entry_index - previous_index);
    previous_index = r.entry_index;
    w.byte(static_cast<std::uint8_t>(r.kind));
    w.varint(r.offsets.size());
    std::uint64_t previous_end = 0;
    for (auto o : r.offsets) {
      w.varint(o - previous_end);
      previous_end = o + m.relocation_root.size();
    }
  }
}

// Bounds-checked like the entries: every record names a non-empty file entry, in ascending order,
// and its occurrences lie inside the file without overlapping.
Result<void> decode_relocations(Reader& r, Manifest& m) {
  auto bad = [](std::string what) {
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest relocations: " + what));
  };
  m.relocation_root = r.string();
  const std::uint64_t count = r.varint();
  if (r.failed()) return bad("truncated");
  if (count > 0 && m.relocation_root.empty()) return bad("records without a root path");
  const std::uint64_t p = m.relocation_root.size();
  std::uint64_t index = 0;
  for (std::uint64_t i = 0; i < count && !r.failed(); ++i) {
    const std::uint64_t delta = r.varint();
    if ((i > 0 && delta == 0) || delta >= m.entries.size() - index) return bad("entry index out of order or range");
    index += delta;
    const Entry& e = m.entries[index];
    if (e.type != EntryType::file || e.size == 0) return bad("record for an entry that is not a file");
    Relocation rel;
    rel.entry_index = index;
    const std::uint8_t kind = r.byte();
    if (kind > static_cast<std::uint8_t>(RelocationKind::binary)) return bad("unknown kind");
    rel.kind = static_cast<RelocationKind>(kind);
    const std::uint64_t offsets = r.varint();
    std::uint64_t previous_end = 0;
    for (std::uint64_t k = 0; k < offsets && !r.failed(); ++k) {
      const std::uint64_t gap = r.varint();
      // previous_end <= size holds, so these subtractions cannot wrap.
      if (gap > e.size - previous_end || p > e.size - previous_end - gap) return bad("offset outside the file");
      rel.offsets.push_back(previous_end + gap);
      previous_end += gap + p;
    }
    m.relocations.push_back(std::move(rel));
  }
  if (r.failed()) return bad("truncated");
  return {};
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

Result<void> encode_manifest(const Manifest& manifest, const ByteSink& sink) {
  // Entries are encoded into a small buffer, compressed as it fills and handed to `sink` a zstd
  // output block at a time, so neither the encoded nor the compressed manifest is ever whole in
  // memory (at a million entries they are ~60 and ~35 MB).
  constexpr std::size_t k_flush_at = 1 << 20;
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, k_zstd_level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);  // the format's checksum (XXH64)
  std::string block(ZSTD_CStreamOutSize(), '\0');
  auto compress = [&](std::string_view raw, ZSTD_EndDirective mode) -> Result<void> {
    ZSTD_inBuffer in{raw.data(), raw.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{block.data(), block.size(), 0};
      std::size_t remaining = ZSTD_compressStream2(cctx.get(), &out, &in, mode);
      if (ZSTD_isError(remaining))  // cannot happen with valid parameters, short of memory
        return std::unexpected(make_error(ErrorCode::io, fmt::format("manifest: {}", ZSTD_getErrorName(remaining))));
      if (out.pos > 0) TRY_VOID(sink(std::string_view(block.data(), out.pos)));
      bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
      if (done) return {};
    }
  };
  Writer w;
  const bool relocatable = !manifest.relocation_root.empty();
  w.bytes(k_magic);
  w.byte(relocatable ? k_manifest_version : 1);
  w.byte(manifest.algorithm == DigestAlgorithm::sha256 ? 0 : 1);
  w.varint(manifest.entries.size());
  for (const auto& e : manifest.entries) {
    encode_entry(w, e);
    if (w.out().size() >= k_flush_at) {
      TRY_VOID(compress(w.out(), ZSTD_e_continue));
      w.out().clear();
    }
  }
  if (relocatable) encode_relocations(w, manifest);
  return compress(w.out(), ZSTD_e_end);
}

std::string encode_manifest(const Manifest& manifest) {
  std::string out;
  (void)encode_manifest(manifest, [&](std::string_view block) -> Result<void> {
    out.append(block);
    return {};
  });
  return out;
}

Result<Manifest> decode_manifest(std::string_view compressed) {
  // The frame does not record its decoded size (it is streamed); Reader decodes it a window at
  // a time, up to a ceiling.
  Reader r(compressed);
  auto frame_error = [&]() {
    return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("manifest: {}", r.frame_error())));
  };
  if (r.bytes(k_magic.size()) != k_magic) {
    if (!r.frame_error().empty()) return frame_error();
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: bad magic"));
  }
  std::uint8_t version = r.byte();
  if (version != 1 && version != k_manifest_version)
    return std::unexpected(make_error(ErrorCode::unsupported, fmt::format("manifest version {}", version)));
  Manifest m;
  std::uint8_t algorithm = r.byte();
  if (algorithm > 1) return std::unexpected(make_error(ErrorCode::corrupt, "manifest: unknown digest"));
  m.algorithm = algorithm == 0 ? DigestAlgorithm::sha256 : DigestAlgorithm::xxh3_128;
  std::uint64_t count = r.varint();
  if (r.failed()) return std::unexpected(make_error(ErrorCode::corrupt, "manifest: bad entry count"));

  // A count larger than the frame holds fails as a truncated entry; nothing is reserved for it.
  for (std::uint64_t i = 0; i < count; ++i) {
    auto entry = decode_entry(r, digest_size(m.algorithm));
    if (!entry) {
      if (!r.frame_error().empty()) return frame_error();
      return std::unexpected(entry.error());
    }
    m.entries.push_back(std::move(*entry));
  }
  if (version >= 2) {
    auto relocations = decode_relocations(r, m);
    if (!relocations) {
      if (!r.frame_error().empty()) return frame_error();
      return std::unexpected(relocations.error());
    }
  }
  if (!r.at_end()) {
    if (!r.frame_error().empty()) return frame_error();
    return std::unexpected(make_error(ErrorCode::corrupt, "manifest: trailing bytes or unfinished zstd frame"));
  }
  return m;
}

}  // namespace treesnap
