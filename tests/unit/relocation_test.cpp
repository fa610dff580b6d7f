// The relocation scanner (offsets in text and binary files, matches across the pieces of a
// streamed read and around holes), the rewrite (text of any length, binary NUL-padded, refusal),
// the manifest's relocation section, and restore --relocate end to end.
#include <gtest/gtest.h>

#include <random>

#include "core/manifest.hpp"
#include "core/relocation.hpp"
#include "store_fixture.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;
namespace fs = std::filesystem;

constexpr std::string_view k_root = "/opt/envs/py";

std::vector<std::uint64_t> scan_whole(std::string_view data, std::string_view prefix = k_root) {
  PrefixScanner scanner(prefix);
  scanner.feed(0, data);
  scanner.finish();
  return scanner.offsets();
}

TEST(PrefixScannerTest, FindsEveryOccurrenceInText) {
  std::string text = "#!/opt/envs/py/bin/python\nVIRTUAL_ENV='/opt/envs/py'\nhome=/opt/envs/py";
  EXPECT_EQ(scan_whole(text), (std::vector<std::uint64_t>{2, 39, 58}));
  PrefixScanner scanner(k_root);
  scanner.feed(0, text);
  EXPECT_EQ(scanner.kind(), RelocationKind::text);
}

TEST(PrefixScannerTest, IgnoresALongerNameThatStartsWithThePath) {
  EXPECT_TRUE(scan_whole("/opt/envs/py2/bin /opt/envs/py-old /opt/envs/py.bak").empty());
  EXPECT_EQ(scan_whole("/opt/envs/py/ /opt/envs/py:"), (std::vector<std::uint64_t>{0, 14}));
}

TEST(PrefixScannerTest, NulOrElfMakesAFileBinary) {
  PrefixScanner nul(k_root);
  nul.feed(0, std::string("abc\0/opt/envs/py\0", 18));
  nul.finish();
  EXPECT_EQ(nul.kind(), RelocationKind::binary);
  EXPECT_EQ(nul.offsets(), (std::vector<std::uint64_t>{4}));
  PrefixScanner elf(k_root);
  elf.feed(0, "\x7f" "ELF rest without a nul");
  EXPECT_EQ(elf.kind(), RelocationKind::binary);
  // A NUL after the first 8 KiB does not count: git's and conda's rule.
  PrefixScanner late(k_root);
  late.feed(0, std::string(8192, 'a') + std::string(1, '\0'));
  EXPECT_EQ(late.kind(), RelocationKind::text);
}

// Every split of the data into two and three pieces gives the offsets of the whole.
TEST(PrefixScannerTest, FindsOccurrencesAcrossPieceBoundaries) {
  const std::string data = "xx/opt/envs/py/lib y/opt/envs/py\n/opt/envs/pyz /opt/envs/py";
  const auto want = scan_whole(data);
  ASSERT_EQ(want, (std::vector<std::uint64_t>{2, 20, 47}));
  for (std::size_t a = 0; a <= data.size(); ++a) {
    for (std::size_t b = a; b <= data.size(); b += 3) {
      PrefixScanner scanner(k_root);
      scanner.feed(0, std::string_view(data).substr(0, a));
      scanner.feed(a, std::string_view(data).substr(a, b - a));
      scanner.feed(b, std::string_view(data).substr(b));
      scanner.finish();
      EXPECT_EQ(scanner.offsets(), want) << "pieces split at " << a << " and " << b;
    }
  }
}

TEST(PrefixScannerTest, AHoleEndsAMatchAndNothingStraddlesIt) {
  PrefixScanner scanner(k_root);
  scanner.feed(0, "/opt/envs/py");    // followed by a hole (zeros): a match
  scanner.feed(4096, "envs/py /opt/e");  // "/opt/" + hole + "envs/py" is no match
  scanner.feed(8192, "nvs/py");
  scanner.finish();
  EXPECT_EQ(scanner.offsets(), (std::vector<std::uint64_t>{0}));
}

TEST(PrefixScannerTest, RandomPiecesAgreeWithTheWholeRead) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::string data;
  for (int i = 0; i < 2000; ++i) data += (rng() % 7 == 0) ? std::string(k_root) + "/x" : std::string(1, 'a' + rng() % 26);
  const auto want = scan_whole(data);
  PrefixScanner scanner(k_root);
  for (std::size_t at = 0; at < data.size();) {
    std::size_t n = std::min<std::size_t>(1 + rng() % 20, data.size() - at);
    scanner.feed(at, std::string_view(data).substr(at, n));
    at += n;
  }
  scanner.finish();
  EXPECT_EQ(scanner.offsets(), want) << "seed " << seed;
}

TEST(RelocateBytesTest, TextTakesAnyLength) {
  std::string text = "a=/opt/envs/py/bin\nb=/opt/envs/py\n";
  Relocation r{0, RelocationKind::text, scan_whole(text)};
  auto longer = relocate_bytes(text, r, k_root, "/home/someone/much/longer/env");
  ASSERT_TRUE(ok(longer));
  EXPECT_EQ(*longer, "a=/home/someone/much/longer/env/bin\nb=/home/someone/much/longer/env\n");
  auto shorter = relocate_bytes(text, r, k_root, "/e");
  ASSERT_TRUE(ok(shorter));
  EXPECT_EQ(*shorter, "a=/e/bin\nb=/e\n");
}

TEST(RelocateBytesTest, BinaryIsNulPaddedAtTheEndOfEachString) {
  using namespace std::string_literals;
  const std::string data = "\x7f" "ELF\0/opt/envs/py/lib:/opt/envs/py/lib64\0tail/opt/envs/py\0end"s;
  Relocation r{0, RelocationKind::binary, scan_whole(data)};
  ASSERT_EQ(r.offsets.size(), 3u);
  auto out = relocate_bytes(data, r, k_root, "/srv/p");
  ASSERT_TRUE(ok(out));
  ASSERT_EQ(out->size(), data.size());  // every other byte keeps its offset
  const std::string want = "\x7f" "ELF\0/srv/p/lib:/srv/p/lib64"s + std::string(12, '\0') + "\0tail/srv/p"s +
                           std::string(6, '\0') + "\0end"s;
  EXPECT_EQ(*out, want);
  auto same = relocate_bytes(data, r, k_root, "/opt/envs/qq");
  ASSERT_TRUE(ok(same));
  EXPECT_EQ(same->size(), data.size());
}

TEST(RelocateBytesTest, RefusesALongerPathInBinaryAndAnOffsetThatDoesNotFit) {
  const std::string data("\0/opt/envs/py\0", 14);
  Relocation r{0, RelocationKind::binary, {1}};
  EXPECT_TRUE(fails_with(relocate_bytes(data, r, k_root, "/opt/envs/python"), ErrorCode::invalid));
  EXPECT_EQ(unrelocatable({r}, k_root, "/opt/envs/python"), (std::vector<std::uint64_t>{0}));
  EXPECT_TRUE(unrelocatable({r}, k_root, "/x").empty());
  Relocation wrong{0, RelocationKind::binary, {3}};
  EXPECT_TRUE(fails_with(relocate_bytes(data, wrong, k_root, "/x"), ErrorCode::invalid));
}

Manifest small_manifest() {
  Manifest m;
  Entry root;
  root.type = EntryType::directory;
  root.mode = 0755;
  m.entries.push_back(root);
  Entry file;
  file.path = "bin/pip";
  file.size = 100;
  file.mode = 0755;
  file.digest = std::string(32, 'd');
  m.entries.push_back(file);
  return m;
}

TEST(ManifestRelocationTest, RoundTripsAsVersion2AndPlainSnapshotsStayVersion1) {
  Manifest m = small_manifest();
  auto plain = encode_manifest(m);
  m.relocation_root = std::string(k_root);
  m.relocations.push_back({1, RelocationKind::text, {2, 40, 60}});
  auto encoded = encode_manifest(m);
  auto decoded = decode_manifest(encoded);
  ASSERT_TRUE(ok(decoded));
  EXPECT_EQ(decoded->relocation_root, k_root);
  EXPECT_EQ(decoded->relocations, m.relocations);
  auto old = decode_manifest(plain);
  ASSERT_TRUE(ok(old));
  EXPECT_TRUE(old->relocation_root.empty());
  EXPECT_NE(plain, encoded);
}

TEST(ManifestRelocationTest, RejectsRecordsOutsideTheFileOrForOtherEntries) {
  Manifest m = small_manifest();
  m.relocation_root = std::string(k_root);
  m.relocations.push_back({1, RelocationKind::text, {90}});  // 90 + 12 > 100
  EXPECT_TRUE(fails_with(decode_manifest(encode_manifest(m)), ErrorCode::corrupt));
  m.relocations = {{0, RelocationKind::text, {0}}};  // the root directory
  EXPECT_TRUE(fails_with(decode_manifest(encode_manifest(m)), ErrorCode::corrupt));
}

class RelocateRestoreTest : public test::StoreTest {};

TEST_F(RelocateRestoreTest, RewritesTextAndBinaryAndNeverLinksThem) {
  const std::string old_root = src().string();
  test::write_file(src("script"), "#!" + old_root + "/bin/python\n", 0555);
  test::write_file(src("blob"), std::string("\0", 1) + old_root + std::string("/lib\0rest", 9), 0444);
  test::write_file(src("plain"), "no path here\n", 0444);
  test::write_file(src("mod.pyc"), std::string("\0", 1) + old_root + "/mod.py", 0644);  // exempt: left as is
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "env", .relocatable = true})));

  const fs::path same_length = dir() / "SRC";  // as long as dir()/src
  RestoreOptions options;
  options.relocate = true;
  auto restored = store().restore("env", same_length, options);
  ASSERT_TRUE(ok(restored));
  EXPECT_EQ(restored->relocated.files, 2u);
  EXPECT_EQ(test::read_file(same_length / "script"), "#!" + same_length.string() + "/bin/python\n");
  EXPECT_EQ(test::read_file(same_length / "blob"), std::string("\0", 1) + same_length.string() + std::string("/lib\0rest", 9));
  EXPECT_EQ(test::lstat_path(same_length / "script").st_nlink, 1u);  // a private copy, never a link
  EXPECT_EQ(test::lstat_path(same_length / "blob").st_mode & 07777, 0444u);
  EXPECT_EQ(test::read_file(same_length / "mod.pyc"), test::read_file(src("mod.pyc")));

  // Longer: refused before anything is written, naming the binary file.
  const fs::path longer = dir() / "a-much-longer-name";
  auto refused = store().restore("env", longer, options);
  ASSERT_TRUE(fails_with(refused, ErrorCode::invalid));
  EXPECT_NE(refused.error().context.find("blob"), std::string::npos) << refused.error().message();
  EXPECT_FALSE(test::exists_nofollow(longer));
}

TEST_F(RelocateRestoreTest, RefusesASnapshotThatIsNotRelocatable) {
  test::write_file(src("f"), "x");
  ASSERT_TRUE(ok(store().snapshot(src(), {.name = "plain"})));
  RestoreOptions options;
  options.relocate = true;
  EXPECT_TRUE(fails_with(store().restore("plain", dir() / "out", options), ErrorCode::invalid));
  EXPECT_FALSE(test::exists_nofollow(dir() / "out"));
}

}  // namespace
}  // namespace treesnap
