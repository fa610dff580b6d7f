// Where registry credentials come from and how a registry asks for them. Nothing here sends a
// request: the token exchange is in registry.cpp, which owns the HTTP session.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "treesnap/result.hpp"

namespace treesnap::remote {

struct Credentials {
  std::string username;
  std::string password;
  std::string source;  // "environment" or the config file's path: for messages, never the secret
};

// Credentials for `registry` ("host[:port]", as Reference::registry() spells it), first found of:
//   1. TREESNAP_REGISTRY_USER and TREESNAP_REGISTRY_PASSWORD (both set, for any registry);
//   2. $DOCKER_CONFIG/config.json, else ~/.docker/config.json: "auths" entry whose key is the
//      registry, with or without an http(s):// prefix or a path; its "auth" (base64 of
//      user:password) or its "username" and "password".
// nullopt when none applies (anonymous). A config file that exists but does not parse is
// ErrorCode::invalid naming the file. Credential helpers (credsStore) are not supported.
Result<std::optional<Credentials>> find_credentials(std::string_view registry);

// One WWW-Authenticate challenge: `Basic realm="x"` or
// `Bearer realm="https://auth/token",service="registry",scope="repository:a/b:pull"`.
struct Challenge {
  std::string scheme;  // lower case: "basic", "bearer"
  std::string realm;
  std::string service;
  std::string scope;
};

std::optional<Challenge> parse_challenge(std::string_view header);

}  // namespace treesnap::remote
