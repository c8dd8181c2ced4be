// rproxy/codec/mc/packet.hpp: one decoded Minecraft packet (views into a receive buffer), the
// connection states, and the packet ids codec/mc knows.
//
// A packet's `body` is the packet id (VarInt) followed by its fields, already decompressed;
// `raw` is the exact frame as received (length prefix included), for byte-exact replay:
//
//     auto p = mc::split_packet(body);        // p->id == 0x00, p->fields: the rest
#pragma once

#include <cstdint>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/varint.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::mc {

/// The protocol state of a connection; packet ids are only meaningful within one state.
enum class state : std::uint8_t { handshaking, status, login, configuration, play };

/// Packet ids (serverbound "sb", clientbound "cb") for the states codec/mc handles. They have
/// been the same in every version from 1.7.2 to the newest release in versions.hpp.
namespace packet_id {
inline constexpr std::int32_t handshake = 0x00;           ///< handshaking, sb
inline constexpr std::int32_t status_request = 0x00;      ///< status, sb (no fields)
inline constexpr std::int32_t status_response = 0x00;     ///< status, cb (JSON string)
inline constexpr std::int32_t ping_request = 0x01;        ///< status, sb (long)
inline constexpr std::int32_t pong_response = 0x01;       ///< status, cb (long)
inline constexpr std::int32_t login_start = 0x00;         ///< login, sb
inline constexpr std::int32_t login_disconnect = 0x00;    ///< login, cb (JSON text component)
inline constexpr std::int32_t encryption_request = 0x01;  ///< login, cb
inline constexpr std::int32_t login_success = 0x02;       ///< login, cb
inline constexpr std::int32_t set_compression = 0x03;     ///< login, cb (VarInt threshold), 1.8+
}  // namespace packet_id

/// A packet: views into the buffer it was decoded from.
struct packet {
  std::int32_t id = 0;
  byte_view fields;  ///< the bytes after the packet id
  byte_view body;    ///< packet id + fields (decompressed when compression is on)
  byte_view raw;     ///< the frame exactly as received, length prefix included
};

/// Splits a packet body into its id and fields (`raw` is left empty).
inline result<packet> split_packet(byte_view body) {
  auto id = decode_varint(body);
  if (id.need_more()) return failure(make_error_code(error::truncated));
  if (id.failed()) return failure(id.error());
  return packet{id.value(), body.subspan(id.size()), body, {}};
}

}  // namespace rproxy::codec::mc
