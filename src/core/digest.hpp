// Content digests. A digest is its raw bytes (std::string); its text form is "<algo>:<hex>",
// the same as an OCI blob digest for sha256. Digests are over the logical bytes of a file
// (holes hash as zeros), so they never depend on the file system's layout.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "treesnap/options.hpp"
#include "treesnap/result.hpp"

namespace treesnap {

std::size_t digest_size(DigestAlgorithm algorithm) noexcept;  // 32 or 16 bytes
std::string to_hex(std::string_view bytes);
Result<std::string> from_hex(std::string_view hex);
std::string digest_text(DigestAlgorithm algorithm, std::string_view digest);
Result<DigestAlgorithm> parse_algorithm(std::string_view name);

// Incremental hashing. Not thread-safe; one per stream.
class Hasher {
 public:
  explicit Hasher(DigestAlgorithm algorithm);
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();

  void update(std::string_view data);
  void update_zeros(std::uint64_t count);  // a hole of `count` bytes
  std::string finish();                    // raw digest; the hasher is then spent

 private:
  struct State;
  std::unique_ptr<State> m_state;
};

std::string hash_bytes(DigestAlgorithm algorithm, std::string_view data);

}  // namespace treesnap
