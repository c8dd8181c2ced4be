// rproxy/codec/mc/utf.hpp: the Unicode conversions the Minecraft protocol needs.
//
// Modern strings are UTF-8 on the wire, but their maximum length is counted the Java way, in
// UTF-16 code units (a character outside the BMP counts 2). Legacy (pre-1.7) pings use UTF-16BE.
//
//     auto n = mc::utf16_length("h\xc3\xa9llo");         // 5, or nullopt if not valid UTF-8
//     mc::append_utf16be(out, "\xc2\xa7" "1");           // 00 a7 00 31
//     auto s = mc::utf16be_to_utf8(bytes);               // nullopt on an unpaired surrogate
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <rproxy/codec/mc/bytes.hpp>

namespace rproxy::codec::mc {

inline constexpr char32_t replacement_char = 0xFFFD;

namespace detail {

/// Decodes one UTF-8 scalar value at s[i]; advances i. Returns nullopt on an invalid sequence
/// (overlong forms, surrogates, values over U+10FFFF, truncation), advancing i by one byte.
inline std::optional<char32_t> next_scalar(std::string_view s, std::size_t& i) noexcept {
  const auto c0 = static_cast<unsigned char>(s[i]);
  if (c0 < 0x80) {
    ++i;
    return c0;
  }
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((c0 & 0xE0) == 0xC0) {
    len = 2, cp = c0 & 0x1F, min = 0x80;
  } else if ((c0 & 0xF0) == 0xE0) {
    len = 3, cp = c0 & 0x0F, min = 0x800;
  } else if ((c0 & 0xF8) == 0xF0) {
    len = 4, cp = c0 & 0x07, min = 0x10000;
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
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return std::nullopt;
  }
  i += len;
  return cp;
}

}  // namespace detail

/// Appends the UTF-8 encoding of a scalar value (surrogates and out-of-range become U+FFFD).
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = replacement_char;
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

/// Length of valid UTF-8 text in UTF-16 code units (Java's String.length()), or nullopt if
/// `s` is not valid UTF-8.
inline std::optional<std::size_t> utf16_length(std::string_view s) noexcept {
  std::size_t units = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto cp = detail::next_scalar(s, i);
    if (!cp) return std::nullopt;
    units += *cp >= 0x10000 ? 2 : 1;
  }
  return units;
}

inline bool is_valid_utf8(std::string_view s) noexcept { return utf16_length(s).has_value(); }

/// Calls f(char32_t) for each scalar value of `s`; invalid bytes become U+FFFD.
template <class F>
void for_each_scalar(std::string_view s, F&& f) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto cp = detail::next_scalar(s, i);
    f(cp ? *cp : replacement_char);
  }
}

/// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
inline std::string sanitize_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for_each_scalar(s, [&](char32_t cp) { append_utf8(out, cp); });
  return out;
}

/// Appends `s` (UTF-8; invalid bytes become U+FFFD) as UTF-16BE; returns the code units written.
inline std::size_t append_utf16be(bytes& out, std::string_view s) {
  std::size_t units = 0;
  auto unit = [&](unsigned u) {
    out.push_back(static_cast<std::byte>(u >> 8));
    out.push_back(static_cast<std::byte>(u & 0xFF));
    ++units;
  };
  for_each_scalar(s, [&](char32_t cp) {
    if (cp >= 0x10000) {
      const auto v = static_cast<unsigned>(cp - 0x10000);
      unit(0xD800 + (v >> 10));
      unit(0xDC00 + (v & 0x3FF));
    } else {
      unit(static_cast<unsigned>(cp));
    }
  });
  return units;
}

/// Decodes UTF-16BE (an even number of bytes) to UTF-8; nullopt on an odd size or an unpaired
/// surrogate.
inline std::optional<std::string> utf16be_to_utf8(byte_view in) {
  if (in.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 2);
  for (std::size_t i = 0; i < in.size(); i += 2) {
    const auto u = (static_cast<unsigned>(in[i]) << 8) | static_cast<unsigned>(in[i + 1]);
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (i + 3 >= in.size()) return std::nullopt;
      const auto lo = (static_cast<unsigned>(in[i + 2]) << 8) | static_cast<unsigned>(in[i + 3]);
      if (lo < 0xDC00 || lo > 0xDFFF) return std::nullopt;
      append_utf8(out, 0x10000 + (((u - 0xD800) << 10) | (lo - 0xDC00)));
      i += 2;
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
      return std::nullopt;
    } else {
      append_utf8(out, u);
    }
  }
  return out;
}

}  // namespace rproxy::codec::mc
