// rproxy/codec/ws/frame.hpp: the vocabulary of RFC 6455 framing shared by the parser and the
// writer: opcodes, roles, close codes, and masking.
//
//     ws::is_control(ws::opcode::ping);               // true
//     ws::is_valid_close_code(1000);                  // true; 1005, 1006, 999, 5000: false
//     ws::mask_key key{0x37, 0xfa, 0x21, 0x3d};
//     ws::apply_mask(payload, key);                   // XOR in place, 8 bytes at a time
//     ws::apply_mask(more, key, payload.size());      // the next piece goes on at its offset
//
// Masking is its own inverse: the same call masks and unmasks.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace rproxy::codec::ws {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Which end of the connection this codec is: servers receive masked frames and send
/// unmasked ones, clients the reverse (RFC 6455 §5.1, §5.3).
enum class role : std::uint8_t { server, client };

constexpr bool is_control(opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }
/// True for the six opcodes RFC 6455 defines; the others are reserved.
constexpr bool is_known(std::uint8_t op) noexcept { return op <= 2 || (op >= 8 && op <= 10); }

/// Close codes (RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number" registry).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;     ///< never sent: "the close frame had no code"
inline constexpr std::uint16_t abnormal = 1006;      ///< never sent: "closed without a close frame"
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;
}  // namespace close_code

/// True for a code an endpoint may put in a close frame: 1000-1003 and 1007-1014 (defined by
/// RFC 6455 or registered with IANA), 3000-3999 (registered by libraries and frameworks) and
/// 4000-4999 (private use). 1004 is reserved, 1005, 1006 and 1015 must never be sent, the rest
/// of 1000-2999 is unassigned and 0-999 and 5000+ are not used.
constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/// The 4-byte masking key of a masked frame, in wire order.
using mask_key = std::array<std::uint8_t, 4>;

/// XORs `data` with `key`, where data[0] is byte `offset` of the frame payload. Works 8 bytes
/// at a time; the same call masks and unmasks.
inline void apply_mask(std::span<char> data, const mask_key& key, std::uint64_t offset = 0) noexcept {
  // The key rotated so that its first byte lines up with data[0], repeated to 8 bytes.
  std::array<std::uint8_t, 8> k8{};
  for (std::size_t i = 0; i < 8; ++i) k8[i] = key[(offset + i) & 3];
  std::uint64_t k;
  std::memcpy(&k, k8.data(), 8);
  char* p = data.data();
  std::size_t n = data.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= k;
    std::memcpy(p, &w, 8);
  }
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>(static_cast<std::uint8_t>(p[i]) ^ k8[i]);
}

/// The fixed part of a frame (RFC 6455 §5.2), as read or to be written.
struct frame_header {
  bool fin = true;
  bool rsv1 = false;  ///< permessage-deflate: "this message is compressed" (first frame only)
  bool rsv2 = false;
  bool rsv3 = false;
  opcode op = opcode::text;
  bool masked = false;
  mask_key key{};
  std::uint64_t length = 0;

  friend bool operator==(const frame_header&, const frame_header&) = default;
};

/// Bytes of the header of a frame with `length` payload bytes in its smallest length form.
constexpr std::size_t header_size(std::uint64_t length, bool masked) noexcept {
  return 2 + (length <= 125 ? 0 : length <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}
/// The largest frame header: 2 bytes, a 64-bit length, a masking key.
inline constexpr std::size_t max_header_size = 14;
/// The largest control frame payload (RFC 6455 §5.5).
inline constexpr std::size_t max_control_payload = 125;

}  // namespace rproxy::codec::ws
