// Blob transfers: the verified, resumable download and the chunked, resumable upload.
#include <algorithm>

#include <fmt/format.h>

#include "core/digest.hpp"
#include "remote/registry.hpp"
#include "remote/registry_internal.hpp"
#include "util/error.hpp"

namespace treesnap::remote {
namespace {

constexpr std::string_view k_octet_stream = "Content-Type: application/octet-stream";

Result<void> corrupt(std::string text) { return std::unexpected(make_error(ErrorCode::corrupt, std::move(text))); }

// "bytes 100-199/5000" -> 100
std::optional<std::uint64_t> content_range_start(std::string_view value) {
  std::size_t sp = value.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  return std::strtoull(std::string(value.substr(sp + 1)).c_str(), nullptr, 10);
}

// An upload's "Range: 0-N" -> N + 1 bytes received. distribution writes "0-0" for an empty
// upload, so a 1-byte upload cannot be told from an empty one: we resume it from 0.
std::uint64_t upload_received(const HttpResponse& response) {
  auto range = response.header("range");
  if (!range) return 0;
  std::size_t dash = range->find('-');
  if (dash == std::string::npos) return 0;
  std::uint64_t last = std::strtoull(range->c_str() + dash + 1, nullptr, 10);
  return last == 0 ? 0 : last + 1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Download

// Each try asks for the bytes not yet delivered (Range: bytes=<delivered>-), from the mirrors
// first and then the registry, so a stall or reset near the end of a large blob costs only the
// rest. A server that ignores the Range (200) has its first bytes dropped, never re-delivered.
Result<std::uint64_t> RegistryClient::get_blob(std::string_view digest, const BodySink& sink,
                                               const BlobGetOptions& options) {
  TRY_VOID(validate_digest(digest));
  const auto& opts = m_shared->options;
  const std::optional<ByteRange>& range = options.range;
  if (range && range->length == 0) return std::unexpected(make_error(ErrorCode::invalid, "empty byte range"));
  std::optional<std::uint64_t> want = range ? std::optional(range->length) : options.expected_size;
  std::uint64_t first = range ? range->offset : 0;

  Hasher hasher(DigestAlgorithm::sha256);
  std::uint64_t delivered = 0, skip = 0;
  std::string path = fmt::format("/v2/{}/blobs/{}", m_ref.repository, digest);

  HttpRequest request;
  request.follow_redirects = true;
  request.proxy = opts.blob_proxy;
  request.on_headers = [&](const HttpResponse& response) -> Result<void> {
    skip = 0;
    bool asked_range = range || delivered > 0;
    if (response.status == 206) {
      auto start = content_range_start(response.header("content-range").value_or(""));
      if (!start || *start != first + delivered)
        return corrupt(fmt::format("GET {}: asked for bytes from {}, got Content-Range '{}'", display_url(request.url),
                                   first + delivered, response.header("content-range").value_or("")));
    } else if (asked_range && range) {
      return std::unexpected(make_error(ErrorCode::unsupported, fmt::format("GET {}: Range not honoured (HTTP {})",
                                                                             display_url(request.url), response.status)));
    } else if (asked_range) {
      skip = delivered;  // a full body again: drop what the sink already has
    }
    return {};
  };
  request.sink = [&](std::string_view chunk) -> Result<void> {
    std::size_t drop = static_cast<std::size_t>(std::min<std::uint64_t>(skip, chunk.size()));
    chunk.remove_prefix(drop);
    skip -= drop;
    if (chunk.empty()) return {};
    if (want && delivered + chunk.size() > *want)
      return corrupt(fmt::format("GET {}: more than the expected {} bytes", display_url(request.url), *want));
    if (!range) hasher.update(chunk);
    TRY_VOID(sink(chunk));
    delivered += chunk.size();
    return {};
  };
  auto prepare = [&](HttpRequest& r) {
    r.headers = opts.blob_headers;
    if (range || delivered > 0) {
      std::string last = range ? fmt::format("{}", range->offset + range->length - 1) : "";
      r.headers.push_back(fmt::format("Range: bytes={}-{}", first + delivered, last));
    }
    std::uint64_t limit = want ? *want : opts.max_blob_size;
    r.max_content_length = limit - std::min(limit, delivered);
  };

  auto fetch_from = [&](std::string_view base, const Attempt& attempt) -> Result<void> {
    request.url = std::string(base) + path;
    TRY(auto response, send(request, attempt));
    if (response.status != 200 && response.status != 206) return std::unexpected(exchange_error(request, response));
    return {};
  };
  Result<void> fetched;
  for (const auto& mirror : opts.mirrors) {
    fetched = fetch_from(mirror, Attempt{1, false, prepare});
    // Bad bytes already reached the sink: no other source can take them back.
    if (fetched || fetched.error().code == ErrorCode::corrupt) break;
  }
  if (opts.mirrors.empty() || (!fetched && fetched.error().code != ErrorCode::corrupt))
    fetched = fetch_from(m_shared->base_url, Attempt{0, true, prepare});
  if (!fetched) return std::unexpected(std::move(fetched).error());

  std::string where = fmt::format("GET {}{}", m_shared->base_url, path);
  if (want && delivered != *want)
    return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("{}: truncated: got {} of {} bytes", where,
                                                                      delivered, *want)));
  if (!range) {
    std::string got = "sha256:" + to_hex(hasher.finish());
    if (got != digest)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("{}: {} bytes received hash to {}", where,
                                                                        delivered, got)));
  }
  return delivered;
}

// ---------------------------------------------------------------------------------------------
// Upload

// POST .../blobs/uploads/<query>; returns the upload URL (201 for a mount: empty).
Result<std::string> RegistryClient::start_upload(std::string_view query, long* status) {
  HttpRequest request;
  request.method = "POST";
  request.url = url("blobs/uploads/") + std::string(query);
  TRY(auto response, send(request, {}));
  *status = response.status;
  if (response.status == 201) return std::string();
  auto location = response.header("location");
  if (response.status != 202 || !location) return std::unexpected(exchange_error(request, response));
  return resolve_location(m_shared->base_url, *location);
}

// PATCHes chunks of `chunk_size` bytes. Every answer's Location replaces `location` (it carries
// the registry's `_state`). A failed PATCH is not repeated blindly, since the registry may have
// kept part of it: we ask (GET <location>) how much it holds and go on from there.
Result<void> RegistryClient::upload_chunks(std::string& location, std::uint64_t size, const ReadAt& source) {
  const auto& opts = m_shared->options;
  std::uint64_t offset = 0;
  int failures = 0;
  while (offset < size) {
    std::uint64_t n = std::min(opts.chunk_size, size - offset);
    HttpRequest request;
    request.method = "PATCH";
    request.url = location;
    request.headers = {std::string(k_octet_stream), fmt::format("Content-Range: {}-{}", offset, offset + n - 1)};
    request.body_reader = source;
    request.body_offset = offset;
    request.body_length = n;
    HttpResponse response = exchange(request, true);
    if (response.failure == TransportFailure::sink || response.failure == TransportFailure::refused)
      return std::unexpected(exchange_error(request, response));
    if (response.status == 202 && response.failure == TransportFailure::none) {
      if (auto next = response.header("location")) location = resolve_location(m_shared->base_url, *next);
      std::uint64_t received = upload_received(response);
      offset = received > offset ? received : offset + n;
      continue;
    }
    if (response.failure == TransportFailure::none && !transient(response))
      return std::unexpected(exchange_error(request, response));
    if (++failures >= opts.retry.max_attempts)
      return std::unexpected(make_error(ErrorCode::io, fmt::format("PATCH {}: gave up after {} failed chunks: {}",
                                                                   display_url(location), failures,
                                                                   response.failure_text.empty()
                                                                       ? fmt::format("HTTP {}", response.status)
                                                                       : response.failure_text)));
    back_off(failures, response);
    HttpRequest status;
    status.url = location;
    TRY(auto state, send(status, {}));
    if (state.status != 204 && state.status != 200) return std::unexpected(exchange_error(status, state));
    if (auto next = state.header("location")) location = resolve_location(m_shared->base_url, *next);
    offset = upload_received(state);
  }
  return {};
}

// HEAD of the blob before sending it: true (and counted as skipped) when the registry holds it
// with `size` bytes; another size is invalid.
Result<bool> RegistryClient::already_here(std::string_view digest, std::uint64_t size) {
  TRY(auto existing, blob_exists(digest));
  if (!existing) return false;
  if (*existing != size)
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("blob {} is on the registry with {} bytes, not {}",
                                                                      digest, *existing, size)));
  m_shared->skipped.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Result<MountResult> RegistryClient::mount_blob(std::string_view digest, std::uint64_t size, std::string_view from) {
  TRY_VOID(validate_digest(digest));
  TRY_VOID(validate_repository(from));
  TRY(auto here, already_here(digest, size));
  if (here) return MountResult::present;
  long status = 0;
  TRY(auto location, start_upload(add_query(add_query("", "mount", digest), "from", from), &status));
  if (status == 201) {
    m_shared->mounted.fetch_add(1, std::memory_order_relaxed);
    return MountResult::mounted;
  }
  // The session the registry opened instead is of no use to a caller without the bytes. Cancelling
  // it only saves the registry some state until it expires them, so a failed DELETE is ignored.
  HttpRequest cancel;
  cancel.method = "DELETE";
  cancel.url = location;
  (void)exchange(cancel, true);
  return MountResult::refused;
}

Result<PutBlobResult> RegistryClient::put_blob(std::string_view digest, std::uint64_t size, const ReadAt& source,
                                               std::string_view mount_from) {
  TRY_VOID(validate_digest(digest));
  TRY(auto here, already_here(digest, size));
  if (here) return PutBlobResult::skipped;
  // A failed single PUT, or chunks whose session the registry lost, start a new session: the
  // registry keeps nothing of it that we could resume.
  const auto& opts = m_shared->options;
  for (int attempt = 1;; ++attempt) {
    long status = 0;
    std::string location;
    if (!mount_from.empty()) {
      TRY_VOID(validate_repository(mount_from));
      std::string query = add_query(add_query("", "mount", digest), "from", mount_from);
      // Not mounted (202: `mount_from` lacks the blob, or we may not read it there): the
      // registry opened an upload session instead, which the upload below uses.
      TRY(location, start_upload(query, &status));
      if (status == 201) {
        m_shared->mounted.fetch_add(1, std::memory_order_relaxed);
        return PutBlobResult::mounted;
      }
    } else {
      TRY(location, start_upload("", &status));
    }
    HttpRequest finish;
    finish.method = "PUT";
    if (size <= opts.chunk_size) {
      // The whole body in one PUT: distribution 2.8 ignores a body on the POST, so this is the
      // shortest upload it accepts.
      finish.headers = {std::string(k_octet_stream)};
      finish.body_reader = source;
      finish.body_length = size;
    } else if (auto chunks = upload_chunks(location, size, source); !chunks) {
      // The registry no longer knows the session (404) or refuses its state (distribution:
      // BLOB_UPLOAD_INVALID after a partly written PATCH): start over. Other errors stand.
      ErrorCode code = chunks.error().code;
      if ((code != ErrorCode::not_found && code != ErrorCode::invalid) || attempt >= opts.retry.max_attempts)
        return std::unexpected(std::move(chunks).error());
      m_shared->retries.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    finish.url = add_query(location, "digest", digest);
    HttpResponse response = exchange(finish, true);
    if (response.status == 201 && response.failure == TransportFailure::none) {
      if (auto echoed = response.header("docker-content-digest"); echoed && *echoed != digest)
        return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("PUT {}: registry stored {} as {}",
                                                                          display_url(finish.url), digest, *echoed)));
      m_shared->uploaded.fetch_add(1, std::memory_order_relaxed);
      return PutBlobResult::uploaded;
    }
    if (!transient(response) || attempt >= opts.retry.max_attempts) {
      Error error = exchange_error(finish, response);
      if (attempt > 1) error.context += fmt::format(" (after {} attempts)", attempt);
      return std::unexpected(std::move(error));
    }
    back_off(attempt, response);
  }
}

}  // namespace treesnap::remote
