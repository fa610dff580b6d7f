// State shared by a RegistryClient and its clones, and helpers shared by registry.cpp and
// registry_upload.cpp. Not for use outside src/remote/.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include "remote/registry.hpp"

namespace treesnap::remote {

struct RegistryClient::Shared {
  RegistryOptions options;
  std::string base_url;  // "https://host:port", no trailing slash
  std::shared_ptr<TransferCounters> counters = std::make_shared<TransferCounters>();
  std::atomic<std::uint64_t> retries{0}, uploaded{0}, skipped{0}, mounted{0}, token_fetches{0};

  std::mutex auth_mutex;                    // guards the two below
  std::optional<Credentials> credentials;   // never logged, never in a message
  std::string authorization;                // current "Authorization: ..." line; empty: anonymous
};

// How send() treats one logical request.
struct RegistryClient::Attempt {
  int max_attempts = 0;  // 0: the policy's
  bool authenticate = true;  // false for mirrors and the token server
  std::function<void(HttpRequest&)> prepare;  // adjusts the request before each try
};

// True for an answer worth trying again: 5xx but 501, 429, or a transient transport failure.
bool transient(const HttpResponse& response);

// The error for a failed exchange: names the method, the URL and the status or the failure.
Error exchange_error(const HttpRequest& request, const HttpResponse& response);

// Resolves a Location header (absolute, or a path on the registry) against `base_url`.
std::string resolve_location(std::string_view base_url, std::string_view location);

// Appends "name=value" to `url` with '?' or '&'; `value` is percent-encoded.
std::string add_query(std::string url, std::string_view name, std::string_view value);

}  // namespace treesnap::remote
