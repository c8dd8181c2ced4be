// rproxy/codec/mc/bytes.hpp: the byte types every codec/mc header speaks.
//
// Decoders take a `byte_view` (a span over received bytes, never copied); encoders append to a
// `bytes` vector so several packets can be corked into one write:
//
//     mc::bytes out;
//     mc::append_handshake(out, hs);                 // one framed packet
//     auto v = mc::as_bytes("\x10\x00");             // literal bytes for tests
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace rproxy::codec::mc {

using byte_view = std::span<const std::byte>;
using bytes = std::vector<std::byte>;

/// Views the characters of a string as bytes (no copy).
inline byte_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// Views bytes as characters (no copy).
inline std::string_view as_chars(byte_view b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Copies a string's characters into a new byte vector.
inline bytes to_bytes(std::string_view s) {
  const auto v = as_bytes(s);
  return bytes(v.begin(), v.end());
}

/// Appends a view to a byte vector.
inline void append(bytes& out, byte_view v) { out.insert(out.end(), v.begin(), v.end()); }

}  // namespace rproxy::codec::mc
