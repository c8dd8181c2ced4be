// rproxy/codec/http1/detail/chars.hpp: character classes and small string helpers of RFC 9110
// (token, field-vchar, OWS, lists), as lookup tables. Internal to codec/http1.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

namespace rproxy::codec::http1::detail {

enum char_class : std::uint8_t {
  cc_tchar = 1,     ///< token character (RFC 9110 §5.6.2)
  cc_vchar = 2,     ///< field-vchar: VCHAR or obs-text
  cc_target = 4,    ///< request-target character: VCHAR (no SP, CTL, DEL, obs-text)
  cc_hex = 8,       ///< HEXDIG
  cc_host = 16,     ///< Host value: unreserved, sub-delims, pct-encoded, ':', '[', ']'
};

inline constexpr std::array<std::uint8_t, 256> char_table = [] {
  std::array<std::uint8_t, 256> t{};
  auto alpha = [](int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto digit = [](int c) { return c >= '0' && c <= '9'; };
  for (int c = 0; c < 256; ++c) {
    std::uint8_t v = 0;
    const bool vchar = c >= 0x21 && c <= 0x7e;
    if (alpha(c) || digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos)
      v |= cc_tchar;
    if (vchar || c >= 0x80) v |= cc_vchar;
    if (vchar) v |= cc_target;
    if (digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= cc_hex;
    if (alpha(c) || digit(c) || std::string_view("-._~!$&'()*+,;=%:[]").find(char(c)) != std::string_view::npos)
      v |= cc_host;
    t[static_cast<std::size_t>(c)] = v;
  }
  return t;
}();

constexpr bool has_class(char c, char_class k) noexcept {
  return (char_table[static_cast<unsigned char>(c)] & k) != 0;
}
constexpr bool is_tchar(char c) noexcept { return has_class(c, cc_tchar); }
constexpr bool is_ws(char c) noexcept { return c == ' ' || c == '\t'; }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
/// field-content character: field-vchar, SP or HTAB.
constexpr bool is_field_char(char c) noexcept { return has_class(c, cc_vchar) || is_ws(c); }

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// True when every character of `s` has class `k` (and `s` is not empty if `nonempty`).
constexpr bool all_of_class(std::string_view s, char_class k, bool nonempty = true) noexcept {
  if (nonempty && s.empty()) return false;
  for (char c : s)
    if (!has_class(c, k)) return false;
  return true;
}
constexpr bool is_token(std::string_view s) noexcept { return all_of_class(s, cc_tchar); }

/// A valid (trimmed) field value: field-content with no leading or trailing whitespace.
constexpr bool is_field_value(std::string_view s) noexcept {
  for (char c : s)
    if (!is_field_char(c)) return false;
  return s.empty() || (!is_ws(s.front()) && !is_ws(s.back()));
}

constexpr char to_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// ASCII case-insensitive equality (field names, tokens).
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

/// Strips optional whitespace (SP / HTAB) on both ends.
constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

/// Calls f(element) for each element of a comma-separated list (RFC 9110 §5.6.1), trimmed of
/// OWS; empty elements are skipped. Stops early and returns false if f returns false.
template <class F>
constexpr bool for_each_element(std::string_view list, F&& f) {
  while (true) {
    const auto comma = list.find(',');
    const auto elem = trim_ows(list.substr(0, comma));
    if (!elem.empty() && !f(elem)) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

/// True when the comma-separated list contains `token` (case-insensitive).
constexpr bool list_contains(std::string_view list, std::string_view token) {
  return !for_each_element(list, [&](std::string_view e) { return !iequals(e, token); });
}

/// Parses 1*DIGIT into a uint64; false on empty, other characters or overflow.
constexpr bool parse_decimal(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace rproxy::codec::http1::detail
