#include "transfer/common.hpp"

#include <unordered_set>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "remote/reference.hpp"
#include "util/error.hpp"

namespace treesnap::transfer {

std::vector<ObjectRef> distinct_objects(const Manifest& manifest) {
  std::vector<ObjectRef> out;
  std::unordered_set<std::string> seen;
  for (const auto& e : manifest.entries) {
    if (e.type != EntryType::file || e.size == 0) continue;
    if (!seen.insert(e.digest.str()).second) continue;
    out.push_back({e.digest.str(), manifest.algorithm == DigestAlgorithm::sha256 ? e.digest.str() : std::string(),
                   e.size, e.mode, e.mtime_ns});
  }
  return out;
}

Result<Manifest> translate_manifest(Manifest manifest, DigestAlgorithm algorithm,
                                    const std::unordered_map<std::string, std::string>& digests) {
  if (manifest.algorithm == algorithm) return manifest;
  for (auto& e : manifest.entries) {
    if (e.type != EntryType::file || e.size == 0) continue;
    auto it = digests.find(e.digest.str());
    if (it == digests.end())
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("no {} digest for the content of {:?}",
                                                                        to_string(algorithm), e.path)));
    e.digest = it->second;
  }
  manifest.algorithm = algorithm;
  return manifest;
}

void fill_transport(TransferSummary& s, const remote::TransferStats& stats, std::chrono::steady_clock::time_point start) {
  s.requests = stats.requests;
  s.retries = stats.retries;
  s.http_bytes_sent = stats.bytes_sent;
  s.http_bytes_received = stats.bytes_received;
  s.blobs_uploaded = stats.blobs_uploaded;
  s.blobs_skipped = stats.blobs_skipped;
  s.blobs_mounted = stats.blobs_mounted;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string oci_text(std::string_view raw) { return "sha256:" + to_hex(raw); }

Result<std::string> raw_from_oci(std::string_view text) {
  TRY_VOID(remote::validate_digest(text));
  return from_hex(text.substr(7));
}

}  // namespace treesnap::transfer
