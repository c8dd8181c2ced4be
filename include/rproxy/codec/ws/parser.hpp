// rproxy/codec/ws/parser.hpp: a sans-I/O WebSocket frame parser (RFC 6455 §5, RFC 7692 §6).
//
// Feed it the unconsumed bytes of your receive buffer (mutable: masked payloads are unmasked
// in place); each call returns one event and how many bytes to discard:
//
//     const ws::parser_options opt{.side = ws::role::server, .max_message_size = 1 << 20};
//     ws::parser p{opt};                               // opt outlives p (shared, not copied)
//     if (negotiated) p.set_deflate(*negotiated);      // handshake.hpp
//     for (;;) {
//       auto r = p.parse(buf.writable_unconsumed());   // std::span<char>, from the first byte
//       switch (r.what) {
//         case ws::event::need_more: read_more_into(buf); break;
//         case ws::event::data: msg.append(r.data); if (r.last) on_message(r.op, msg); break;
//         case ws::event::ping: ws::append_frame(out, ws::opcode::pong, r.data); break;
//         case ws::event::pong: break;
//         case ws::event::close: ws::append_close(out, r.code == 1005 ? 0 : r.code, {}); return;
//         case ws::event::error: ws::append_close(out, r.code, {}); return;   // 1002/1007/1009
//       }
//       buf.consume(r.consumed);                       // after you are done with r.data
//     }
//
// Contract: like http1::parser, an incomplete frame header (at most 14 bytes) and an
// incomplete control frame (at most 139 bytes) are answered with need_more without being
// consumed; call again with those bytes followed by new ones. Data frame payloads are handed
// out as they arrive, so any split of the input gives the same message bytes and the same
// error (the fuzz target checks this), and a text message with invalid UTF-8 fails at the
// first bad byte, not at its end. r.data points into the caller's buffer, except for a
// compressed message, whose pieces (at most inflate_chunk bytes each) live in the parser
// until the next call.
//
// Checked (each an error with its close code, see error.hpp): masking per role, RSV bits
// (RSV1 only on the first frame of a message, only with permessage-deflate), reserved opcodes,
// control frames over 125 bytes or fragmented, continuation order, 64-bit lengths with the top
// bit set, close payloads (1 byte, invalid codes, a reason that is not UTF-8), UTF-8 of text
// messages across fragments (and after decompression), the frame and message size limits
// (1009; a compressed message is bounded by its decompressed size, so a zip bomb stops at the
// limit). Minimal length encoding is not required (RFC 6455 §5.2 requires it of senders only).
//
// State: 72 bytes per connection (x86-64); no buffer is held between messages unless
// permessage-deflate with context takeover keeps the peer's zlib stream (see deflate.hpp). The
// options are not copied: every connection of a server points to its one set (24 bytes less
// each), which must outlive them. The frame and message limits are at most 1 GiB (larger ones
// act as 1 GiB), so the parser counts in 32 bits (24 bytes less each).
#pragma once

#include <rproxy/codec/ws/deflate.hpp>
#include <rproxy/codec/ws/error.hpp>
#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/core/utf8.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace rproxy::codec::ws {

struct parser_options {
  /// The role of the endpoint that parses: a server requires masked frames, a client
  /// unmasked ones.
  role side = role::server;
  /// The largest payload of one frame, as sent (error::frame_too_big, 1009); at most
  /// max_limit.
  std::uint64_t max_frame_size = 16 * 1024 * 1024;
  /// The largest message, after decompression (error::message_too_big, 1009); at most max_limit.
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  /// The most decompressed bytes one data event carries.
  std::size_t inflate_chunk = 16 * 1024;

  /// The largest frame and message limit: a larger one acts as this. (Bounded so that the
  /// parser's counts fit 32 bits, with DEFLATE's slack on top; no server holds a message of a
  /// GiB per connection anyway.)
  static constexpr std::uint64_t max_limit = std::uint64_t{1} << 30;
  std::uint64_t frame_limit() const noexcept { return std::min(max_frame_size, max_limit); }
  std::uint64_t message_limit() const noexcept { return std::min(max_message_size, max_limit); }
};

enum class event : std::uint8_t {
  need_more,  ///< feed more bytes (discard `consumed` first; it may be non-zero)
  data,       ///< message bytes in `data`; `op` is the message's opcode; `last` ends it
  ping,       ///< a ping; `data` is its payload (answer with a pong carrying it)
  pong,       ///< a pong; `data` is its payload
  close,      ///< the peer's close frame: `code` (1005 if it had none), `data` its reason
  error,      ///< `error` says what, `code` is the close code to send; the parser stays failed
};

struct parse_result {
  event what = event::need_more;
  std::size_t consumed = 0;   ///< input bytes to discard once the event is handled
  std::string_view data{};    ///< see event
  opcode op = opcode::text;   ///< event::data: text or binary
  bool last = false;          ///< event::data: the last piece of the message
  std::uint16_t code = 0;     ///< event::close: the peer's code; event::error: the code to send
  ws::error error{};          ///< event::error
};

class parser {
public:
  parser() = default;
  /// `o` is pointed to, not copied: it must outlive the parser.
  explicit parser(const parser_options& o) noexcept : opt_(&o) {}
  explicit parser(const parser_options&&) = delete;  // a temporary would dangle

  /// Enables permessage-deflate with the negotiated parameters: RSV1 becomes valid on the
  /// first frame of a data message and such messages are decompressed.
  void set_deflate(const deflate_params& p) noexcept {
    inflater_ = inflater{p.receive_window(opt_->side), p.receive_reset(opt_->side)};
    deflate_ = true;
  }
  const parser_options& options() const noexcept { return *opt_; }

  /// Parses from the first unconsumed byte; see the contract at the top of this file.
  parse_result parse(std::span<char> in) noexcept;

  /// True between the first and the last frame of a data message.
  bool in_message() const noexcept { return msg_open_; }
  /// True once the peer's close frame was parsed.
  bool close_received() const noexcept { return state_ == state::closed; }
  /// True while the parser holds heap memory: a decompressed piece (during a compressed
  /// message) or the peer's zlib stream (between messages only with context takeover).
  bool holds_memory() const noexcept { return out_ != nullptr || inflater_.allocated(); }
  /// Frees the decompression buffers (e.g. when closing); the parser remains usable.
  void release() noexcept {
    out_.reset();
    inflater_.release();
  }

private:
  enum class state : std::uint8_t { header, payload, tail, closed, failed };

  parse_result fail(ws::error e, std::size_t consumed = 0) noexcept {
    state_ = state::failed;
    error_ = e;
    parse_result r;
    r.what = event::error;
    r.consumed = consumed;
    r.error = e;
    r.code = close_code_for(e);
    return r;
  }
  parse_result parse_header(std::span<char> in, std::size_t& pos) noexcept;
  parse_result control_frame(std::span<char> in, std::size_t pos, std::size_t hs) noexcept;
  std::optional<parse_result> inflate_step(std::span<char> in, std::size_t& pos) noexcept;
  parse_result data_event(std::size_t consumed, std::string_view data, bool last) noexcept {
    parse_result r;
    r.what = event::data;
    r.consumed = consumed;
    r.data = data;
    r.op = msg_op_;
    r.last = last;
    if (last) end_message();
    return r;
  }
  void end_message() noexcept {
    msg_open_ = false;
    msg_size_ = 0;
    msg_wire_ = 0;
    utf8_.reset();
    if (compressed_) {
      compressed_ = false;
      inflater_.end_message();  // out_ goes at the next parse(): r.data still points into it
    }
  }

  static constexpr parser_options default_options{};
  // In this order so that no byte is padding: the next members sit in the tail padding of
  // utf8_ (4 bytes) and of inflater_ (6), which [[no_unique_address]] lets them use (72 bytes
  // where the plain order took 80).
  const parser_options* opt_ = &default_options;
  std::unique_ptr<char[]> out_;       // decompressed piece (only during a compressed message)
  [[no_unique_address]] utf8::validator utf8_{};
  // The counts are bounded by the limits (at most parser_options::max_limit, plus DEFLATE's
  // slack for msg_wire_): 32 bits hold them.
  std::uint32_t remaining_ = 0;       // payload bytes of the current frame not yet consumed
  [[no_unique_address]] inflater inflater_{};
  state state_ = state::header;
  opcode msg_op_ = opcode::text;
  ws::error error_{};
  std::uint8_t tail_pos_ = 0;         // bytes of deflate_tail fed
  mask_key key_{};
  bool fin_ : 1 = false;
  bool masked_ : 1 = false;
  bool msg_open_ : 1 = false;
  bool compressed_ : 1 = false;
  bool pending_ : 1 = false;          // zlib filled the last output buffer: drain before input
  bool deflate_ : 1 = false;
  std::uint32_t frame_len_ = 0;
  std::uint32_t msg_size_ = 0;        // message bytes so far (decompressed)
  std::uint32_t msg_wire_ = 0;        // payload bytes of the message as sent
  std::uint32_t unmasked_ahead_ = 0;  // bytes after the consumed ones already unmasked
};

static_assert(sizeof(void*) != 8 || sizeof(parser) == 72, "the parser's size is documented at the top of this file");

inline parse_result parser::parse(std::span<char> in) noexcept {
  std::size_t pos = 0;
  if (out_ && !compressed_) out_.reset();  // no buffer is kept between messages
  while (true) {
    switch (state_) {
      case state::failed: return fail(error_);
      case state::closed:
        if (in.size() > pos) return fail(error::frame_after_close, pos);
        return {event::need_more, pos};
      case state::header: {
        const std::size_t before = pos;
        parse_result r = parse_header(in, pos);
        if (r.what != event::need_more || pos == before) {
          r.consumed += before;
          return r;
        }
        continue;  // a data frame's header was consumed: on to its payload (or the next frame)
      }
      case state::payload:
        if (compressed_) {
          if (auto r = inflate_step(in, pos)) return *r;
          continue;
        } else {
          const std::size_t avail = in.size() - pos;
          const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, avail));
          if (n == 0 && remaining_ > 0) return {event::need_more, pos};
          std::span<char> chunk = in.subspan(pos, n);
          if (masked_) apply_mask(chunk, key_, frame_len_ - remaining_);
          remaining_ -= static_cast<std::uint32_t>(n);
          pos += n;
          const std::string_view data(chunk.data(), chunk.size());
          const bool last = remaining_ == 0 && fin_;
          if (msg_op_ == opcode::text) {
            if (!utf8_.feed(data)) return fail(error::invalid_utf8, pos - n);
            if (last && !utf8_.complete()) return fail(error::invalid_utf8, pos - n);
          }
          if (remaining_ == 0) state_ = state::header;
          if (n == 0 && !last) continue;
          return data_event(pos, data, last);
        }
      case state::tail:
        if (auto r = inflate_step(in, pos)) return *r;
        continue;
    }
  }
}

inline parse_result parser::parse_header(std::span<char> in, std::size_t& pos) noexcept {
  const std::size_t avail = in.size() - pos;
  if (avail < 2) return {event::need_more, 0};
  const auto b0 = static_cast<std::uint8_t>(in[pos]);
  const auto b1 = static_cast<std::uint8_t>(in[pos + 1]);
  const bool fin = (b0 & 0x80) != 0;
  const bool rsv1 = (b0 & 0x40) != 0;
  const std::uint8_t op = b0 & 0x0F;
  const bool masked = (b1 & 0x80) != 0;
  const std::uint8_t len7 = b1 & 0x7F;
  // Everything the first two bytes can tell is checked before waiting for more.
  if ((b0 & 0x30) != 0) return fail(error::reserved_bits);
  if (!is_known(op)) return fail(error::bad_opcode);
  if (masked != (opt_->side == role::server)) return fail(error::unmasked_frame);
  const auto o = static_cast<opcode>(op);
  if (is_control(o)) {
    if (!fin || len7 > max_control_payload) return fail(error::bad_control_frame);
    if (rsv1) return fail(error::reserved_bits);
  } else if (o == opcode::continuation) {
    if (!msg_open_) return fail(error::bad_continuation);
    if (rsv1) return fail(error::reserved_bits);  // RSV1 marks the first frame only
  } else {
    if (msg_open_) return fail(error::bad_continuation);
    if (rsv1 && !deflate_) return fail(error::reserved_bits);
  }
  const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  const std::size_t hs = 2 + ext + (masked ? 4 : 0);
  std::uint64_t len = len7;
  if (ext > 0) {
    if (avail < 2 + ext) return {event::need_more, 0};
    len = 0;
    for (std::size_t i = 0; i < ext; ++i) len = (len << 8) | static_cast<std::uint8_t>(in[pos + 2 + i]);
    if (ext == 8 && (len >> 63) != 0) return fail(error::bad_length);
  }
  if (is_control(o)) return control_frame(in, pos, hs);
  if (len > opt_->frame_limit()) return fail(error::frame_too_big);
  // The message's bytes as sent are bounded too: by the limit itself when uncompressed, and
  // with room for DEFLATE's worst-case expansion (stored blocks) when compressed.
  const bool compressed = o == opcode::continuation ? compressed_ : rsv1;
  const std::uint64_t limit = opt_->message_limit();
  const std::uint64_t max_wire = limit + (compressed ? limit / 16 + 1024 : 0);
  const std::uint64_t base = o == opcode::continuation ? msg_wire_ : 0;
  if (len > max_wire - std::min(base, max_wire)) return fail(error::message_too_big);
  if (avail < hs) return {event::need_more, 0};
  if (masked) std::copy_n(in.data() + pos + 2 + ext, 4, reinterpret_cast<char*>(key_.data()));
  if (o != opcode::continuation) {
    msg_open_ = true;
    msg_op_ = o;
    compressed_ = rsv1;
    msg_size_ = msg_wire_ = 0;
    utf8_.reset();
  }
  msg_wire_ += static_cast<std::uint32_t>(len);
  fin_ = fin;
  masked_ = masked;
  frame_len_ = remaining_ = static_cast<std::uint32_t>(len);
  unmasked_ahead_ = 0;
  pos += hs;
  tail_pos_ = 0;
  pending_ = false;
  state_ = len > 0 || fin ? state::payload : state::header;
  if (compressed_ && len == 0 && fin) state_ = state::tail;
  return {event::need_more, 0};
}

inline parse_result parser::control_frame(std::span<char> in, std::size_t pos, std::size_t hs) noexcept {
  const auto len = static_cast<std::size_t>(static_cast<std::uint8_t>(in[pos + 1]) & 0x7F);
  if (in.size() - pos < hs + len) return {event::need_more, 0};
  const bool masked = (static_cast<std::uint8_t>(in[pos + 1]) & 0x80) != 0;
  std::span<char> payload = in.subspan(pos + hs, len);
  if (masked) {
    mask_key k;
    std::copy_n(in.data() + pos + hs - 4, 4, reinterpret_cast<char*>(k.data()));
    apply_mask(payload, k);
  }
  const std::string_view data(payload.data(), payload.size());
  parse_result r;
  r.consumed = hs + len;
  r.data = data;
  switch (static_cast<opcode>(static_cast<std::uint8_t>(in[pos]) & 0x0F)) {
    case opcode::ping: r.what = event::ping; return r;
    case opcode::pong: r.what = event::pong; return r;
    default: break;
  }
  // close
  r.what = event::close;
  if (len == 1) return fail(error::bad_close_payload);
  if (len == 0) {
    r.code = close_code::no_status;
  } else {
    r.code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(data[0]) << 8 | static_cast<std::uint8_t>(data[1]));
    if (!is_valid_close_code(r.code)) return fail(error::bad_close_payload);
    r.data = data.substr(2);
    if (!utf8::is_valid(r.data)) return fail(error::invalid_utf8);
  }
  state_ = state::closed;
  return r;
}

inline std::optional<parse_result> parser::inflate_step(std::span<char> in, std::size_t& pos) noexcept {
  const std::size_t chunk = std::max<std::size_t>(opt_->inflate_chunk, 64);
  if (!out_) {
    out_.reset(new (std::nothrow) char[chunk]);
    if (!out_) return fail(error::message_too_big, pos);
  }
  // The decompressed bytes may not exceed the message limit: never ask zlib for more than
  // the limit allows plus one byte (which, if produced, is the error).
  const std::uint64_t room = opt_->message_limit() - msg_size_ + 1;
  const auto out_size = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, room));
  inflater::step_result s;
  bool done = false;
  if (state_ == state::payload) {
    const std::size_t avail = in.size() - pos;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, avail));
    // zlib may hold output back (a long match half copied) after a full output buffer: drain
    // it before waiting for input or leaving the frame, so no split of the input delays an
    // error or a piece of the message.
    if (n == 0 && !pending_) return parse_result{event::need_more, pos};
    std::span<char> wire = in.subspan(pos, n);
    if (masked_ && n > unmasked_ahead_)
      apply_mask(wire.subspan(unmasked_ahead_), key_, frame_len_ - remaining_ + unmasked_ahead_);
    unmasked_ahead_ = std::max(unmasked_ahead_, static_cast<std::uint32_t>(n));
    s = inflater_.step({wire.data(), wire.size()}, out_.get(), out_size);
    if (s.ok && n > 0 && s.consumed == 0 && s.produced == 0) s.ok = false;  // zlib made no progress
    pending_ = s.produced == out_size;
    unmasked_ahead_ -= static_cast<std::uint32_t>(s.consumed);
    remaining_ -= static_cast<std::uint32_t>(s.consumed);
    pos += s.consumed;
    if (remaining_ == 0 && !pending_) {
      unmasked_ahead_ = 0;
      if (fin_) {
        state_ = state::tail;
        tail_pos_ = 0;
      } else {
        state_ = state::header;
      }
    }
  } else {
    // The message's last frame is in: feed the 00 00 ff ff tail, then drain zlib's output.
    s = inflater_.step(deflate_tail.substr(tail_pos_), out_.get(), out_size);
    tail_pos_ = static_cast<std::uint8_t>(tail_pos_ + s.consumed);
    done = s.ok && tail_pos_ == deflate_tail.size() && s.produced < out_size;
  }
  // Errors in the order the bytes show them, so that any split of the input gives the same
  // one: bad UTF-8 within the limit, then the limit, then zlib's verdict on later input.
  const std::string_view data(out_.get(), s.produced);
  const std::uint64_t within = opt_->message_limit() - msg_size_;
  if (msg_op_ == opcode::text && !utf8_.feed(data.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(within, data.size())))))
    return fail(error::invalid_utf8, pos);
  msg_size_ += static_cast<std::uint32_t>(s.produced);
  if (msg_size_ > opt_->message_limit()) return fail(error::message_too_big, pos);
  if (!s.ok) return fail(error::bad_compressed_data, pos);
  if (done && msg_op_ == opcode::text && !utf8_.complete()) return fail(error::invalid_utf8, pos);
  if (done) {
    state_ = state::header;
    return data_event(pos, data, true);
  }
  if (s.produced > 0) return data_event(pos, data, false);
  return std::nullopt;  // nothing to report yet: the caller's loop goes on
}

}  // namespace rproxy::codec::ws
