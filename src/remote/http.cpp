#include "remote/http.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "util/error.hpp"

namespace treesnap::remote {
namespace {

constexpr std::size_t k_error_body_limit = 64 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

void global_init() {
  // curl_global_init is not thread-safe; every session goes through here first.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What the curl callbacks of one perform() share.
struct Exchange {
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  std::uint64_t read_pos = 0;  // position in the request body
  bool refused = false;
  std::optional<Error> read_error;
};

bool success(long status) { return status >= 200 && status < 300; }

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  std::string_view line(data, size * count);
  auto& resp = *ex.response;
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or 100 Continue): forget the previous one's headers.
    resp.headers.clear();
    resp.content_length.reset();
    std::size_t sp = line.find(' ');
    resp.status = sp == std::string_view::npos ? 0 : std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
    return line.size();
  }
  std::size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = lower(trim(line.substr(0, colon)));
    std::string value(trim(line.substr(colon + 1)));
    if (name == "content-length") resp.content_length = std::strtoull(value.c_str(), nullptr, 10);
    resp.headers.emplace_back(std::move(name), std::move(value));
    return line.size();
  }
  if (!trim(line).empty() || !success(resp.status)) return line.size();
  const auto& limit = ex.request->max_content_length;
  if (limit && resp.content_length && *resp.content_length > *limit) {
    ex.refused = true;
    return 0;  // aborts before any of the body is read
  }
  if (ex.request->on_headers) {
    if (auto ok = ex.request->on_headers(resp); !ok) {
      resp.sink_error = std::move(ok).error();
      return 0;
    }
  }
  return line.size();
}

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  auto& resp = *ex.response;
  std::string_view chunk(data, size * count);
  if (!success(resp.status)) {
    if (resp.body.size() < k_error_body_limit)
      resp.body.append(chunk.substr(0, k_error_body_limit - resp.body.size()));
    return chunk.size();
  }
  resp.body_bytes += chunk.size();
  if (ex.request->sink) {
    if (auto ok = ex.request->sink(chunk); !ok) {
      resp.sink_error = std::move(ok).error();
      return 0;
    }
    return chunk.size();
  }
  if (resp.body.size() + chunk.size() > ex.request->max_body) {
    ex.refused = true;
    return 0;
  }
  resp.body.append(chunk);
  return chunk.size();
}

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  const auto& req = *ex.request;
  std::uint64_t total = req.body_reader ? req.body_length : req.body.size();
  std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size * count, total - ex.read_pos));
  if (want == 0) return 0;
  if (!req.body_reader) {
    std::copy_n(req.body.data() + ex.read_pos, want, buffer);
    ex.read_pos += want;
    return want;
  }
  auto got = req.body_reader(req.body_offset + ex.read_pos, std::span<char>(buffer, want));
  if (!got) {
    ex.read_error = std::move(got).error();
    return CURL_READFUNC_ABORT;
  }
  if (*got == 0) {
    ex.read_error = make_error(ErrorCode::io, fmt::format("request body ended at {} of {} bytes", ex.read_pos, total));
    return CURL_READFUNC_ABORT;
  }
  ex.read_pos += *got;
  return *got;
}

// curl rewinds the body when it resends a request, e.g. on a kept-alive connection that the
// server had closed meanwhile.
int on_seek(void* user, curl_off_t offset, int origin) {
  auto& ex = *static_cast<Exchange*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  ex.read_pos = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

TransportFailure classify(CURLcode code, const Exchange& ex) {
  if (ex.refused) return TransportFailure::refused;
  if (ex.response->sink_error || ex.read_error) return TransportFailure::sink;
  switch (code) {
    case CURLE_OK: return TransportFailure::none;
    case CURLE_OPERATION_TIMEDOUT: return TransportFailure::timeout;
    case CURLE_PARTIAL_FILE: return TransportFailure::truncated;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return TransportFailure::connection;
    default: return TransportFailure::other;
  }
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return std::nullopt;
}

struct HttpSession::State {
  CURL* handle = nullptr;
  HttpSettings settings;
  std::shared_ptr<TransferCounters> counters;
  ~State() {
    if (handle) curl_easy_cleanup(handle);
  }
};

HttpSession::HttpSession(HttpSettings settings, std::shared_ptr<TransferCounters> counters)
    : m_state(std::make_unique<State>()) {
  global_init();
  m_state->handle = curl_easy_init();
  m_state->settings = std::move(settings);
  m_state->counters = std::move(counters);
}
HttpSession::HttpSession(HttpSession&&) noexcept = default;
HttpSession& HttpSession::operator=(HttpSession&&) noexcept = default;
HttpSession::~HttpSession() = default;

HttpResponse HttpSession::perform(const HttpRequest& request) {
  HttpResponse response;
  if (!m_state->handle) {
    response.failure = TransportFailure::other;
    response.failure_text = "curl_easy_init failed";
    return response;
  }
  CURL* h = m_state->handle;
  const auto& s = m_state->settings;
  // Reset keeps the connection cache: the next request to the same host reuses the connection.
  curl_easy_reset(h);
  Exchange ex;
  ex.request = &request;
  ex.response = &response;
  char error_buffer[CURL_ERROR_SIZE] = "";

  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, s.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, s.low_speed_bytes);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s.low_speed_seconds);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex);
  if (request.follow_redirects) {
    // curl sends a custom Authorization header only to the original host (since 7.58), so a
    // registry token never reaches the storage service it redirects to.
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  }
  if (!request.proxy.empty()) curl_easy_setopt(h, CURLOPT_PROXY, request.proxy.c_str());

  bool has_body = request.body_reader || !request.body.empty();
  std::uint64_t body_size = request.body_reader ? request.body_length : request.body.size();
  if (request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST" && !has_body) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t{0});
  } else if (has_body || request.method == "PUT" || request.method == "PATCH") {
    // UPLOAD sends Content-Length (0 for an empty PUT) and reads the body through on_read.
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &ex);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &ex);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  curl_slist* headers = nullptr;
  for (const auto& line : request.headers) headers = curl_slist_append(headers, line.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip before a body
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  CURLcode code = curl_easy_perform(h);
  curl_slist_free_all(headers);

  curl_off_t uploaded = 0;
  curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &uploaded);
  m_state->counters->requests.fetch_add(1, std::memory_order_relaxed);
  m_state->counters->bytes_sent.fetch_add(static_cast<std::uint64_t>(uploaded), std::memory_order_relaxed);
  m_state->counters->bytes_received.fetch_add(response.body_bytes, std::memory_order_relaxed);

  response.failure = classify(code, ex);
  if (ex.read_error && !response.sink_error) response.sink_error = std::move(ex.read_error);
  if (response.failure == TransportFailure::refused) {
    response.failure_text = response.content_length
                                ? fmt::format("declared Content-Length {} exceeds the limit of {} bytes",
                                              *response.content_length,
                                              request.max_content_length.value_or(request.max_body))
                                : fmt::format("body exceeds the limit of {} bytes", request.max_body);
  } else if (response.failure != TransportFailure::none) {
    response.failure_text = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
  }
  return response;
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  std::string_view t = trim(text);
  if (t.size() % 4 != 0)
    return std::unexpected(make_error(ErrorCode::invalid, "base64 text length is not a multiple of 4"));
  std::string out(t.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(t.data()), static_cast<int>(t.size()));
  if (n < 0) return std::unexpected(make_error(ErrorCode::invalid, "malformed base64"));
  std::size_t padding = t.ends_with("==") ? 2 : t.ends_with("=") ? 1 : 0;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

std::string display_url(std::string_view url) {
  std::size_t pos = url.find("_state=");
  if (pos == std::string_view::npos) return std::string(url);
  std::size_t end = url.find('&', pos);
  std::string out(url.substr(0, pos + 7));
  out += "...";
  if (end != std::string_view::npos) out += url.substr(end);
  return out;
}

}  // namespace treesnap::remote
