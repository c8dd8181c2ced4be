// rproxy/route/normalize_path.hpp: the one form of a request path that routes are matched
// against (and that is forwarded), so that a path cannot reach a route's backend while
// dodging the route that guards it (docs/routing.md, "Path normalisation").
//
//     std::string p;
//     rproxy::route::normalize_path("/x/../%61dmin//./users/", p);   // true, p == "/admin/users/"
//     rproxy::route::normalize_path("/a%2fb", p);                    // true, p == "/a%2Fb" (not a separator)
//     rproxy::route::normalize_path("/a%zz", p);                     // false: a bad escape is a 400
//
// In order (RFC 3986 §6.2.2):
//   1. the path must start with '/' and hold only RFC 3986 path characters (pchar and '/');
//      anything else (space, controls, '\', '"', '<', '>', '^', '`', '{', '|', '}', bytes >= 0x80)
//      refuses the path;
//   2. an escape of an unreserved character (ALPHA DIGIT - . _ ~) is decoded ("%61" -> "a",
//      "%2E" -> "."); any other escape is kept, with upper-case hex digits ("%2f" -> "%2F"); a
//      truncated or non-hex escape refuses the path;
//   3. empty segments (duplicate slashes) are dropped, except a trailing slash, which is kept;
//   4. "." segments are dropped, ".." drops the segment before it (never above the root),
//      decoded dots included ("/%2e%2e/" is ".."); a trailing "." or ".." leaves a trailing slash.
// Case is kept (paths are case-sensitive). The result is idempotent: normalising it again gives
// the same text. It is never longer than the input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rproxy::route {

namespace detail {

constexpr bool is_unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

constexpr bool is_sub_delim(char c) noexcept {
  switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}

/// A character a path may hold as it is (pchar without '%', RFC 3986 §3.3).
constexpr bool is_path_char(char c) noexcept { return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@'; }

constexpr int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char upper_hex(int v) noexcept { return "0123456789ABCDEF"[v & 15]; }

}  // namespace detail

/// Normalises `raw` (a path without its query) into `out` (replaced). False, with `out`
/// unspecified, when the path is refused (see the file comment), and also, unless
/// `allow_encoded_slash`, when it holds an escaped '/' or '\\' ("%2F", "%5C"): a backend that
/// decodes those into separators would see other segments than the route matched.
inline bool normalize_path(std::string_view raw, std::string& out, bool allow_encoded_slash = true) {
  out.clear();
  if (raw.empty() || raw.front() != '/') return false;
  out.reserve(raw.size());
  std::size_t i = 1;  // raw[i - 1] is the '/' before the segment at i
  for (;;) {
    const std::size_t slash = out.size();
    out += '/';
    // Copy one raw segment, decoding unreserved escapes.
    while (i < raw.size() && raw[i] != '/') {
      const char c = raw[i];
      if (c == '%') {
        if (i + 2 >= raw.size()) return false;  // truncated escape
        const int hi = detail::hex_digit(raw[i + 1]), lo = detail::hex_digit(raw[i + 2]);
        if (hi < 0 || lo < 0) return false;
        const char decoded = static_cast<char>(hi * 16 + lo);
        if (!allow_encoded_slash && (decoded == '/' || decoded == '\\')) return false;
        if (detail::is_unreserved(decoded)) {
          out += decoded;
        } else {
          out += '%';
          out += detail::upper_hex(hi);
          out += detail::upper_hex(lo);
        }
        i += 3;
      } else if (detail::is_path_char(c)) {
        out += c;
        ++i;
      } else {
        return false;
      }
    }
    const bool last = i >= raw.size();
    const std::string_view seg = std::string_view(out).substr(slash + 1);
    if (seg.empty() || seg == ".") {
      out.resize(last ? slash + 1 : slash);  // keep a trailing slash only
    } else if (seg == "..") {
      out.resize(slash);
      const std::size_t prev = out.rfind('/');
      out.resize(prev == std::string::npos ? 0 : prev);
      if (last) out += '/';
    }
    if (last) break;
    ++i;  // past the '/'
  }
  if (out.empty()) out = "/";
  return true;
}

/// Whether `path` is already in normal form (what normalize_path would give).
inline bool is_normal_path(std::string_view path) {
  std::string out;
  return normalize_path(path, out) && out == path;
}

}  // namespace rproxy::route
