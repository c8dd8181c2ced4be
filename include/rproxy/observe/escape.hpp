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

namespace rproxy::observe {

namespace detail {

template <class Buf>
void append(Buf& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

/// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are invalid.
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t min = 0;
  std::uint32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) n = 2, min = 0x80, cp = b0 & 0x1F;
  else if ((b0 & 0xF0) == 0xE0) n = 3, min = 0x800, cp = b0 & 0x0F;
  else if ((b0 & 0xF8) == 0xF0) n = 4, min = 0x10000, cp = b0 & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;  // overlong, range, surrogate
  return n;
}

inline constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace detail

/// Appends `s` with invalid UTF-8 bytes replaced by U+FFFD.
template <class Buf>
void append_utf8_sanitized(Buf& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = detail::utf8_sequence_length(s, i);
    if (n == 0) {
      detail::append(out, detail::replacement_char);
      ++i;
    } else {
      detail::append(out, s.substr(i, n));
      i += n;
    }
  }
}

/// `s` with invalid UTF-8 replaced by U+FFFD.
inline std::string utf8_sanitized(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_utf8_sanitized(out, s);
  return out;
}

/// Appends `s` as a JSON string literal, quotes included (RFC 8259; control characters as
/// \uXXXX or their short forms; invalid UTF-8 as U+FFFD).
template <class Buf>
void append_json_string(Buf& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = detail::utf8_sequence_length(s, i);
      detail::append(out, n ? s.substr(i, n) : detail::replacement_char);
      i += n ? n : 1;
      continue;
    }
    switch (c) {
      case '"': detail::append(out, "\\\""); break;
      case '\\': detail::append(out, "\\\\"); break;
      case '\n': detail::append(out, "\\n"); break;
      case '\r': detail::append(out, "\\r"); break;
      case '\t': detail::append(out, "\\t"); break;
      case '\b': detail::append(out, "\\b"); break;
      case '\f': detail::append(out, "\\f"); break;
      default:
        if (c < 0x20 || c == 0x7F) {
          const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
          out.append(esc, esc + sizeof esc);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

/// Appends a Prometheus label value body (no quotes): \ " and newline escaped, UTF-8 sanitized.
template <class Buf>
void append_label_value(Buf& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = detail::utf8_sequence_length(s, i);
      detail::append(out, n ? s.substr(i, n) : detail::replacement_char);
      i += n ? n : 1;
      continue;
    }
    if (c == '\\') detail::append(out, "\\\\");
    else if (c == '"') detail::append(out, "\\\"");
    else if (c == '\n') detail::append(out, "\\n");
    else out.push_back(static_cast<char>(c));
    ++i;
  }
}

/// Appends a Prometheus HELP text: \ and newline escaped, UTF-8 sanitized.
template <class Buf>
void append_help_text(Buf& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = detail::utf8_sequence_length(s, i);
      detail::append(out, n ? s.substr(i, n) : detail::replacement_char);
      i += n ? n : 1;
      continue;
    }
    if (c == '\\') detail::append(out, "\\\\");
    else if (c == '\n') detail::append(out, "\\n");
    else out.push_back(static_cast<char>(c));
    ++i;
  }
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
