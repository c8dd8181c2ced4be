// rproxy/observe/escape.hpp: text escaping shared by the Prometheus exposition and the logs.
//
// Everything here appends to a caller's buffer (std::string or fmt::memory_buffer: anything
// with push_back and append(first, last)) and never fails: invalid UTF-8 becomes U+FFFD, so a
// hostile byte string can neither break a JSON log line nor a scrape.
//
//     std::string out;
//     rproxy::observe::append_json_string(out, "say \"hi\"\n");   // "\"say \\\"hi\\\"\\n\""
//     rproxy::observe::append_label_value(out, "a\\b");            // a\\b (no quotes)
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include <rproxy/core/json.hpp>
#include <rproxy/core/utf8.hpp>

namespace rproxy::observe {

namespace detail {

template <class Buf>
void append(Buf& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

/// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are invalid.
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  std::size_t j = i;
  return utf8::decode(s, j) ? j - i : 0;
}

inline constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  // U+FFFD

/// Appends `s` byte by byte through `ascii(out, c)` for ASCII bytes; valid UTF-8 sequences are
/// copied as they are and each invalid byte becomes U+FFFD. Every escaper below is one of these.
template <class Buf, class Ascii>
void append_escaped(Buf& out, std::string_view s, Ascii ascii) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(s, i);
      append(out, n ? s.substr(i, n) : replacement_char);
      i += n ? n : 1;
      continue;
    }
    ascii(out, c);
    ++i;
  }
}

}  // namespace detail

/// Appends `s` with invalid UTF-8 bytes replaced by U+FFFD.
template <class Buf>
void append_utf8_sanitized(Buf& out, std::string_view s) {
  detail::append_escaped(out, s, [](Buf& o, unsigned char c) { o.push_back(static_cast<char>(c)); });
}

/// `s` with invalid UTF-8 replaced by U+FFFD.
inline std::string utf8_sanitized(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_utf8_sanitized(out, s);
  return out;
}

/// Appends `s` as a JSON string literal, quotes included (RFC 8259; control characters as
/// \uXXXX or their short forms; invalid UTF-8 as U+FFFD): json::append_string.
template <class Buf>
void append_json_string(Buf& out, std::string_view s) {
  json::append_string(out, s);
}

/// Appends a Prometheus label value body (no quotes): \ " and newline escaped, UTF-8 sanitized.
template <class Buf>
void append_label_value(Buf& out, std::string_view s) {
  detail::append_escaped(out, s, [](Buf& o, unsigned char c) {
    if (c == '\\') detail::append(o, "\\\\");
    else if (c == '"') detail::append(o, "\\\"");
    else if (c == '\n') detail::append(o, "\\n");
    else o.push_back(static_cast<char>(c));
  });
}

/// Appends a Prometheus HELP text: \ and newline escaped, UTF-8 sanitized.
template <class Buf>
void append_help_text(Buf& out, std::string_view s) {
  detail::append_escaped(out, s, [](Buf& o, unsigned char c) {
    if (c == '\\') detail::append(o, "\\\\");
    else if (c == '\n') detail::append(o, "\\n");
    else o.push_back(static_cast<char>(c));
  });
}

/// Appends a number the way Prometheus reads it: shortest round-trip form, or NaN, +Inf, -Inf.
template <class Buf>
void append_prometheus_number(Buf& out, double v) {
  if (std::isnan(v)) return detail::append(out, "NaN");
  if (std::isinf(v)) return detail::append(out, v > 0 ? "+Inf" : "-Inf");
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// Appends an integer in decimal.
template <class Buf, class Int>
  requires std::is_integral_v<Int>
void append_integer(Buf& out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace rproxy::observe
