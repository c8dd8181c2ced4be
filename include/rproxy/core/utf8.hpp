// rproxy/core/utf8.hpp: strict UTF-8 decoding, validation and encoding (RFC 3629), shared by
// every parser and writer that handles text from the network (core/json.hpp, codec/mc, ...).
//
// Strict means: shortest form only, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
// truncated sequence. Decoding never reads past the view.
//
//     std::size_t i = 0;
//     while (i < s.size())
//       if (auto cp = rproxy::utf8::decode(s, i)) use(*cp); else bad();   // i always advances
//     rproxy::utf8::is_valid("h\xc3\xa9llo");                               // true
//     std::string out; rproxy::utf8::append(out, U'\u00e9');                // "\xc3\xa9"
//     rproxy::utf8::sanitize("a\xff" "b");                                  // "a\uFFFDb" in UTF-8
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rproxy::utf8 {

/// U+FFFD, what invalid input becomes where it is replaced rather than refused.
inline constexpr char32_t replacement_char = 0xFFFD;

/// True for a Unicode scalar value (a code point that is not a surrogate).
constexpr bool is_scalar(char32_t cp) noexcept { return cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF); }

/// Decodes the scalar value starting at s[i] (i < s.size()) and advances i past it. On an
/// invalid or truncated sequence returns nullopt and advances i by one byte.
inline std::optional<char32_t> decode(std::string_view s, std::size_t& i) noexcept {
  const auto c0 = static_cast<unsigned char>(s[i]);
  if (c0 < 0x80) {
    ++i;
    return c0;
  }
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    len = 2, cp = c0 & 0x1Fu, min = 0x80;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    len = 3, cp = c0 & 0x0Fu, min = 0x800;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    len = 4, cp = c0 & 0x07u, min = 0x10000;
  } else {
    ++i;
    return std::nullopt;
  }
  if (s.size() - i < len) {
    ++i;
    return std::nullopt;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) {
      ++i;
      return std::nullopt;
    }
    cp = (cp << 6) | (c & 0x3Fu);
  }
  if (cp < min || !is_scalar(cp)) {
    ++i;
    return std::nullopt;
  }
  i += len;
  return cp;
}

/// True when all of `s` is valid UTF-8.
inline bool is_valid(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size())
    if (!decode(s, i)) return false;
  return true;
}

/// Appends the UTF-8 encoding of `cp`; a surrogate or a value over U+10FFFF becomes U+FFFD.
inline void append(std::string& out, char32_t cp) {
  if (!is_scalar(cp)) cp = replacement_char;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// Calls f(char32_t) for each scalar value of `s`, in order; each invalid byte becomes U+FFFD.
template <class F>
void for_each(std::string_view s, F&& f) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto cp = decode(s, i);
    f(cp ? *cp : replacement_char);
  }
}

/// `s` with each invalid byte replaced by U+FFFD (a copy of `s` when it is valid).
inline std::string sanitize(std::string_view s) {
  if (is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for_each(s, [&](char32_t cp) { append(out, cp); });
  return out;
}

}  // namespace rproxy::utf8
