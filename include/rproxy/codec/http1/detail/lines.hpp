// rproxy/codec/http1/detail/lines.hpp: parsers for one complete line (CRLF already removed):
// request line, status line, field line, chunk-size line. Pure functions returning an
// http1::error (error{} on success). Internal to codec/http1.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/error.hpp>
#include <rproxy/codec/http1/message.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rproxy::codec::http1::detail {

inline constexpr error ok{};

/// "HTTP/" DIGIT "." DIGIT; only 1.0 and 1.1 are accepted (others: version_not_supported).
constexpr error parse_version(std::string_view s, http_version& v) noexcept {
  if (s.size() != 8 || s.substr(0, 5) != "HTTP/" || !is_digit(s[5]) || s[6] != '.' ||
      !is_digit(s[7]))
    return error::bad_version;
  if (s[5] == '1' && s[7] == '1') {
    v = http_version::http11;
  } else if (s[5] == '1' && s[7] == '0') {
    v = http_version::http10;
  } else {
    return error::version_not_supported;
  }
  return ok;
}

/// Checks the request-target form (RFC 9112 §3.2) against the method: authority-form for
/// CONNECT only, "*" for OPTIONS only, otherwise origin-form ("/...") or absolute-form
/// ("scheme:..."). Characters: VCHAR except '#'.
constexpr error check_target(std::string_view method, std::string_view target) noexcept {
  if (!all_of_class(target, cc_target) || target.find('#') != std::string_view::npos)
    return error::bad_target;
  if (method == "CONNECT") {  // host ":" port
    const auto colon = target.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return error::bad_target;
    std::uint64_t port = 0;
    if (!parse_decimal(target.substr(colon + 1), port) || port > 65535) return error::bad_target;
    return all_of_class(target.substr(0, colon), cc_host) ? ok : error::bad_target;
  }
  if (target == "*") return method == "OPTIONS" ? ok : error::bad_target;
  if (target.front() == '/') return ok;
  // absolute-form: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":"
  const auto colon = target.find(':');
  if (colon == std::string_view::npos || colon == 0) return error::bad_target;
  for (std::size_t i = 0; i < colon; ++i) {
    const char c = target[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alpha && (i == 0 || !(is_digit(c) || c == '+' || c == '-' || c == '.')))
      return error::bad_target;
  }
  return ok;
}

struct request_line {
  std::string_view method;
  std::string_view target;
  http_version version = http_version::http11;
};

/// method SP request-target SP HTTP-version (single spaces, RFC 9112 §3).
constexpr error parse_request_line(std::string_view line, request_line& out) noexcept {
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || !is_token(line.substr(0, sp1))) return error::bad_method;
  const auto sp2 = line.rfind(' ');
  if (sp2 == sp1) return error::bad_version;
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (out.target.empty()) return error::bad_target;
  if (const auto e = parse_version(line.substr(sp2 + 1), out.version); e != ok) return e;
  return check_target(out.method, out.target);
}

struct status_line {
  http_version version = http_version::http11;
  unsigned status = 0;
  std::string_view reason;
};

/// HTTP-version SP 3DIGIT [ SP reason-phrase ] (a missing reason and its SP are accepted).
constexpr error parse_status_line(std::string_view line, status_line& out) noexcept {
  if (line.size() < 8 || line.substr(0, 5) != "HTTP/") return error::bad_version;
  if (const auto e = parse_version(line.substr(0, 8), out.version); e != ok) return e;
  line.remove_prefix(8);
  if (line.size() < 4 || line[0] != ' ' || !is_digit(line[1]) || !is_digit(line[2]) ||
      !is_digit(line[3]))
    return error::bad_status;
  out.status = static_cast<unsigned>((line[1] - '0') * 100 + (line[2] - '0') * 10 + (line[3] - '0'));
  if (out.status < 100 || out.status > 599) return error::bad_status;
  line.remove_prefix(4);
  if (line.empty()) {
    out.reason = {};
    return ok;
  }
  if (line[0] != ' ') return error::bad_status;
  out.reason = line.substr(1);
  for (char c : out.reason)
    if (!is_field_char(c)) return error::bad_reason;
  return ok;
}

/// field-name ":" OWS field-value OWS (RFC 9112 §5). The value is returned trimmed.
constexpr error parse_field_line(std::string_view line, field_view& out) noexcept {
  if (line.empty() || is_ws(line.front())) return error::obs_fold;
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return error::bad_field_name;
  const auto name = line.substr(0, colon);
  if (is_ws(name.back())) return error::space_before_colon;
  if (!is_token(name)) return error::bad_field_name;
  const auto value = trim_ows(line.substr(colon + 1));
  for (char c : value)
    if (!is_field_char(c)) return error::bad_field_value;
  out = {name, value};
  return ok;
}

constexpr void skip_ws(std::string_view& s) noexcept {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
}

constexpr bool take_token(std::string_view& s) noexcept {
  std::size_t n = 0;
  while (n < s.size() && is_tchar(s[n])) ++n;
  s.remove_prefix(n);
  return n > 0;
}

/// quoted-string (RFC 9110 §5.6.4), starting at the opening quote.
constexpr bool take_quoted(std::string_view& s) noexcept {
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      s.remove_prefix(i + 1);
      return true;
    }
    if (c == '\\') {
      if (++i == s.size() || !is_field_char(s[i])) return false;
    } else if (!is_field_char(c)) {
      return false;
    }
  }
  return false;
}

/// chunk-size [ chunk-ext ] (RFC 9112 §7.1): HEXDIG digits, then extensions that are
/// validated and ignored: *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
/// Trailing whitespace is not part of the grammar and is refused (peers disagree on it).
constexpr error parse_chunk_line(std::string_view line, std::uint64_t& size) noexcept {
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < line.size(); ++i) {
    const int h = hex_value(line[i]);
    if (h < 0) break;
    if ((v >> 60) != 0) return error::chunk_size_overflow;
    v = (v << 4) | static_cast<std::uint64_t>(h);
  }
  if (i == 0) return error::bad_chunk;
  auto rest = line.substr(i);
  while (!rest.empty()) {  // whitespace only before a ';' or '=': "5 \r\n" is refused
    skip_ws(rest);
    if (rest.empty() || rest.front() != ';') return error::bad_chunk;
    rest.remove_prefix(1);
    skip_ws(rest);
    if (!take_token(rest)) return error::bad_chunk;
    auto after = rest;
    skip_ws(after);
    if (!after.empty() && after.front() == '=') {
      after.remove_prefix(1);
      skip_ws(after);
      if (!after.empty() && after.front() == '"' ? !take_quoted(after) : !take_token(after))
        return error::bad_chunk;
      rest = after;
    }
  }
  size = v;
  return ok;
}

}  // namespace rproxy::codec::http1::detail
