// core/digest: known vectors, zero runs, hex and the digest text form.
#include <gtest/gtest.h>

#include <string>

#include "core/digest.hpp"
#include "test_util.hpp"

namespace treesnap {
namespace {

using test::fails_with;
using test::ok;

// Expected values come from outside treesnap: `printf abc | sha256sum` and
// `printf abc | xxhsum -H2` (xxHash 0.8.1), so a wrong algorithm or byte order cannot agree with
// itself.
constexpr const char* k_sha256_empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* k_sha256_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* k_sha256_100k_zeros = "9192c25b734fcbadbe32dadc28089c60db0e39f90cc20ce2e5733f57261acc0c";
constexpr const char* k_xxh3_empty = "99aa06d3014798d86001c324468d497f";
constexpr const char* k_xxh3_abc = "06b05ab6733a618578af5f94892f3950";
constexpr const char* k_xxh3_100k_zeros = "e1f876364c6fec62315c72a64b7df4d2";

std::string hex_of(DigestAlgorithm algorithm, std::string_view data) {
  return to_hex(hash_bytes(algorithm, data));
}

TEST(DigestTest, Sha256KnownVectors) {
  EXPECT_EQ(hex_of(DigestAlgorithm::sha256, ""), k_sha256_empty);
  EXPECT_EQ(hex_of(DigestAlgorithm::sha256, "abc"), k_sha256_abc);
  EXPECT_EQ(hash_bytes(DigestAlgorithm::sha256, "abc").size(), 32u);
  EXPECT_EQ(digest_size(DigestAlgorithm::sha256), 32u);
}

TEST(DigestTest, Xxh3KnownVectorsInCanonicalByteOrder) {
  EXPECT_EQ(hex_of(DigestAlgorithm::xxh3_128, ""), k_xxh3_empty);
  EXPECT_EQ(hex_of(DigestAlgorithm::xxh3_128, "abc"), k_xxh3_abc);
  EXPECT_EQ(hash_bytes(DigestAlgorithm::xxh3_128, "abc").size(), 16u);
  EXPECT_EQ(digest_size(DigestAlgorithm::xxh3_128), 16u);
}

TEST(DigestTest, IncrementalUpdatesEqualOneShot) {
  for (auto algorithm : {DigestAlgorithm::sha256, DigestAlgorithm::xxh3_128}) {
    Hasher hasher(algorithm);
    hasher.update("a");
    hasher.update("");
    hasher.update("bc");
    EXPECT_EQ(to_hex(hasher.finish()), algorithm == DigestAlgorithm::sha256 ? k_sha256_abc : k_xxh3_abc)
        << to_string(algorithm);
  }
}

// 100,000 zeros crosses the 64 KiB block update_zeros feeds at a time.
TEST(DigestTest, UpdateZerosKnownVector) {
  Hasher sha(DigestAlgorithm::sha256);
  sha.update_zeros(100'000);
  EXPECT_EQ(to_hex(sha.finish()), k_sha256_100k_zeros);
  Hasher xxh(DigestAlgorithm::xxh3_128);
  xxh.update_zeros(100'000);
  EXPECT_EQ(to_hex(xxh.finish()), k_xxh3_100k_zeros);
}

TEST(DigestTest, UpdateZerosEqualsUpdateWithZeroBytes) {
  for (auto algorithm : {DigestAlgorithm::sha256, DigestAlgorithm::xxh3_128}) {
    for (std::uint64_t n : {0ull, 1ull, 4095ull, 65535ull, 65536ull, 65537ull, 300'001ull}) {
      Hasher holes(algorithm);
      holes.update("head");
      holes.update_zeros(n);
      holes.update("tail");
      std::string data = "head" + std::string(n, '\0') + "tail";
      EXPECT_EQ(to_hex(holes.finish()), to_hex(hash_bytes(algorithm, data)))
          << to_string(algorithm) << " zeros=" << n;
    }
  }
}

TEST(DigestTest, MovedHasherKeepsItsState) {
  Hasher first(DigestAlgorithm::sha256);
  first.update("ab");
  Hasher second(std::move(first));
  second.update("c");
  EXPECT_EQ(to_hex(second.finish()), k_sha256_abc);
}

TEST(DigestTest, ToHexIsLowerCaseTwoDigitsPerByte) {
  EXPECT_EQ(to_hex(std::string("\x00\x0f\xf0\xff\x9a", 5)), "000ff0ff9a");
  EXPECT_EQ(to_hex(""), "");
}

TEST(DigestTest, HexRoundTripsEveryByteValue) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string hex = to_hex(all);
  ASSERT_EQ(hex.size(), 512u);
  auto back = from_hex(hex);
  ASSERT_TRUE(ok(back));
  EXPECT_EQ(*back, all);
  auto empty = from_hex("");
  ASSERT_TRUE(ok(empty));
  EXPECT_EQ(*empty, "");
}

TEST(DigestTest, FromHexRejectsMalformedInput) {
  // Upper case is refused too: object file names are lower case, so "AB" would name no object.
  for (const char* bad : {"a", "abc", "0g", "g0", "AB", "aB", " 0", "0 ", "0x", "+1", "ab\n"}) {
    auto result = from_hex(bad);
    EXPECT_TRUE(fails_with(result, ErrorCode::invalid)) << '"' << bad << '"';
  }
  auto embedded_nul = from_hex(std::string_view("a\0", 2));
  EXPECT_TRUE(fails_with(embedded_nul, ErrorCode::invalid));
}

TEST(DigestTest, DigestTextNamesTheAlgorithm) {
  EXPECT_EQ(digest_text(DigestAlgorithm::sha256, hash_bytes(DigestAlgorithm::sha256, "abc")),
            std::string("sha256:") + k_sha256_abc);
  EXPECT_EQ(digest_text(DigestAlgorithm::xxh3_128, hash_bytes(DigestAlgorithm::xxh3_128, "")),
            std::string("xxh3-128:") + k_xxh3_empty);
}

TEST(DigestTest, ParseAlgorithmAcceptsOnlyTheTwoNames) {
  auto sha = parse_algorithm("sha256");
  ASSERT_TRUE(ok(sha));
  EXPECT_EQ(*sha, DigestAlgorithm::sha256);
  auto xxh = parse_algorithm("xxh3-128");
  ASSERT_TRUE(ok(xxh));
  EXPECT_EQ(*xxh, DigestAlgorithm::xxh3_128);
  for (const char* bad : {"", "SHA256", "sha-256", "xxh3", "xxh128", "sha256 "}) {
    auto result = parse_algorithm(bad);
    EXPECT_TRUE(fails_with(result, ErrorCode::invalid)) << '"' << bad << '"';
  }
  // The names parse_algorithm accepts are the ones to_string writes into the store's metadata.
  EXPECT_STREQ(to_string(DigestAlgorithm::sha256), "sha256");
  EXPECT_STREQ(to_string(DigestAlgorithm::xxh3_128), "xxh3-128");
}

}  // namespace
}  // namespace treesnap
