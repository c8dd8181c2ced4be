// rproxy/codec/mc/varint.hpp: Minecraft VarInt (int32, 1-5 bytes) and VarLong (int64, 1-10
// bytes): little-endian groups of 7 bits, high bit set on every byte but the last; negative
// numbers are two's complement, so they always take the maximum length.
//
// Decoding is strict: more than 5/10 bytes (varint_too_long), bits beyond 32/64 in the last byte
// (varint_overflow) and overlong encodings such as 0x80 0x00 (varint_non_minimal) are errors, so
// any accepted VarInt re-encodes to the same bytes. A prefix that may still become valid is
// need_more, which makes these decoders usable on a partially received stream:
//
//     auto r = mc::decode_varint(buf);        // r.value() == 25565, r.size() == 3 for dd c7 01
//     mc::append_varint(out, -1);             // ff ff ff ff 0f
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/decode_result.hpp>
#include <rproxy/codec/mc/error.hpp>

namespace rproxy::codec::mc {

inline constexpr std::size_t max_varint_size = 5;
inline constexpr std::size_t max_varlong_size = 10;

namespace detail {

template <class Signed, class Unsigned, std::size_t MaxBytes>
decode_result<Signed> decode_var(byte_view in) {
  constexpr unsigned value_bits = sizeof(Unsigned) * 8;
  constexpr unsigned last_bits = value_bits - 7 * (MaxBytes - 1);  // 4 for VarInt, 1 for VarLong
  Unsigned v = 0;
  for (std::size_t i = 0; i < MaxBytes; ++i) {
    if (i >= in.size()) return decode_result<Signed>::incomplete();
    const auto b = static_cast<unsigned>(in[i]);
    if (i == MaxBytes - 1) {
      if (b & 0x80u) return decode_result<Signed>::failure(error::varint_too_long);
      if (b >> last_bits) return decode_result<Signed>::failure(error::varint_overflow);
    }
    v |= static_cast<Unsigned>(b & 0x7fu) << (7 * i);
    if ((b & 0x80u) == 0) {
      if (i > 0 && b == 0) return decode_result<Signed>::failure(error::varint_non_minimal);
      return decode_result<Signed>::ok(static_cast<Signed>(v), i + 1);
    }
  }
  return decode_result<Signed>::failure(error::varint_too_long);  // unreachable
}

template <class Unsigned, std::size_t MaxBytes>
constexpr std::size_t encode_var(Unsigned v, std::array<std::byte, MaxBytes>& buf) noexcept {
  std::size_t n = 0;
  do {
    auto b = static_cast<unsigned>(v & 0x7fu);
    v >>= 7;
    if (v != 0) b |= 0x80u;
    buf[n++] = static_cast<std::byte>(b);
  } while (v != 0);
  return n;
}

}  // namespace detail

/// Decodes a VarInt from the start of `in`.
inline decode_result<std::int32_t> decode_varint(byte_view in) {
  return detail::decode_var<std::int32_t, std::uint32_t, max_varint_size>(in);
}

/// Decodes a VarLong from the start of `in`.
inline decode_result<std::int64_t> decode_varlong(byte_view in) {
  return detail::decode_var<std::int64_t, std::uint64_t, max_varlong_size>(in);
}

/// Encoded size of a VarInt, 1..5.
constexpr std::size_t varint_size(std::int32_t v) noexcept {
  auto u = static_cast<std::uint32_t>(v);
  std::size_t n = 1;
  while (u >= 0x80u) {
    u >>= 7;
    ++n;
  }
  return n;
}

/// Encoded size of a VarLong, 1..10.
constexpr std::size_t varlong_size(std::int64_t v) noexcept {
  auto u = static_cast<std::uint64_t>(v);
  std::size_t n = 1;
  while (u >= 0x80u) {
    u >>= 7;
    ++n;
  }
  return n;
}

inline void append_varint(bytes& out, std::int32_t v) {
  std::array<std::byte, max_varint_size> buf{};
  const auto n = detail::encode_var(static_cast<std::uint32_t>(v), buf);
  out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

inline void append_varlong(bytes& out, std::int64_t v) {
  std::array<std::byte, max_varlong_size> buf{};
  const auto n = detail::encode_var(static_cast<std::uint64_t>(v), buf);
  out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace rproxy::codec::mc
