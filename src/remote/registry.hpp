// An OCI distribution client for one repository on one registry: the transport that push and
// pull build on. It speaks the distribution API v2 (blobs, uploads, manifests, tags) with
// retries, auth (anonymous, Basic, Bearer tokens), an optional proxy for blob downloads and
// registry mirrors, and checks every byte it hands out against its digest. docs/remote.md states
// the behaviour callers rely on.
//
// Threads: a RegistryClient is not thread-safe, but clone() is cheap (no I/O) and gives a client
// with its own connection that shares credentials, the current token and the counters with the
// original. Push and pull run N transfers at once with one clone per worker thread.
//
// Errors name the method, the URL (never credentials) and the HTTP status or the transport
// failure. Codes: not_found (404: no such blob, manifest or repository), permission (401/403
// after auth was tried), corrupt (bytes that do not match their digest or size, a truncated
// body, a declared size above the limit), invalid (bad arguments, other 4xx), unsupported (the
// registry lacks a feature asked for), io (5xx, timeouts, connection failures, after the retry
// budget).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "remote/auth.hpp"
#include "remote/http.hpp"
#include "remote/reference.hpp"
#include "treesnap/result.hpp"

namespace treesnap::remote {

// Transient failures (5xx but 501, 429, connection failures and resets, timeouts and stalls,
// truncated bodies) are retried; no other 4xx ever is. The wait before retry n (n = 1, 2, ...)
// is drawn uniformly from [d/2, d] with d = min(max_backoff, initial_backoff * 2^(n-1)), and is
// at least a 429/503's Retry-After (capped at max_backoff).
struct RetryPolicy {
  int max_attempts = 4;  // the first try included
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{8000};
};

struct RegistryOptions {
  // Plain HTTP instead of HTTPS. Default: plain for localhost, 127.0.0.1 and ::1 only.
  std::optional<bool> plain_http;
  RetryPolicy retry;
  HttpSettings http;
  // Proxy for blob downloads (Dragonfly's dfdaemon, e.g. "http://127.0.0.1:4001"); empty: none
  // (curl's default, the *_proxy environment variables). Other requests never use it.
  std::string blob_proxy;
  // Extra header lines sent with every blob download, e.g. "X-Dragonfly-Use-P2P: true".
  std::vector<std::string> blob_headers;
  // Base URLs ("http://mirror.local:5000") tried in order, anonymously and once each, before the
  // registry for blob and manifest GETs. A failing mirror is skipped, never fatal.
  std::vector<std::string> mirrors;
  // Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size.
  std::uint64_t chunk_size = 16 << 20;
  std::uint64_t max_manifest_size = 4 << 20;
  // Largest blob body accepted when the caller gives no expected size.
  std::uint64_t max_blob_size = std::uint64_t{1} << 40;
  // Overrides find_credentials(); set to use explicit credentials.
  std::optional<Credentials> credentials;
};

// Totals over a client and all its clones, for a summary line.
struct TransferStats {
  std::uint64_t requests = 0;
  std::uint64_t bytes_sent = 0;      // request bodies (blob chunks, manifests)
  std::uint64_t bytes_received = 0;  // response bodies
  std::uint64_t blobs_uploaded = 0;
  std::uint64_t blobs_skipped = 0;  // already on the registry (HEAD)
  std::uint64_t blobs_mounted = 0;  // cross-repository mount
  std::uint64_t retries = 0;        // attempts beyond the first, of any request
  std::uint64_t token_fetches = 0;
};

struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // > 0
};

struct BlobGetOptions {
  // Full GET: the size the descriptor promises. A different size is corrupt, and a declared
  // Content-Length above it is refused before the body is read.
  std::optional<std::uint64_t> expected_size;
  // Only these bytes (Range: bytes=a-b, answered 206). Their digest cannot be checked here: the
  // caller checks the object it cut out.
  std::optional<ByteRange> range;
};

enum class PutBlobResult { uploaded, skipped, mounted };
const char* to_string(PutBlobResult result) noexcept;

enum class MountResult { mounted, present, refused };

struct FetchedManifest {
  std::string media_type;  // the Content-Type the registry answered with
  std::string bytes;       // exactly as stored
  std::string digest;      // "sha256:<hex>" of `bytes`
};

class RegistryClient {
 public:
  // A client for ref's registry and repository; ref's tag or digest is not used. Looks up
  // credentials (find_credentials) unless options carry some; performs no request.
  static Result<RegistryClient> open(const Reference& ref, RegistryOptions options = {});

  RegistryClient(RegistryClient&&) noexcept;
  RegistryClient& operator=(RegistryClient&&) noexcept;
  ~RegistryClient();

  // Same registry, repository, options, credentials, token and counters; a connection of its own.
  RegistryClient clone() const;
  // The same registry with another repository (for a mount source's checks, or several repos).
  Result<RegistryClient> for_repository(std::string_view repository) const;

  const Reference& reference() const;
  std::string base_url() const;  // "http://127.0.0.1:5000"

  // GET /v2/: reachable, speaks distribution v2, and our credentials (if any) are accepted.
  Result<void> ping();

  // HEAD of a blob: its size when present, nullopt when not (404).
  Result<std::optional<std::uint64_t>> blob_exists(std::string_view digest);

  // Streams a blob (or options.range of it) to `sink`; returns the bytes delivered. A full GET
  // is verified: the sha256 of everything delivered must be `digest` and its size
  // expected_size (when given), else ErrorCode::corrupt. An interrupted download resumes with a
  // Range request from the last delivered byte, so the sink never sees a byte twice. On any
  // error the bytes delivered so far must be discarded by the caller.
  Result<std::uint64_t> get_blob(std::string_view digest, const BodySink& sink, const BlobGetOptions& options = {});

  // Uploads `size` bytes read through `source` (offsets 0..size) as blob `digest`, unless a HEAD
  // finds it (skipped), or it can be mounted from repository `mount_from` of this registry
  // (mounted). A mount the registry refuses (it answers 202 with an upload session: `mount_from`
  // lacks the blob, or the client may not read it there) is uploaded through that session. Small
  // blobs go in one PUT, larger ones in chunks; a failed chunk resumes from the offset the
  // registry reports. The registry checks the digest (a mismatch is invalid here).
  Result<PutBlobResult> put_blob(std::string_view digest, std::uint64_t size, const ReadAt& source,
                                 std::string_view mount_from = {});

  // Mounts blob `digest` of repository `from` of this registry, for a caller that does not have
  // its bytes: present when a HEAD finds it here with `size` bytes already, mounted when the
  // registry links it (201), refused when it answers with an upload session instead (202), which
  // is cancelled. Counted in stats() as skipped, mounted, or not at all.
  Result<MountResult> mount_blob(std::string_view digest, std::uint64_t size, std::string_view from);

  // PUT of a manifest under a tag or its digest; returns its digest ("sha256:<hex>").
  Result<std::string> put_manifest(std::string_view reference, std::string_view media_type, std::string_view bytes);

  // GET of a manifest by tag or digest, offering the `accept` media types. Fetched by digest,
  // the bytes must hash to it (else corrupt); larger than max_manifest_size is corrupt.
  Result<FetchedManifest> get_manifest(std::string_view reference, std::span<const std::string> accept);

  // Every tag of the repository (following pagination); not_found when the repository is unknown.
  Result<std::vector<std::string>> list_tags();

  TransferStats stats() const;

 private:
  struct Shared;
  struct Attempt;
  RegistryClient(std::shared_ptr<Shared> shared, std::string repository);

  std::string url(std::string_view path) const;
  HttpResponse exchange(HttpRequest request, bool authenticate);
  Result<HttpResponse> send(HttpRequest request, const Attempt& attempt);
  // Counts retry number `retry` (1, 2, ...) after `response` and sleeps as RetryPolicy says.
  void back_off(int retry, const HttpResponse& response);
  Result<std::optional<std::string>> authorize(const Challenge& challenge, const std::string& sent);
  Result<std::string> fetch_token(const Challenge& challenge);
  Result<std::string> start_upload(std::string_view query, long* status);
  Result<bool> already_here(std::string_view digest, std::uint64_t size);
  Result<void> upload_chunks(std::string& location, std::uint64_t size, const ReadAt& source);

  std::shared_ptr<Shared> m_shared;
  Reference m_ref;
  std::unique_ptr<HttpSession> m_session;
};

// Sources for put_blob: `fd` from `base_offset` on (pread, so one fd serves many threads), or
// bytes in memory that must outlive the upload.
ReadAt read_fd(int fd, std::uint64_t base_offset = 0);
ReadAt read_memory(std::string_view bytes);

// "sha256:<hex>" of `bytes`: the OCI digest of a blob or manifest.
std::string oci_digest(std::string_view bytes);

}  // namespace treesnap::remote
