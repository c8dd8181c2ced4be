// rproxy/codec/mc/frame.hpp: Minecraft packet framing without compression:
// [VarInt length][length bytes of payload], for any byte split of the stream.
//
// The length is checked against a limit before anything is buffered: set it small before login
// (`handshake_max_length`), larger after. Lengths over the limit, negative, 0, or encoded as an
// overlong VarInt are errors as soon as they can be told apart from a partial prefix; a
// partial frame is need_more.
//
//     auto f = mc::decode_frame(buf, mc::handshake_max_length);
//     if (f) { use(f->payload); buf = buf.subspan(f.size()); }
//     mc::append_frame(out, body);                     // prefix + body
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/decode_result.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/varint.hpp>

namespace rproxy::codec::mc {

/// The vanilla limit: the length prefix is at most 3 bytes, so 2^21 - 1.
inline constexpr std::size_t max_packet_length = 2097151;
/// A limit for the handshaking state (and a status/login start exchange): a handshake is at
/// most ~780 bytes, a 1.19 login start with a real signing key ~1 KiB.
inline constexpr std::size_t handshake_max_length = 2048;

struct frame {
  byte_view payload;  ///< the packet bytes after the length prefix
  byte_view raw;      ///< length prefix + payload, exactly as received
};

/// Decodes one frame from the start of `in`; `size()` of the result is raw.size().
inline decode_result<frame> decode_frame(byte_view in, std::size_t max_length = max_packet_length) {
  using R = decode_result<frame>;
  max_length = std::min<std::size_t>(max_length, 0x7fffffff);
  const auto max_prefix = varint_size(static_cast<std::int32_t>(max_length));
  auto len = decode_varint(in.first(std::min(in.size(), max_prefix)));
  if (len.need_more()) {
    // A VarInt that needs more than max_prefix bytes encodes a length over the limit.
    return in.size() >= max_prefix ? R::failure(error::frame_too_large) : R::incomplete();
  }
  if (len.failed()) return R::failure(len.error());
  if (len.value() < 0) return R::failure(error::negative_length);
  if (len.value() == 0) return R::failure(error::empty_frame);
  const auto n = static_cast<std::size_t>(len.value());
  if (n > max_length) return R::failure(error::frame_too_large);
  if (in.size() - len.size() < n) return R::incomplete();
  const auto total = len.size() + n;
  return R::ok(frame{in.subspan(len.size(), n), in.first(total)}, total);
}

/// Appends [VarInt payload.size()][payload].
inline void append_frame(bytes& out, byte_view payload) {
  append_varint(out, static_cast<std::int32_t>(payload.size()));
  append(out, payload);
}

}  // namespace rproxy::codec::mc
