// One HTTP exchange over libcurl, with nothing registry-specific in it: no retries, no auth. An
// HttpSession owns one curl easy handle and reuses it, so consecutive requests to one host share a
// kept-alive connection. A session is not thread-safe; use one per thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "treesnap/result.hpp"

namespace treesnap::remote {

// Receives a response body chunk by chunk; an error aborts the transfer and is returned as is.
using BodySink = std::function<Result<void>(std::string_view chunk)>;
// Reads up to buffer.size() bytes at `offset` of a request body; returns how many (0 only at the
// end). Must be callable again for the same offset: a retried request reads its body again.
using ReadAt = std::function<Result<std::size_t>(std::uint64_t offset, std::span<char> buffer)>;

// Totals across every session of one client and its clones.
struct TransferCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes_sent{0};      // request bodies
  std::atomic<std::uint64_t> bytes_received{0};  // response bodies
};

struct HttpSettings {
  long connect_timeout_ms = 10'000;
  // A transfer moving fewer than low_speed_bytes per second for low_speed_seconds is abandoned
  // as stalled (CURLOPT_LOW_SPEED_*): a dead peer never hangs a pull.
  long low_speed_bytes = 1024;
  long low_speed_seconds = 30;
  std::string user_agent = "treesnap";
};

struct HttpResponse;

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Request body: `body` in memory, or `body_length` bytes read through `body_reader` from
  // `body_offset` on. Neither: no body.
  std::string body;
  ReadAt body_reader;
  std::uint64_t body_offset = 0;
  std::uint64_t body_length = 0;
  // Response body of a 2xx answer: streamed to `sink` when set, else kept in HttpResponse::body up
  // to `max_body` bytes (more is an error). Bodies of other statuses are kept (64 KiB at most) for
  // the error message.
  BodySink sink;
  std::uint64_t max_body = 1 << 20;
  // Called when the headers of a 2xx answer are in, before its body; an error aborts the
  // transfer and is reported like a sink error.
  std::function<Result<void>(const HttpResponse&)> on_headers;
  // A 2xx answer declaring a Content-Length above this is refused before its body is read.
  std::optional<std::uint64_t> max_content_length;
  std::string proxy;  // CURLOPT_PROXY; empty: curl's default (the *_proxy environment variables)
  bool follow_redirects = false;  // GET/HEAD of blobs: registries redirect to storage
};

// Why a request got no complete answer. Everything but `sink` and `refused` may be transient.
enum class TransportFailure {
  none,
  timeout,     // connect timeout or a stall below the low-speed limit
  connection,  // refused, reset, closed early, name not resolved
  truncated,   // the body ended before its Content-Length
  sink,        // the sink returned an error (in HttpResponse::sink_error)
  refused,     // the declared Content-Length exceeded max_content_length or max_body
  other,
};

struct HttpResponse {
  long status = 0;  // 0 when there was a transport failure before a status line
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, of the last response
  std::string body;
  std::uint64_t body_bytes = 0;  // bytes of the 2xx body received, streamed or kept
  std::optional<std::uint64_t> content_length;
  TransportFailure failure = TransportFailure::none;
  std::string failure_text;  // curl's message for the failure
  std::optional<Error> sink_error;

  std::optional<std::string> header(std::string_view lower_name) const;
};

class HttpSession {
 public:
  HttpSession(HttpSettings settings, std::shared_ptr<TransferCounters> counters);
  HttpSession(HttpSession&&) noexcept;
  HttpSession& operator=(HttpSession&&) noexcept;
  ~HttpSession();

  // Performs one exchange. Never fails as a Result: every outcome, including transport failures,
  // is described by the response.
  HttpResponse perform(const HttpRequest& request);

 private:
  struct State;
  std::unique_ptr<State> m_state;
};

// Standard base64, for Basic credentials and the docker config file's "auth" field.
std::string base64_encode(std::string_view data);
Result<std::string> base64_decode(std::string_view text);

// `url` with the value of an upload's `_state` query parameter elided: it is long, opaque and
// useless in a message.
std::string display_url(std::string_view url);

}  // namespace treesnap::remote
