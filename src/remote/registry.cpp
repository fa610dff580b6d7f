#include "remote/registry.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/digest.hpp"
#include "remote/registry_internal.hpp"
#include "util/error.hpp"
#include "util/posix.hpp"

namespace treesnap::remote {
namespace {

// "code: message" of the first entry of a distribution error body, or empty.
std::string registry_error_text(std::string_view body) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return {};
  auto errors = json.find("errors");
  if (errors == json.end() || !errors->is_array() || errors->empty() || !(*errors)[0].is_object()) return {};
  const auto& first = (*errors)[0];
  return fmt::format("{} {}", first.value("code", ""), first.value("message", ""));
}

std::string hex_digest(std::string_view bytes) { return "sha256:" + to_hex(hash_bytes(DigestAlgorithm::sha256, bytes)); }

Error with_context(Error error, std::string_view prefix) {
  error.context = fmt::format("{}: {}", prefix, error.context);
  return error;
}

}  // namespace

bool transient(const HttpResponse& response) {
  switch (response.failure) {
    case TransportFailure::timeout:
    case TransportFailure::connection:
    case TransportFailure::truncated: return true;
    case TransportFailure::none: break;
    default: return false;
  }
  return response.status == 429 || (response.status >= 500 && response.status != 501 && response.status < 600);
}

Error exchange_error(const HttpRequest& request, const HttpResponse& response) {
  std::string where = fmt::format("{} {}", request.method, display_url(request.url));
  switch (response.failure) {
    case TransportFailure::none: break;
    case TransportFailure::sink:
      return response.sink_error ? *response.sink_error : make_error(ErrorCode::io, where + ": aborted");
    case TransportFailure::refused:
      return make_error(ErrorCode::corrupt, fmt::format("{}: {}", where, response.failure_text));
    case TransportFailure::truncated:
      return make_error(ErrorCode::corrupt, fmt::format("{}: truncated body ({})", where, response.failure_text));
    case TransportFailure::timeout:
      return make_error(ErrorCode::io, fmt::format("{}: timed out or stalled ({})", where, response.failure_text));
    default: return make_error(ErrorCode::io, fmt::format("{}: {}", where, response.failure_text));
  }
  ErrorCode code = ErrorCode::invalid;
  if (response.status == 401 || response.status == 403) code = ErrorCode::permission;
  else if (response.status == 404) code = ErrorCode::not_found;
  else if (response.status >= 500 || response.status < 200) code = ErrorCode::io;
  std::string detail = registry_error_text(response.body);
  return make_error(code, fmt::format("{}: HTTP {}{}{}", where, response.status, detail.empty() ? "" : " ", detail));
}

std::string resolve_location(std::string_view base_url, std::string_view location) {
  if (location.starts_with("http://") || location.starts_with("https://")) return std::string(location);
  return fmt::format("{}{}{}", base_url, location.starts_with('/') ? "" : "/", location);
}

std::string add_query(std::string url, std::string_view name, std::string_view value) {
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += name;
  url += '=';
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') url += static_cast<char>(c);
    else url += fmt::format("%{:02X}", c);
  }
  return url;
}

const char* to_string(PutBlobResult result) noexcept {
  switch (result) {
    case PutBlobResult::uploaded: return "uploaded";
    case PutBlobResult::skipped: return "skipped";
    case PutBlobResult::mounted: return "mounted";
  }
  return "unknown";
}

std::string oci_digest(std::string_view bytes) { return hex_digest(bytes); }

ReadAt read_fd(int fd, std::uint64_t base_offset) {
  return [fd, base_offset](std::uint64_t offset, std::span<char> buffer) -> Result<std::size_t> {
    return pread_full(fd, buffer, base_offset + offset, "read blob source");
  };
}

ReadAt read_memory(std::string_view bytes) {
  return [bytes](std::uint64_t offset, std::span<char> buffer) -> Result<std::size_t> {
    if (offset >= bytes.size()) return 0;
    std::size_t n = std::min<std::size_t>(buffer.size(), bytes.size() - offset);
    std::copy_n(bytes.data() + offset, n, buffer.data());
    return n;
  };
}

// ---------------------------------------------------------------------------------------------
// Construction

RegistryClient::RegistryClient(std::shared_ptr<Shared> shared, std::string repository)
    : m_shared(std::move(shared)),
      m_session(std::make_unique<HttpSession>(m_shared->options.http, m_shared->counters)) {
  m_ref.repository = std::move(repository);
}
RegistryClient::RegistryClient(RegistryClient&&) noexcept = default;
RegistryClient& RegistryClient::operator=(RegistryClient&&) noexcept = default;
RegistryClient::~RegistryClient() = default;

Result<RegistryClient> RegistryClient::open(const Reference& ref, RegistryOptions options) {
  TRY_VOID(validate_repository(ref.repository));
  auto shared = std::make_shared<Shared>();
  bool plain = options.plain_http.value_or(ref.loopback());
  shared->base_url = fmt::format("{}://{}", plain ? "http" : "https", ref.registry());
  if (options.credentials) {
    shared->credentials = options.credentials;
  } else {
    TRY(auto found, find_credentials(ref.registry()));
    shared->credentials = std::move(found);
  }
  if (options.chunk_size == 0) return std::unexpected(make_error(ErrorCode::invalid, "chunk_size must be > 0"));
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  shared->options = std::move(options);
  RegistryClient client(std::move(shared), ref.repository);
  client.m_ref = ref;
  client.m_ref.tag.clear();
  client.m_ref.digest.clear();
  return client;
}

RegistryClient RegistryClient::clone() const {
  RegistryClient copy(m_shared, m_ref.repository);
  copy.m_ref = m_ref;
  return copy;
}

Result<RegistryClient> RegistryClient::for_repository(std::string_view repository) const {
  TRY_VOID(validate_repository(repository));
  RegistryClient copy = clone();
  copy.m_ref.repository = repository;
  return copy;
}

const Reference& RegistryClient::reference() const { return m_ref; }
std::string RegistryClient::base_url() const { return m_shared->base_url; }
std::string RegistryClient::url(std::string_view path) const {
  return fmt::format("{}/v2/{}/{}", m_shared->base_url, m_ref.repository, path);
}

TransferStats RegistryClient::stats() const {
  const auto& s = *m_shared;
  return TransferStats{s.counters->requests.load(), s.counters->bytes_sent.load(), s.counters->bytes_received.load(),
                       s.uploaded.load(), s.skipped.load(), s.mounted.load(), s.retries.load(),
                       s.token_fetches.load()};
}

// ---------------------------------------------------------------------------------------------
// Auth and retries

// One request with auth: sends the current Authorization, and on a 401 answers the challenge
// (Basic credentials, or a fresh Bearer token) and tries once more. One more try is enough for
// both the first request and an expired token; a second 401 is the caller's permission error.
HttpResponse RegistryClient::exchange(HttpRequest request, bool authenticate) {
  std::string sent;
  if (authenticate) {
    std::lock_guard lock(m_shared->auth_mutex);
    sent = m_shared->authorization;
  }
  HttpRequest first = request;
  if (!sent.empty()) first.headers.push_back(sent);
  HttpResponse response = m_session->perform(first);
  if (!authenticate || response.status != 401) return response;
  auto header = response.header("www-authenticate");
  auto challenge = header ? parse_challenge(*header) : std::nullopt;
  if (!challenge) return response;
  auto next = authorize(*challenge, sent);
  if (!next) {
    response.failure = TransportFailure::sink;  // a hard error that is not the server's answer
    response.sink_error = std::move(next).error();
    return response;
  }
  if (!*next) return response;
  request.headers.push_back(**next);
  return m_session->perform(request);
}

// The Authorization line to try after `challenge`, given that `sent` was refused; nullopt when
// there is nothing better to try (no or wrong Basic credentials).
Result<std::optional<std::string>> RegistryClient::authorize(const Challenge& challenge, const std::string& sent) {
  std::lock_guard lock(m_shared->auth_mutex);
  // Another clone may have refreshed the token while this request was in flight.
  if (m_shared->authorization != sent && !m_shared->authorization.empty()) return m_shared->authorization;
  if (challenge.scheme == "basic") {
    if (!m_shared->credentials) return std::nullopt;
    const auto& c = *m_shared->credentials;
    std::string line = "Authorization: Basic " + base64_encode(c.username + ":" + c.password);
    if (line == sent) return std::nullopt;
    m_shared->authorization = line;
    return line;
  }
  if (challenge.scheme != "bearer") return std::nullopt;
  TRY(auto token, fetch_token(challenge));
  m_shared->authorization = "Authorization: Bearer " + token;
  return m_shared->authorization;
}

// GET realm?service=..&scope=.. (with Basic credentials when we have some). Called with
// auth_mutex held: clones wait for one token rather than each fetching their own.
Result<std::string> RegistryClient::fetch_token(const Challenge& challenge) {
  if (challenge.realm.empty())
    return std::unexpected(make_error(ErrorCode::permission, "Bearer challenge without a realm"));
  HttpRequest request;
  request.url = challenge.realm;
  if (!challenge.service.empty()) request.url = add_query(request.url, "service", challenge.service);
  if (!challenge.scope.empty()) request.url = add_query(request.url, "scope", challenge.scope);
  request.follow_redirects = true;
  if (m_shared->credentials) {
    const auto& c = *m_shared->credentials;
    request.headers.push_back("Authorization: Basic " + base64_encode(c.username + ":" + c.password));
  }
  m_shared->token_fetches.fetch_add(1, std::memory_order_relaxed);
  TRY(auto response, send(request, Attempt{0, false, {}}));
  if (response.status != 200) {
    Error error = exchange_error(request, response);
    if (response.status == 401 || response.status == 403) error.code = ErrorCode::permission;
    return std::unexpected(with_context(std::move(error), "token request"));
  }
  auto json = nlohmann::json::parse(response.body, nullptr, false);
  for (const char* key : {"token", "access_token"})
    if (json.is_object() && json.contains(key) && json[key].is_string() && !json[key].get<std::string>().empty())
      return json[key].get<std::string>();
  return std::unexpected(make_error(ErrorCode::permission,
                                    fmt::format("token request {}: answer has no token", display_url(request.url))));
}

// One logical request with retries of transient failures; returns the last answer, whatever
// its status. A transport failure left after the last try is an error.
Result<HttpResponse> RegistryClient::send(HttpRequest request, const Attempt& attempt) {
  const auto& policy = m_shared->options.retry;
  int tries = attempt.max_attempts > 0 ? attempt.max_attempts : policy.max_attempts;
  for (int n = 1;; ++n) {
    if (attempt.prepare) attempt.prepare(request);
    HttpResponse response = exchange(request, attempt.authenticate);
    if (!transient(response) || n >= tries) {
      if (response.failure == TransportFailure::none) return response;
      Error error = exchange_error(request, response);
      if (n > 1) error.context += fmt::format(" (after {} attempts)", n);
      return std::unexpected(std::move(error));
    }
    back_off(n, response);
  }
}

// The policy of RetryPolicy's comment, for every retry: of a request here, of a chunk and of a
// whole upload in registry_blobs.cpp.
void RegistryClient::back_off(int retry, const HttpResponse& response) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto& policy = m_shared->options.retry;
  auto ceiling = policy.initial_backoff * (std::int64_t{1} << std::min(retry - 1, 20));
  ceiling = std::min(ceiling, policy.max_backoff);
  std::uniform_int_distribution<std::int64_t> dist(ceiling.count() / 2, ceiling.count());
  std::chrono::milliseconds wait{dist(rng)};
  if (auto after = response.header("retry-after")) {
    char* end = nullptr;
    long seconds = std::strtol(after->c_str(), &end, 10);
    if (end != after->c_str() && seconds > 0)
      wait = std::max(wait, std::min(policy.max_backoff, std::chrono::milliseconds{seconds * 1000}));
  }
  m_shared->retries.fetch_add(1, std::memory_order_relaxed);
  std::this_thread::sleep_for(wait);
}

// ---------------------------------------------------------------------------------------------
// Requests

Result<void> RegistryClient::ping() {
  HttpRequest request;
  request.url = m_shared->base_url + "/v2/";
  TRY(auto response, send(request, {}));
  if (response.status != 200) return std::unexpected(exchange_error(request, response));
  return {};
}

Result<std::optional<std::uint64_t>> RegistryClient::blob_exists(std::string_view digest) {
  TRY_VOID(validate_digest(digest));
  HttpRequest request;
  request.method = "HEAD";
  request.url = url(fmt::format("blobs/{}", digest));
  request.follow_redirects = true;
  TRY(auto response, send(request, {}));
  if (response.status == 404) return std::nullopt;
  if (response.status != 200) return std::unexpected(exchange_error(request, response));
  if (!response.content_length)
    return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("HEAD {}: no Content-Length", request.url)));
  return response.content_length;
}

Result<std::string> RegistryClient::put_manifest(std::string_view reference, std::string_view media_type,
                                                 std::string_view bytes) {
  if (!reference.starts_with("sha256:")) TRY_VOID(validate_tag(reference));
  std::string digest = hex_digest(bytes);
  if (reference.starts_with("sha256:") && reference != digest)
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("manifest digest is {}, not {}", digest, reference)));
  if (bytes.size() > m_shared->options.max_manifest_size)
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("manifest of {} bytes exceeds the limit of {}",
                                                                      bytes.size(), m_shared->options.max_manifest_size)));
  HttpRequest request;
  request.method = "PUT";
  request.url = url(fmt::format("manifests/{}", reference));
  request.headers.push_back(fmt::format("Content-Type: {}", media_type));
  request.body = bytes;
  TRY(auto response, send(request, {}));
  if (response.status != 201) return std::unexpected(exchange_error(request, response));
  if (auto echoed = response.header("docker-content-digest"); echoed && *echoed != digest)
    return std::unexpected(make_error(
        ErrorCode::corrupt, fmt::format("PUT {}: registry stored digest {}, we sent {}", request.url, *echoed, digest)));
  return digest;
}

Result<FetchedManifest> RegistryClient::get_manifest(std::string_view reference, std::span<const std::string> accept) {
  bool by_digest = reference.starts_with("sha256:");
  if (by_digest) TRY_VOID(validate_digest(reference));
  else TRY_VOID(validate_tag(reference));
  std::string path = fmt::format("/v2/{}/manifests/{}", m_ref.repository, reference);
  HttpRequest request;
  std::string accept_line = "Accept: ";
  for (std::size_t i = 0; i < accept.size(); ++i) accept_line += (i ? ", " : "") + accept[i];
  if (!accept.empty()) request.headers.push_back(accept_line);
  request.max_body = m_shared->options.max_manifest_size;
  request.max_content_length = m_shared->options.max_manifest_size;
  request.follow_redirects = true;

  auto fetch_from = [&](std::string_view base, const Attempt& attempt) -> Result<FetchedManifest> {
    request.url = std::string(base) + path;
    TRY(auto response, send(request, attempt));
    if (response.status != 200) return std::unexpected(exchange_error(request, response));
    FetchedManifest out{response.header("content-type").value_or(""), std::move(response.body), ""};
    out.digest = hex_digest(out.bytes);
    if (by_digest && out.digest != reference)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("GET {}: manifest bytes hash to {}",
                                                                        request.url, out.digest)));
    if (auto echoed = response.header("docker-content-digest"); echoed && *echoed != out.digest)
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("GET {}: Docker-Content-Digest {} but the "
                                                                        "bytes hash to {}",
                                                                        request.url, *echoed, out.digest)));
    return out;
  };
  for (const auto& mirror : m_shared->options.mirrors)
    if (auto found = fetch_from(mirror, Attempt{1, false, {}})) return found;
  return fetch_from(m_shared->base_url, {});
}

Result<std::vector<std::string>> RegistryClient::list_tags() {
  std::vector<std::string> tags;
  HttpRequest request;
  request.url = url("tags/list");
  request.max_body = 16 << 20;
  for (int page = 0; page < 10'000; ++page) {
    TRY(auto response, send(request, {}));
    if (response.status != 200) return std::unexpected(exchange_error(request, response));
    auto json = nlohmann::json::parse(response.body, nullptr, false);
    if (json.is_discarded() || !json.is_object())
      return std::unexpected(make_error(ErrorCode::corrupt, fmt::format("GET {}: not a JSON object", request.url)));
    if (auto list = json.find("tags"); list != json.end() && list->is_array())
      for (const auto& tag : *list)
        if (tag.is_string()) tags.push_back(tag.get<std::string>());
    // Pagination: Link: </v2/<name>/tags/list?n=100&last=x>; rel="next"
    auto link = response.header("link");
    if (!link || link->find("rel=\"next\"") == std::string::npos) return tags;
    std::size_t open = link->find('<'), close = link->find('>');
    if (open == std::string::npos || close == std::string::npos || close < open) return tags;
    request.url = resolve_location(m_shared->base_url, std::string_view(*link).substr(open + 1, close - open - 1));
  }
  return tags;
}

}  // namespace treesnap::remote
