// rproxy/codec/mc/error.hpp: errors of the Minecraft codec (rproxy::codec::mc).
//
// Every decoder in codec/mc reports malformed input with one of these codes; running out of
// bytes while a frame is still incomplete is not an error but `need_more` (decode_result.hpp).
// The codes say the peer sent something wrong (condition::downstream) and are never retry-safe:
//
//     if (ec == rproxy::codec::mc::error::frame_too_large) metrics.bogus_length++;
//     if (ec == rproxy::condition::downstream) close_quietly();
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/core/error.hpp>

namespace rproxy::codec::mc {

enum class error {
  varint_too_long = 1,     ///< a VarInt over 5 bytes or a VarLong over 10 bytes
  varint_non_minimal,      ///< an overlong VarInt/VarLong encoding (e.g. 0x80 0x00 for 0)
  varint_overflow,         ///< the last VarInt/VarLong byte carries bits beyond 32/64
  truncated,               ///< a field runs past the end of its packet
  trailing_bytes,          ///< bytes left in a packet after its last field
  negative_length,         ///< a negative length prefix
  frame_too_large,         ///< a packet length over the configured limit
  empty_frame,             ///< a packet length of 0 (no room for a packet id)
  string_too_long,         ///< a string over its maximum length in chars or bytes
  invalid_utf8,            ///< a string that is not valid UTF-8
  bad_boolean,             ///< a boolean byte other than 0 or 1
  unexpected_packet_id,    ///< a packet id not valid at this point of the protocol
  bad_next_state,          ///< a handshake intention other than 1 (status), 2 (login), 3 (transfer)
  bad_username,            ///< an empty login name
  bad_compressed_length,   ///< a compressed data length that is negative, below the threshold,
                           ///< above the limit, or an uncompressed packet that had to be compressed
  decompression_failed,    ///< zlib failed, or inflated to a size other than the one declared
  bad_legacy_ping,         ///< a malformed pre-1.7 (0xFE) server list ping
  bad_json,                ///< malformed JSON (status response, text component)
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.mc"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::varint_too_long: return "VarInt/VarLong too long";
      case error::varint_non_minimal: return "overlong (non-minimal) VarInt/VarLong";
      case error::varint_overflow: return "VarInt/VarLong overflows its type";
      case error::truncated: return "field runs past the end of the packet";
      case error::trailing_bytes: return "unexpected bytes after the last field of a packet";
      case error::negative_length: return "negative length prefix";
      case error::frame_too_large: return "packet length over the limit";
      case error::empty_frame: return "empty packet (length 0)";
      case error::string_too_long: return "string too long";
      case error::invalid_utf8: return "string is not valid UTF-8";
      case error::bad_boolean: return "boolean byte is not 0 or 1";
      case error::unexpected_packet_id: return "unexpected packet id";
      case error::bad_next_state: return "handshake next state is not 1, 2 or 3";
      case error::bad_username: return "empty login name";
      case error::bad_compressed_length: return "bad compressed packet data length";
      case error::decompression_failed: return "zlib decompression failed";
      case error::bad_legacy_ping: return "malformed legacy server list ping";
      case error::bad_json: return "malformed JSON";
    }
    return "unknown rproxy.mc error";
  }
  rproxy::condition source(int) const noexcept override { return rproxy::condition::downstream; }
  bool retry_safe(int) const noexcept override { return false; }
};

}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace rproxy::codec::mc

template <>
struct std::is_error_code_enum<rproxy::codec::mc::error> : std::true_type {};
