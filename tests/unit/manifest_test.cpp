// core/manifest: canonical order, the encoding's grammar, and decode's refusal of damaged or
// hand-crafted frames.
#include <zstd.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/digest.hpp"
#include "core/manifest.hpp"
#include "util/error.hpp"
#include "test_util.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;

// The uncompressed grammar, written independently of manifest.cpp (docs/format.md):
// "treesnap" version:u8 algorithm:u8 count:varint entry*, where an entry is
// path:string type:u8 mode uid gid:varint mtime:zigzag-varint <type fields> xattrs:varint (string string)*.
class Raw {
 public:
  Raw& byte(std::uint8_t b) { m_bytes.push_back(static_cast<char>(b)); return *this; }
  Raw& varint(std::uint64_t v) {
    for (; v >= 0x80; v >>= 7) byte(static_cast<std::uint8_t>(v | 0x80));
    return byte(static_cast<std::uint8_t>(v));
  }
  Raw& svarint(std::int64_t v) {
    return varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  Raw& bytes(std::string_view s) { m_bytes.append(s); return *this; }
  Raw& string(std::string_view s) { return varint(s.size()).bytes(s); }
  Raw& header(std::uint64_t count, std::uint8_t version = 1, std::uint8_t algorithm = 0) {
    return bytes("treesnap").byte(version).byte(algorithm).varint(count);
  }
  // path, type, mode 0755, uid 0, gid 0, mtime 0; the caller adds type fields and xattrs.
  Raw& entry_head(std::string_view path, std::uint8_t type) {
    return string(path).byte(type).varint(0755).varint(0).varint(0).svarint(0);
  }
  Raw& root() { return entry_head("", 0).varint(0); }

  const std::string& plain() const { return m_bytes; }
  std::string compressed() const {
    std::string out(ZSTD_compressBound(m_bytes.size()), '\0');
    std::size_t n = ZSTD_compress(out.data(), out.size(), m_bytes.data(), m_bytes.size(), 3);
    EXPECT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
    out.resize(n);
    return out;
  }

 private:
  std::string m_bytes;
};

// Streamed decompression: encode_manifest does not promise to record the decoded size.
std::string decompress(const std::string& frame) {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  std::string out;
  std::size_t left = 1;
  while (left != 0) {
    char buffer[4096];
    ZSTD_outBuffer o{buffer, sizeof buffer, 0};
    left = ZSTD_decompressStream(dctx, &o, &in);
    if (ZSTD_isError(left) || (o.pos == 0 && in.pos == in.size && left != 0)) {
      out = "<bad frame>";
      break;
    }
    out.append(buffer, o.pos);
  }
  ZSTD_freeDCtx(dctx);
  return out;
}

Entry make(std::string path, EntryType type, std::uint32_t mode) {
  Entry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  e.uid = 1000;
  e.gid = 100;
  e.mtime_ns = 1'700'000'000'123'456'789;
  return e;
}

// Every entry type and every field that has an unusual value somewhere.
Manifest every_kind_of_entry(DigestAlgorithm algorithm) {
  const std::size_t digest_bytes = digest_size(algorithm);
  Manifest m{algorithm, {}};
  m.entries.push_back(make("", EntryType::directory, 0755));
  Entry dir = make("d", EntryType::directory, 02775);
  dir.set_xattrs({{"user.empty", ""}});
  m.entries.push_back(dir);
  Entry file = make("d/file", EntryType::file, 04755);
  file.size = 5;
  file.digest = std::string(digest_bytes, '\xab');
  file.set_xattrs({{"user.bin", std::string("\0\x01\xff\x80", 4)}, {"user.text", "blue"}});
  m.entries.push_back(file);
  Entry sparse = make("d/sparse", EntryType::file, 0600);
  sparse.size = std::uint64_t{1} << 40;  // 1 TiB, two islands of data
  sparse.digest = std::string(digest_bytes, '\x01');
  sparse.set_data_ranges({{4096, 8192}, {(std::uint64_t{1} << 40) - 4096, 4096}});
  m.entries.push_back(sparse);
  Entry empty = make("empty", EntryType::file, 0444);
  empty.mtime_ns = -1'500'000'000'000'000'001;  // before 1970, not a whole second
  m.entries.push_back(empty);
  Entry fifo = make("fifo", EntryType::fifo, 0640);
  m.entries.push_back(fifo);
  Entry link = make("hard", EntryType::hardlink, 0);
  link.link_index = 2;
  m.entries.push_back(link);
  Entry block = make("sda", EntryType::block_device, 0660);
  block.set_rdev(0x0800);
  m.entries.push_back(block);
  Entry symlink = make("sym", EntryType::symlink, 0777);
  symlink.set_link_target("../../\xff not utf-8");
  m.entries.push_back(symlink);
  Entry chr = make("tty", EntryType::char_device, 0620);
  chr.set_rdev(std::numeric_limits<std::uint64_t>::max());
  chr.uid = std::numeric_limits<std::uint32_t>::max();
  chr.gid = std::numeric_limits<std::uint32_t>::max();
  chr.mtime_ns = std::numeric_limits<std::int64_t>::min();
  m.entries.push_back(chr);
  Entry raw_name = make("\xff\xfe\x80", EntryType::file, 0644);  // not UTF-8
  raw_name.size = 1;
  raw_name.digest = std::string(digest_bytes, '\0');
  raw_name.mtime_ns = std::numeric_limits<std::int64_t>::max();
  m.entries.push_back(raw_name);
  return m;
}

TEST(ManifestTest, PathLessPutsSlashBelowEveryByte) {
  EXPECT_TRUE(path_less("", "a"));
  EXPECT_TRUE(path_less("a", "a/b"));
  EXPECT_TRUE(path_less("a/b", "a-b"));     // '-' is 0x2d, below '/' 0x2f in plain byte order
  EXPECT_TRUE(path_less("a/z", "a\x01"));   // even below control bytes
  EXPECT_TRUE(path_less("a/b/c", "a-"));
  EXPECT_TRUE(path_less("a\x7f", "a\x80"));  // bytes compare unsigned
  EXPECT_TRUE(path_less("ab", "b"));
  EXPECT_FALSE(path_less("a-b", "a/b"));
  EXPECT_FALSE(path_less("a", "a"));
  EXPECT_FALSE(path_less("a/b", "a"));
  EXPECT_FALSE(path_less("a\x80", "a\x7f"));
}

TEST(ManifestTest, SortingByPathLessGivesPreOrder) {
  std::vector<std::string> paths = {"b", "a-b", "a/b/c", "a", "a/b", "a.c", "", "a/a"};
  std::sort(paths.begin(), paths.end(), [](const std::string& x, const std::string& y) { return path_less(x, y); });
  EXPECT_EQ(paths, (std::vector<std::string>{"", "a", "a/a", "a/b", "a/b/c", "a-b", "a.c", "b"}));
}

TEST(ManifestTest, RoundTripKeepsEveryField) {
  for (auto algorithm : {DigestAlgorithm::sha256, DigestAlgorithm::xxh3_128}) {
    Manifest m = every_kind_of_entry(algorithm);
    std::string encoded = encode_manifest(m);
    ASSERT_FALSE(encoded.empty());
    EXPECT_EQ(encoded, encode_manifest(m)) << "encoding must be deterministic: the digest names the snapshot";
    auto decoded = decode_manifest(encoded);
    ASSERT_TRUE(ok(decoded)) << to_string(algorithm);
    EXPECT_EQ(decoded->algorithm, algorithm);
    ASSERT_EQ(decoded->entries.size(), m.entries.size());
    for (std::size_t i = 0; i < m.entries.size(); ++i)
      EXPECT_EQ(decoded->entries[i], m.entries[i]) << "entry " << i << " " << test::fs::path(m.entries[i].path);
  }
}

// Enough entries for several 1 MiB encoder flushes and zstd blocks, so the streamed encoder and
// the windowed decoder both cross piece boundaries in the middle of entries.
TEST(ManifestTest, LargeManifestStreamsInPiecesAndRoundTrips) {
  Manifest m{DigestAlgorithm::sha256, {}};
  m.entries.push_back(make("", EntryType::directory, 0755));
  for (int i = 0; i < 60'000; ++i) {
    Entry f = make(fmt::format("f{:06d}", i), EntryType::file, 0644);
    f.size = 100;
    f.digest = hash_bytes(DigestAlgorithm::sha256, std::to_string(i));
    if (i % 1000 == 0) f.set_xattrs({{"user.long", std::string(5000, 'x')}});
    m.entries.push_back(std::move(f));
  }
  std::string streamed;
  std::size_t pieces = 0;
  ASSERT_TRUE(ok(encode_manifest(m, [&](std::string_view piece) -> Result<void> {
    EXPECT_LE(piece.size(), ZSTD_CStreamOutSize());
    streamed.append(piece);
    ++pieces;
    return {};
  })));
  EXPECT_GT(pieces, 1u);
  EXPECT_EQ(streamed, encode_manifest(m));
  auto decoded = decode_manifest(streamed);
  ASSERT_TRUE(ok(decoded));
  ASSERT_EQ(decoded->entries.size(), m.entries.size());
  EXPECT_TRUE(std::equal(m.entries.begin(), m.entries.end(), decoded->entries.begin()));
}

TEST(ManifestTest, EncodeStopsAtTheSinksError) {
  Manifest m = every_kind_of_entry(DigestAlgorithm::sha256);
  auto failing = [](std::string_view) -> Result<void> { return std::unexpected(make_error(ErrorCode::no_space, "full")); };
  EXPECT_TRUE(fails_with(encode_manifest(m, failing), ErrorCode::no_space));
}

TEST(ManifestTest, TrailingBytesAfterTheFrameAreCorrupt) {
  std::string frame = encode_manifest(every_kind_of_entry(DigestAlgorithm::sha256));
  EXPECT_TRUE(fails_with(decode_manifest(frame + frame), ErrorCode::corrupt));
}

TEST(EntryTest, RareFieldsAreOutOfLineAndCompareByValue) {
  Entry a = make("s", EntryType::symlink, 0777);
  Entry b = a;
  b.set_link_target("");  // empty: nothing to store
  EXPECT_EQ(a, b);
  a.set_link_target("target");
  EXPECT_EQ(a.link_target(), "target");
  EXPECT_NE(a, b);
  Entry copy = a;
  EXPECT_EQ(copy, a);
  copy.set_rdev(7);
  EXPECT_EQ(a.rdev(), 0u) << "copies must not share the out-of-line block";
  a.set_link_target("");
  EXPECT_EQ(a, b) << "an entry whose extras are all empty again equals one that never had any";
  EXPECT_TRUE(a.xattrs().empty());
  EXPECT_TRUE(a.data_ranges().empty());
}

TEST(EntryTest, DigestHoldsUpToThirtyTwoBytesInline) {
  const std::string sha(32, '\xab');
  Digest d = sha;
  EXPECT_EQ(d, sha);
  EXPECT_EQ(d.size(), 32u);
  EXPECT_EQ(std::string_view(d), sha);
  EXPECT_TRUE(Digest(std::string(33, 'x')).empty()) << "too long must not be silently truncated";
  EXPECT_TRUE(Digest().empty());
}

TEST(ManifestTest, EncodingFollowsTheGrammar) {
  Manifest m{DigestAlgorithm::sha256, {}};
  Entry root = make("", EntryType::directory, 0755);
  root.uid = root.gid = 0;
  root.mtime_ns = 0;
  m.entries.push_back(root);
  Entry f = make("f", EntryType::file, 0644);
  f.uid = 1;
  f.gid = 2;
  f.mtime_ns = -1;
  f.size = 3;
  f.digest = std::string(32, '\xab');
  f.set_data_ranges({{1, 2}});
  f.set_xattrs({{"user.k", "v"}});
  m.entries.push_back(f);

  Raw expected;
  expected.header(2).root();
  expected.string("f").byte(1).varint(0644).varint(1).varint(2).svarint(-1);
  expected.varint(3).bytes(std::string(32, '\xab')).varint(1).varint(1).varint(2);  // ranges: gap, length
  expected.varint(1).string("user.k").string("v");

  std::string frame = encode_manifest(m);
  EXPECT_EQ(decompress(frame), expected.plain());
  // RFC 8878: after the 4-byte magic, the frame header descriptor's bit 2 is Content_Checksum_flag.
  ASSERT_GT(frame.size(), 4u);
  EXPECT_TRUE(static_cast<unsigned char>(frame[4]) & 0x04) << "the frame must carry zstd's content checksum";
}

TEST(ManifestTest, DecodeAcceptsAHandMadeMinimalManifest) {
  Raw raw;
  raw.header(1, 1, 1).root();
  auto decoded = decode_manifest(raw.compressed());
  ASSERT_TRUE(ok(decoded));
  EXPECT_EQ(decoded->algorithm, DigestAlgorithm::xxh3_128);
  ASSERT_EQ(decoded->entries.size(), 1u);
  EXPECT_EQ(decoded->entries[0].mode, 0755u);
}

TEST(ManifestTest, DecodeRejectsTruncatedFrames) {
  std::string frame = encode_manifest(every_kind_of_entry(DigestAlgorithm::sha256));
  for (std::size_t keep : {std::size_t{0}, std::size_t{3}, frame.size() / 2, frame.size() - 4, frame.size() - 1}) {
    auto decoded = decode_manifest(std::string_view(frame).substr(0, keep));
    EXPECT_TRUE(fails_with(decoded, ErrorCode::corrupt)) << "kept " << keep << " of " << frame.size();
  }
}

// Any damaged byte of the frame (header, block or checksum) must be caught.
TEST(ManifestTest, DecodeRejectsEveryFlippedByte) {
  const std::string frame = encode_manifest(every_kind_of_entry(DigestAlgorithm::sha256));
  for (std::size_t i = 0; i < frame.size(); ++i) {
    std::string damaged = frame;
    damaged[i] = static_cast<char>(damaged[i] ^ 0xff);
    auto decoded = decode_manifest(damaged);
    EXPECT_TRUE(fails_with(decoded, ErrorCode::corrupt)) << "byte " << i << " of " << frame.size();
  }
}

TEST(ManifestTest, DecodeRejectsWhatIsNotAManifestFrame) {
  EXPECT_TRUE(fails_with(decode_manifest("not zstd at all"), ErrorCode::corrupt));
  EXPECT_TRUE(fails_with(decode_manifest(""), ErrorCode::corrupt));
}

// encode_manifest streams, so its frames need not record their decoded size; decode must accept
// both kinds.
TEST(ManifestTest, DecodeAcceptsFramesWithAndWithoutContentSize) {
  Raw raw;
  raw.header(1).root();
  EXPECT_TRUE(ok(decode_manifest(raw.compressed())));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string streamed(ZSTD_compressBound(raw.plain().size()), '\0');
  ZSTD_outBuffer out{streamed.data(), streamed.size(), 0};
  ZSTD_inBuffer in{raw.plain().data(), raw.plain().size(), 0};
  std::size_t left = ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
  ZSTD_freeCCtx(cctx);
  ASSERT_EQ(left, 0u);
  streamed.resize(out.pos);
  ASSERT_EQ(ZSTD_getFrameContentSize(streamed.data(), streamed.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  EXPECT_TRUE(ok(decode_manifest(streamed)));
}

TEST(ManifestTest, DecodeRejectsWrongMagic) {
  Raw raw;
  raw.bytes("treesnaX").byte(1).byte(0).varint(1).root();
  auto decoded = decode_manifest(raw.compressed());
  ASSERT_TRUE(fails_with(decoded, ErrorCode::corrupt));
  EXPECT_NE(decoded.error().context.find("magic"), std::string::npos) << decoded.error().context;
}

TEST(ManifestTest, DecodeReportsUnknownVersionAsUnsupported) {
  for (std::uint8_t version : {0, 3, 255}) {
    Raw raw;
    raw.header(1, version).root();
    auto decoded = decode_manifest(raw.compressed());
    EXPECT_TRUE(fails_with(decoded, ErrorCode::unsupported)) << "version " << int{version};
  }
}

TEST(ManifestTest, DecodeRejectsUnknownAlgorithmTypeAndMode) {
  Raw algorithm;
  algorithm.header(1, 1, 2).root();
  EXPECT_TRUE(fails_with(decode_manifest(algorithm.compressed()), ErrorCode::corrupt));

  Raw type;
  type.header(2).root().entry_head("x", 7).varint(0);
  EXPECT_TRUE(fails_with(decode_manifest(type.compressed()), ErrorCode::corrupt));

  Raw mode;
  mode.header(2).root().string("x").byte(4).varint(010000).varint(0).varint(0).svarint(0).varint(0);
  EXPECT_TRUE(fails_with(decode_manifest(mode.compressed()), ErrorCode::corrupt));

  Raw uid;
  uid.header(2).root().string("x").byte(4).varint(0644).varint(std::uint64_t{1} << 32).varint(0).svarint(0).varint(0);
  EXPECT_TRUE(fails_with(decode_manifest(uid.compressed()), ErrorCode::corrupt));
}

// A file of `size` bytes with the given (gap, length) pairs.
std::string file_with_ranges(std::uint64_t size, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges) {
  Raw raw;
  raw.header(2).root().entry_head("f", 1).varint(size).bytes(std::string(32, '\x11')).varint(ranges.size());
  for (auto [gap, length] : ranges) raw.varint(gap).varint(length);
  raw.varint(0);
  return raw.compressed();
}

TEST(ManifestTest, DecodeChecksRangesAgainstTheFileSize) {
  EXPECT_TRUE(ok(decode_manifest(file_with_ranges(100, {{10, 20}, {30, 40}}))));  // ends exactly at 100
  EXPECT_TRUE(fails_with(decode_manifest(file_with_ranges(100, {{90, 20}})), ErrorCode::corrupt));
  EXPECT_TRUE(fails_with(decode_manifest(file_with_ranges(100, {{0, 101}})), ErrorCode::corrupt));
  EXPECT_TRUE(fails_with(decode_manifest(file_with_ranges(100, {{50, 50}, {1, 0}})), ErrorCode::corrupt));
  // Offsets that would wrap around 2^64 if added unchecked.
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  EXPECT_TRUE(fails_with(decode_manifest(file_with_ranges(max, {{max, 1}})), ErrorCode::corrupt));
}

// For a file over 2^63 bytes an unchecked `previous_end + gap` wraps: here the second range would
// start at (2^63+10) + (2^63+10) mod 2^64 = 20, before the first one ends. (Once accepted.)
TEST(ManifestTest, DecodeRejectsRangeOffsetsThatWrapAround) {
  const std::uint64_t big = (std::uint64_t{1} << 63) + 10;
  EXPECT_TRUE(fails_with(decode_manifest(file_with_ranges(big, {{big - 10, 10}, {big, 0}})), ErrorCode::corrupt));
}

TEST(ManifestTest, DecodeNeverTrustsACount) {
  const std::uint64_t huge = std::uint64_t{1} << 62;
  Raw entries;
  entries.header(huge).root();
  EXPECT_TRUE(fails_with(decode_manifest(entries.compressed()), ErrorCode::corrupt));
  Raw few_too_many;
  few_too_many.header(3).root().root();
  EXPECT_TRUE(fails_with(decode_manifest(few_too_many.compressed()), ErrorCode::corrupt));
  Raw xattrs;
  xattrs.header(1).entry_head("", 0).varint(huge).string("user.a").string("b");
  EXPECT_TRUE(fails_with(decode_manifest(xattrs.compressed()), ErrorCode::corrupt));
  Raw ranges;
  ranges.header(2).root().entry_head("f", 1).varint(100).bytes(std::string(32, '\x11')).varint(huge).varint(0);
  EXPECT_TRUE(fails_with(decode_manifest(ranges.compressed()), ErrorCode::corrupt));
  Raw path_length;
  path_length.header(1).varint(huge).bytes("short");
  EXPECT_TRUE(fails_with(decode_manifest(path_length.compressed()), ErrorCode::corrupt));
  Raw digest;  // a file's digest cut short by the end of the data
  digest.header(2).root().entry_head("f", 1).varint(100).bytes(std::string(10, '\x11'));
  EXPECT_TRUE(fails_with(decode_manifest(digest.compressed()), ErrorCode::corrupt));
  Raw varint;  // eleven continuation bytes: longer than any 64-bit varint
  varint.header(1).bytes(std::string(11, '\x80'));
  EXPECT_TRUE(fails_with(decode_manifest(varint.compressed()), ErrorCode::corrupt));
}

TEST(ManifestTest, DecodeRejectsTrailingBytes) {
  Raw raw;
  raw.header(1).root().byte(0);
  EXPECT_TRUE(fails_with(decode_manifest(raw.compressed()), ErrorCode::corrupt));
}

}  // namespace
}  // namespace treesnap
