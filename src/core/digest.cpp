#include "core/digest.hpp"

#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "util/error.hpp"

namespace treesnap {

std::size_t digest_size(DigestAlgorithm algorithm) noexcept {
  return algorithm == DigestAlgorithm::sha256 ? 32 : 16;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = k_digits[b >> 4];
    out[2 * i + 1] = k_digits[b & 0xf];
  }
  return out;
}

Result<std::string> from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return std::unexpected(make_error(ErrorCode::invalid, "odd-length hex"));
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return std::unexpected(make_error(ErrorCode::invalid, "not lower-case hex: " + std::string(hex)));
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string digest_text(DigestAlgorithm algorithm, std::string_view digest) {
  return std::string(to_string(algorithm)) + ":" + to_hex(digest);
}

Result<DigestAlgorithm> parse_algorithm(std::string_view name) {
  if (name == "sha256") return DigestAlgorithm::sha256;
  if (name == "xxh3-128") return DigestAlgorithm::xxh3_128;
  return std::unexpected(make_error(ErrorCode::invalid, "unknown digest algorithm: " + std::string(name)));
}

struct Hasher::State {
  DigestAlgorithm algorithm;
  EVP_MD_CTX* sha = nullptr;  // EVP picks the SHA-NI implementation when the CPU has it
  XXH3_state_t* xxh = nullptr;

  explicit State(DigestAlgorithm a) : algorithm(a) {
    if (a == DigestAlgorithm::sha256) {
      sha = EVP_MD_CTX_new();
      EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
    } else {
      xxh = XXH3_createState();
      XXH3_128bits_reset(xxh);
    }
  }
  ~State() {
    if (sha) EVP_MD_CTX_free(sha);
    if (xxh) XXH3_freeState(xxh);
  }
};

Hasher::Hasher(DigestAlgorithm algorithm) : m_state(std::make_unique<State>(algorithm)) {}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

void Hasher::update(std::string_view data) {
  if (m_state->sha)
    EVP_DigestUpdate(m_state->sha, data.data(), data.size());
  else
    XXH3_128bits_update(m_state->xxh, data.data(), data.size());
}

void Hasher::update_zeros(std::uint64_t count) {
  static const std::array<char, 1 << 16> k_zeros{};
  while (count > 0) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count, k_zeros.size()));
    update(std::string_view(k_zeros.data(), n));
    count -= n;
  }
}

std::string Hasher::finish() {
  if (m_state->sha) {
    std::string out(32, '\0');
    unsigned int len = 0;
    EVP_DigestFinal_ex(m_state->sha, reinterpret_cast<unsigned char*>(out.data()), &len);
    return out;
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(m_state->xxh));
  return std::string(reinterpret_cast<const char*>(canonical.digest), sizeof(canonical.digest));
}

std::string hash_bytes(DigestAlgorithm algorithm, std::string_view data) {
  Hasher hasher(algorithm);
  hasher.update(data);
  return hasher.finish();
}

}  // namespace treesnap
