// rproxy/codec/mc/utf.hpp: the Unicode conversions the Minecraft protocol needs.
//
// Modern strings are UTF-8 on the wire, but their maximum length is counted the Java way, in
// UTF-16 code units (a character outside the BMP counts 2). Legacy (pre-1.7) pings use UTF-16BE.
// UTF-8 itself (validation, decoding, U+FFFD replacement) is rproxy/core/utf8.hpp.
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
#include <rproxy/core/utf8.hpp>

namespace rproxy::codec::mc {

/// Length of valid UTF-8 text in UTF-16 code units (Java's String.length()), or nullopt if
/// `s` is not valid UTF-8.
inline std::optional<std::size_t> utf16_length(std::string_view s) noexcept {
  std::size_t units = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto cp = utf8::decode(s, i);
    if (!cp) return std::nullopt;
    units += *cp >= 0x10000 ? 2 : 1;
  }
  return units;
}

/// Appends `s` (UTF-8; invalid bytes become U+FFFD) as UTF-16BE; returns the code units written.
inline std::size_t append_utf16be(bytes& out, std::string_view s) {
  std::size_t units = 0;
  auto unit = [&](unsigned u) {
    out.push_back(static_cast<std::byte>(u >> 8));
    out.push_back(static_cast<std::byte>(u & 0xFF));
    ++units;
  };
  utf8::for_each(s, [&](char32_t cp) {
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
      utf8::append(out, 0x10000 + (((u - 0xD800) << 10) | (lo - 0xDC00)));
      i += 2;
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
      return std::nullopt;
    } else {
      utf8::append(out, u);
    }
  }
  return out;
}

}  // namespace rproxy::codec::mc
