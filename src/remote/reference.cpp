#include "remote/reference.hpp"

#include <charconv>

#include <fmt/format.h>

#include "util/error.hpp"

namespace treesnap::remote {
namespace {

constexpr std::string_view k_scheme = "oci://";

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

Result<void> invalid(std::string what) { return std::unexpected(make_error(ErrorCode::invalid, std::move(what))); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*  (distribution's reference grammar).
bool valid_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  for (std::size_t i = 0; i < c.size();) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < c.size() && !is_lower_alnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (sep != "." && sep != "_" && sep != "__" && !dashes) return false;
    i = j;
  }
  return true;
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host)
    if (!(is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-')) return false;
  return host.front() != '.' && host.front() != '-';
}

}  // namespace

Result<void> validate_repository(std::string_view repository) {
  if (repository.empty()) return invalid("empty repository name");
  if (repository.size() > 255) return invalid(fmt::format("repository name longer than 255 bytes: {}", repository));
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = repository.find('/', start);
    std::string_view component = repository.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!valid_component(component))
      return invalid(fmt::format("bad repository name '{}': component '{}' must be lower-case letters and digits "
                                 "joined by '.', '_', '__' or '-'",
                                 repository, component));
    if (slash == std::string_view::npos) return {};
    start = slash + 1;
  }
}

Result<void> validate_tag(std::string_view tag) {
  auto ok_char = [](char c) {
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-';
  };
  bool ok = !tag.empty() && tag.size() <= 128 && tag.front() != '.' && tag.front() != '-';
  for (char c : tag) ok = ok && ok_char(c);
  if (!ok) return invalid(fmt::format("bad tag '{}': 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'", tag));
  return {};
}

Result<void> validate_digest(std::string_view digest) {
  constexpr std::string_view k_prefix = "sha256:";
  bool ok = digest.starts_with(k_prefix) && digest.size() == k_prefix.size() + 64;
  for (char c : digest.substr(std::min(digest.size(), k_prefix.size())))
    ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) return invalid(fmt::format("bad digest '{}': expected sha256: and 64 lower-case hex digits", digest));
  return {};
}

std::string Reference::registry() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 0) out += fmt::format(":{}", port);
  return out;
}

bool Reference::loopback() const { return host == "localhost" || host == "127.0.0.1" || host == "::1"; }

std::string Reference::to_string() const {
  std::string out = fmt::format("{}{}/{}", k_scheme, registry(), repository);
  if (!digest.empty()) return out + "@" + digest;
  if (!tag.empty()) return out + ":" + tag;
  return out;
}

Result<Reference> parse_reference(std::string_view text) {
  auto fail = [&](std::string_view why) -> Result<Reference> {
    return std::unexpected(make_error(ErrorCode::invalid, fmt::format("bad OCI reference '{}': {}", text, why)));
  };
  if (!text.starts_with(k_scheme)) return fail("must start with oci://");
  std::string_view rest = text.substr(k_scheme.size());
  std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 == rest.size()) return fail("no repository after the host");
  std::string_view authority = rest.substr(0, slash), path = rest.substr(slash + 1);
  if (authority.find('@') != std::string_view::npos)
    return fail("credentials do not belong in a reference (use the docker config or the environment)");

  Reference ref;
  std::string_view port_text;
  if (authority.starts_with('[')) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed '[' in the host");
    ref.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return fail("junk after ']' in the host");
    if (!after.empty()) port_text = after.substr(1);
    if (ref.host.empty() || ref.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
      return fail("bad IPv6 address");
  } else {
    std::size_t colon = authority.find(':');
    ref.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (!valid_host(ref.host)) return fail("bad host name");
  }
  if (authority.find(':') != std::string_view::npos && port_text.empty() && !authority.starts_with('['))
    return fail("empty port");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || value == 0 || value > 65535)
      return fail("port must be 1 to 65535");
    ref.port = static_cast<std::uint16_t>(value);
  }

  // The repository ends at '@' (digest) or at a ':' after the last '/' (tag).
  if (std::size_t at = path.find('@'); at != std::string_view::npos) {
    ref.digest = path.substr(at + 1);
    path = path.substr(0, at);
    if (auto ok = validate_digest(ref.digest); !ok) return fail(ok.error().context);
  } else if (std::size_t colon = path.rfind(':');
             colon != std::string_view::npos && path.find('/', colon) == std::string_view::npos) {
    ref.tag = path.substr(colon + 1);
    path = path.substr(0, colon);
    if (auto ok = validate_tag(ref.tag); !ok) return fail(ok.error().context);
  }
  ref.repository = path;
  if (auto ok = validate_repository(ref.repository); !ok) return fail(ok.error().context);
  return ref;
}

}  // namespace treesnap::remote
