// rproxy/codec/ws/writer.hpp: WebSocket frames to bytes (RFC 6455 §5.2, RFC 7692 §6).
//
// Headers use the smallest length form. A server's frames are unmasked; a client passes a
// masking key per frame (from a strong random source, RFC 6455 §10.3):
//
//     std::string out;                                        // a connection's output, corked
//     ws::append_frame(out, ws::opcode::text, "Hello");       // 81 05 48 65 6c 6c 6f
//     ws::append_frame(out, ws::opcode::pong, ping_payload);
//     ws::append_close(out, 1000, "bye");                     // code + reason
//     ws::append_frame(out, ws::opcode::text, "Hi", {.mask = key});   // a client's frame
//
//     ws::append_message(out, ws::opcode::binary, big, {.fragment_size = 64 * 1024});
//     ws::deflater d{15, /*reset_each_message=*/false};       // permessage-deflate (deflate.hpp)
//     ws::append_message(out, ws::opcode::text, text, {.compress = &d});  // RSV1 on frame 1
//
// Broadcast: encode a message once and write the same bytes to every connection (server
// frames are unmasked, so they do not depend on the connection):
//
//     const std::string frame = ws::encode_message(ws::opcode::text, news);
//     // compressed for all: a deflater with reset_each_message, for connections that
//     // negotiated server_no_context_takeover and a window >= the deflater's
//     ws::deflater shared{15, true};
//     const std::string zframe = ws::encode_message(ws::opcode::text, news, {.compress = &shared});
#pragma once

#include <rproxy/codec/ws/deflate.hpp>
#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/core/utf8.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace rproxy::codec::ws {

/// Writes the header of `h` (smallest length form) to `out`; returns its size.
inline std::size_t write_header(std::span<char, max_header_size> out, const frame_header& h) noexcept {
  std::size_t n = 0;
  out[n++] = static_cast<char>((h.fin ? 0x80 : 0) | (h.rsv1 ? 0x40 : 0) | (h.rsv2 ? 0x20 : 0) |
                               (h.rsv3 ? 0x10 : 0) | static_cast<std::uint8_t>(h.op));
  const char mask_bit = static_cast<char>(h.masked ? 0x80 : 0);
  if (h.length <= 125) {
    out[n++] = static_cast<char>(mask_bit | static_cast<char>(h.length));
  } else if (h.length <= 0xFFFF) {
    out[n++] = static_cast<char>(mask_bit | 126);
    out[n++] = static_cast<char>(h.length >> 8);
    out[n++] = static_cast<char>(h.length & 0xFF);
  } else {
    out[n++] = static_cast<char>(mask_bit | 127);
    for (int s = 56; s >= 0; s -= 8) out[n++] = static_cast<char>((h.length >> s) & 0xFF);
  }
  if (h.masked)
    for (auto b : h.key) out[n++] = static_cast<char>(b);
  return n;
}

struct frame_options {
  bool fin = true;
  bool rsv1 = false;               ///< permessage-deflate: the message's payload is compressed
  std::optional<mask_key> mask{};  ///< a client's frame: mask with this key
};

/// Appends one frame carrying `payload` (masked with opt.mask, if any). The caller keeps the
/// protocol's rules (control frames <= 125 bytes and unfragmented, continuation order).
inline void append_frame(std::string& out, opcode op, std::string_view payload, const frame_options& opt = {}) {
  frame_header h;
  h.fin = opt.fin;
  h.rsv1 = opt.rsv1;
  h.op = op;
  h.masked = opt.mask.has_value();
  if (h.masked) h.key = *opt.mask;
  h.length = payload.size();
  std::array<char, max_header_size> head{};
  const std::size_t hs = write_header(head, h);
  const std::size_t at = out.size();
  out.reserve(at + hs + payload.size());
  out.append(head.data(), hs).append(payload);
  if (h.masked) apply_mask(std::span<char>(out.data() + at + hs, payload.size()), h.key);
}

/// Appends a close frame: `code` (0: no payload at all) and `reason`, cut at a UTF-8 boundary
/// so the payload stays within 125 bytes.
inline void append_close(std::string& out, std::uint16_t code, std::string_view reason,
                         std::optional<mask_key> mask = {}) {
  std::size_t n = 0;  // reason bytes kept
  if (code != 0) {
    n = std::min<std::size_t>(reason.size(), max_control_payload - 2);
    while (n > 0 && n < reason.size() && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  }
  std::array<char, max_control_payload> payload{};
  std::size_t len = 0;
  if (code != 0) {
    payload[0] = static_cast<char>(code >> 8);
    payload[1] = static_cast<char>(code & 0xFF);
    std::copy_n(reason.data(), n, payload.data() + 2);
    len = 2 + n;
  }
  append_frame(out, opcode::close, std::string_view(payload.data(), len), {.fin = true, .rsv1 = false, .mask = mask});
}

struct message_options {
  /// Split the (compressed) payload into frames of at most this many bytes; 0: one frame.
  std::size_t fragment_size = 0;
  /// Compress with this permessage-deflate compressor (RSV1 on the first frame).
  deflater* compress = nullptr;
};

/// Appends a whole data message as one or more frames. `next_key` is called once per frame for
/// its masking key (a client); pass nothing for a server's unmasked frames. False if the
/// compressor failed (nothing is appended then).
template <class KeySource = std::nullptr_t>
bool append_message(std::string& out, opcode op, std::string_view payload, const message_options& opt = {},
                    KeySource&& next_key = nullptr) {
  std::string compressed;
  if (opt.compress != nullptr) {
    if (!opt.compress->compress(payload, compressed)) return false;
    payload = compressed;
  }
  const std::size_t step = opt.fragment_size == 0 ? payload.size() : opt.fragment_size;
  std::size_t at = 0;
  bool first = true;
  do {
    const std::size_t n = std::min(step, payload.size() - at);
    frame_options f;
    f.fin = at + n == payload.size();
    f.rsv1 = first && opt.compress != nullptr;
    if constexpr (!std::is_same_v<std::remove_cvref_t<KeySource>, std::nullptr_t>) f.mask = next_key();
    append_frame(out, first ? op : opcode::continuation, payload.substr(at, n), f);
    at += n;
    first = false;
  } while (at < payload.size());
  return true;
}

/// A server's message as bytes, to be written unchanged to many connections (see the top).
/// Empty if the compressor failed.
inline std::string encode_message(opcode op, std::string_view payload, const message_options& opt = {}) {
  std::string out;
  if (!append_message(out, op, payload, opt)) out.clear();
  return out;
}

}  // namespace rproxy::codec::ws
