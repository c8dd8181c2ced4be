// rproxy/codec/mc/writer.hpp: appends Minecraft data types to a byte vector (big-endian
// integers, VarInt-prefixed UTF-8 strings, UUIDs as two big-endian longs, booleans as 0/1).
//
//     mc::bytes body;
//     mc::append_varint(body, 0x00);           // packet id (varint.hpp)
//     mc::append_string(body, "localhost");
//     mc::append_u16(body, 25565);
//
// Writers do not enforce protocol maxima (the packet encoders do, or document that they don't).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/uuid.hpp>
#include <rproxy/codec/mc/varint.hpp>

namespace rproxy::codec::mc {

namespace detail {
inline void append_be(bytes& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = n; i-- > 0;) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}
}  // namespace detail

inline void append_u8(bytes& out, std::uint8_t v) { out.push_back(static_cast<std::byte>(v)); }
inline void append_u16(bytes& out, std::uint16_t v) { detail::append_be(out, v, 2); }
inline void append_i32(bytes& out, std::int32_t v) {
  detail::append_be(out, static_cast<std::uint32_t>(v), 4);
}
inline void append_i64(bytes& out, std::int64_t v) {
  detail::append_be(out, static_cast<std::uint64_t>(v), 8);
}
inline void append_bool(bytes& out, bool v) { out.push_back(std::byte{v ? std::uint8_t{1} : std::uint8_t{0}}); }
inline void append_uuid(bytes& out, const uuid& u) {
  detail::append_be(out, u.hi, 8);
  detail::append_be(out, u.lo, 8);
}

/// A VarInt byte length followed by the bytes.
inline void append_prefixed_bytes(bytes& out, byte_view b) {
  append_varint(out, static_cast<std::int32_t>(b.size()));
  append(out, b);
}

/// A VarInt byte length followed by the UTF-8 bytes (written as given).
inline void append_string(bytes& out, std::string_view s) { append_prefixed_bytes(out, as_bytes(s)); }

}  // namespace rproxy::codec::mc
