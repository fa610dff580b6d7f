// OCI references: "oci://HOST[:PORT]/REPO/PATH[:TAG|@sha256:HEX]", the one text form users give
// for a snapshot on a registry. Parsing and validation live here and nowhere else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "treesnap/result.hpp"

namespace treesnap::remote {

struct Reference {
  std::string host;        // "registry.example", "127.0.0.1", "::1" (no brackets)
  std::uint16_t port = 0;  // 0 when the reference names none (443 or 80 by scheme)
  std::string repository;  // "team/snapshots", lower case, OCI name grammar
  std::string tag;         // "v1"; empty when `digest` is set or neither was given
  std::string digest;      // "sha256:<64 hex>"; empty unless given

  // "host[:port]" as it goes into a URL ("[::1]:5000"), and the key of the docker config file.
  std::string registry() const;
  // The tag or the digest, whichever was given; empty when neither.
  std::string reference() const { return digest.empty() ? tag : digest; }
  // True for localhost, 127.0.0.1 and ::1: the hosts spoken to over plain HTTP by default.
  bool loopback() const;
  // The canonical "oci://..." text, which parse_reference() accepts again.
  std::string to_string() const;
};

// Parses `text`. Errors are ErrorCode::invalid and say which part is wrong.
Result<Reference> parse_reference(std::string_view text);

// Checks the OCI grammar of each part on its own; used by parse_reference and by callers that
// build references from parts. Each returns ErrorCode::invalid naming the bad value.
Result<void> validate_repository(std::string_view repository);
Result<void> validate_tag(std::string_view tag);
Result<void> validate_digest(std::string_view digest);  // sha256 only

}  // namespace treesnap::remote
