// rproxy/codec/ws/error.hpp: errors of the WebSocket codec (rproxy::codec::ws).
//
// Every error the frame parser reports is the peer's fault (condition::downstream), never
// retry-safe, and maps to the close code the endpoint sends before closing (RFC 6455 §7.4.1):
//
//     auto r = parser.parse(buf);
//     if (r.what == ws::event::error) {
//       ws::append_close(out, ws::close_code_for(r.error), {});   // 1002, 1007 or 1009
//       log(make_error_code(r.error).message());
//     }
//
// Running out of bytes is not an error but event::need_more (parser.hpp). Handshake failures
// have their own enum (handshake.hpp), since they are answered with HTTP, not a close frame.
#pragma once

#include <rproxy/core/error.hpp>

#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>

namespace rproxy::codec::ws {

enum class error : std::uint8_t {
  unmasked_frame = 1,     ///< a client frame without the MASK bit (or a masked server frame)
  reserved_bits,          ///< RSV1-3 set without an extension that defines them
  bad_opcode,             ///< a reserved opcode (3-7, 0xB-0xF)
  bad_control_frame,      ///< a control frame over 125 bytes, or fragmented
  bad_continuation,       ///< a continuation frame with no message open, or a new message
                          ///< frame while one is open
  bad_length,             ///< a 64-bit length with its most significant bit set
  bad_close_payload,      ///< a close payload of 1 byte, or an invalid close code
  invalid_utf8,           ///< a text message or close reason that is not UTF-8
  frame_too_big,          ///< a frame payload over the frame limit
  message_too_big,        ///< a message over the message limit (after decompression)
  bad_compressed_data,    ///< permessage-deflate data zlib refuses
  frame_after_close,      ///< a frame after the peer's close frame
};

/// The close code to send for a parser error (RFC 6455 §7.4.1).
constexpr std::uint16_t close_code_for(error e) noexcept {
  switch (e) {
    case error::invalid_utf8:
    case error::bad_compressed_data: return 1007;
    case error::frame_too_big:
    case error::message_too_big: return 1009;
    default: return 1002;
  }
}

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.ws"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::unmasked_frame: return "frame masking does not match the sender's role";
      case error::reserved_bits: return "reserved bits set without a negotiated extension";
      case error::bad_opcode: return "reserved opcode";
      case error::bad_control_frame: return "control frame over 125 bytes or fragmented";
      case error::bad_continuation: return "continuation frame out of sequence";
      case error::bad_length: return "64-bit payload length with the most significant bit set";
      case error::bad_close_payload: return "invalid close frame payload or close code";
      case error::invalid_utf8: return "text is not valid UTF-8";
      case error::frame_too_big: return "frame payload over the limit";
      case error::message_too_big: return "message over the limit";
      case error::bad_compressed_data: return "invalid permessage-deflate data";
      case error::frame_after_close: return "frame received after a close frame";
    }
    return "unknown rproxy.ws error";
  }
  rproxy::condition source(int) const noexcept override { return rproxy::condition::downstream; }
  bool retry_safe(int) const noexcept override { return false; }
};

}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace rproxy::codec::ws

template <>
struct std::is_error_code_enum<rproxy::codec::ws::error> : std::true_type {};
