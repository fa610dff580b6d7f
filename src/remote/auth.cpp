#include "remote/auth.hpp"

#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "remote/http.hpp"
#include "util/error.hpp"
#include "util/posix.hpp"

namespace treesnap::remote {
namespace {

std::string config_path() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir && *dir) return join_path(dir, "config.json");
  if (const char* home = std::getenv("HOME"); home && *home) return join_path(home, ".docker/config.json");
  return {};
}

// "https://host:5000/v1/" -> "host:5000"
std::string_view registry_of_key(std::string_view key) {
  for (std::string_view scheme : {"https://", "http://"})
    if (key.starts_with(scheme)) key.remove_prefix(scheme.size());
  return key.substr(0, key.find('/'));
}

Result<std::optional<Credentials>> from_docker_config(std::string_view registry) {
  std::string path = config_path();
  if (path.empty()) return std::nullopt;
  auto text = read_file(AT_FDCWD, path);
  if (!text) {
    if (text.error().code == ErrorCode::not_found) return std::nullopt;
    return std::unexpected(std::move(text).error());
  }
  auto bad = [&](std::string_view why) -> Result<std::optional<Credentials>> {
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("docker config {}: {}", path, why)));
  };
  auto json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  auto auths = json.find("auths");
  if (auths == json.end() || !auths->is_object()) return std::nullopt;
  for (const auto& [key, entry] : auths->items()) {
    if (registry_of_key(key) != registry || !entry.is_object()) continue;
    Credentials creds{{}, {}, path};
    if (auto auth = entry.find("auth"); auth != entry.end() && auth->is_string() && !auth->get<std::string>().empty()) {
      auto decoded = base64_decode(auth->get<std::string>());
      std::size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) return bad(fmt::format("auths.{}.auth is not base64 of user:password", key));
      creds.username = decoded->substr(0, colon);
      creds.password = decoded->substr(colon + 1);
      return creds;
    }
    auto user = entry.find("username"), pass = entry.find("password");
    if (user != entry.end() && pass != entry.end() && user->is_string() && pass->is_string()) {
      creds.username = user->get<std::string>();
      creds.password = pass->get<std::string>();
      return creds;
    }
  }
  return std::nullopt;
}

}  // namespace

Result<std::optional<Credentials>> find_credentials(std::string_view registry) {
  const char* user = std::getenv("TREESNAP_REGISTRY_USER");
  const char* pass = std::getenv("TREESNAP_REGISTRY_PASSWORD");
  if (user && *user && pass) return Credentials{user, pass, "environment"};
  return from_docker_config(registry);
}

std::optional<Challenge> parse_challenge(std::string_view header) {
  std::size_t sp = header.find(' ');
  Challenge out;
  for (char c : header.substr(0, sp)) out.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (out.scheme.empty()) return std::nullopt;
  std::string_view rest = sp == std::string_view::npos ? std::string_view{} : header.substr(sp + 1);
  // key=value or key="quoted, value", separated by commas.
  while (!rest.empty()) {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == ',')) rest.remove_prefix(1);
    std::size_t eq = rest.find('=');
    if (eq == std::string_view::npos) break;
    std::string key;
    for (char c : rest.substr(0, eq)) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      std::size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value += rest[i];
      }
      rest.remove_prefix(std::min(rest.size(), i + 1));
    } else {
      std::size_t comma = rest.find(',');
      value = rest.substr(0, comma);
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma);
    }
    if (key == "realm") out.realm = value;
    else if (key == "service") out.service = value;
    else if (key == "scope") out.scope = value;
  }
  return out;
}

}  // namespace treesnap::remote
