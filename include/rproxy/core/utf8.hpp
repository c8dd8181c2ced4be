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
//
// Text that arrives in pieces (WebSocket fragments) is checked with a `validator`, which keeps
// three bytes of state between pieces and fails on the first byte that cannot begin or continue
// a valid sequence (fail fast: "\xed\xa0" is refused at its second byte, before the third):
//
//     rproxy::utf8::validator v;
//     if (!v.feed(piece)) fail();            // per piece, in order
//     if (!v.complete()) fail();             // at the end: no sequence left truncated
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
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

/// Incremental strict validation of a text that arrives in pieces (same rules as is_valid()).
/// feed() returns false at the first byte that no valid text can contain at that point, so
/// the error is known as soon as that byte arrives; after a false the validator stays failed
/// until reset().
class validator {
public:
  /// Checks the next piece of the text; false once the text can no longer be valid.
  bool feed(std::string_view s) noexcept {
    if (failed_) return false;
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
      if (need_ == 0) {
        // ASCII fast path, 8 bytes at a time.
        while (i + 8 <= n) {
          std::uint64_t w;
          std::memcpy(&w, s.data() + i, 8);
          if ((w & 0x8080808080808080ull) != 0) break;
          i += 8;
        }
        if (i == n) break;
        const auto c = static_cast<unsigned char>(s[i++]);
        if (c < 0x80) continue;
        if (c >= 0xC2 && c <= 0xDF) {
          need_ = 1, lo_ = 0x80, hi_ = 0xBF;
        } else if (c == 0xE0) {
          need_ = 2, lo_ = 0xA0, hi_ = 0xBF;  // no overlong 3-byte forms
        } else if (c == 0xED) {
          need_ = 2, lo_ = 0x80, hi_ = 0x9F;  // no surrogates
        } else if (c >= 0xE1 && c <= 0xEF) {
          need_ = 2, lo_ = 0x80, hi_ = 0xBF;
        } else if (c == 0xF0) {
          need_ = 3, lo_ = 0x90, hi_ = 0xBF;  // no overlong 4-byte forms
        } else if (c >= 0xF1 && c <= 0xF3) {
          need_ = 3, lo_ = 0x80, hi_ = 0xBF;
        } else if (c == 0xF4) {
          need_ = 3, lo_ = 0x80, hi_ = 0x8F;  // nothing above U+10FFFF
        } else {
          return fail(i - 1);
        }
      } else {
        const auto c = static_cast<unsigned char>(s[i++]);
        if (c < lo_ || c > hi_) return fail(i - 1);
        --need_;
        lo_ = 0x80, hi_ = 0xBF;
      }
    }
    return true;
  }
  /// True when the text fed so far is valid and ends on a sequence boundary.
  bool complete() const noexcept { return !failed_ && need_ == 0; }
  /// True after a failed feed().
  bool failed() const noexcept { return failed_; }
  /// Offset, in the piece of the failed feed(), of the first invalid byte.
  std::size_t error_offset() const noexcept { return error_offset_; }
  void reset() noexcept { *this = validator{}; }

private:
  bool fail(std::size_t at) noexcept {
    failed_ = true;
    error_offset_ = at;
    return false;
  }
  std::size_t error_offset_ = 0;
  std::uint8_t need_ = 0;   // continuation bytes still expected
  std::uint8_t lo_ = 0x80;  // bounds of the next continuation byte
  std::uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

}  // namespace rproxy::utf8
