// rproxy/codec/ws/deflate.hpp: permessage-deflate (RFC 7692) on zlib: the negotiated
// parameters, and the per-connection compressor and decompressor.
//
//     // after the handshake (handshake.hpp) negotiated it:
//     ws::deflate_params p = *upgrade.deflate;
//     parser.set_deflate(p);                       // accepts RSV1, inflates (parser.hpp)
//     ws::deflater d{p.send_window(ws::role::server), p.send_reset(ws::role::server)};
//     ws::append_message(out, ws::opcode::text, "Hello", {.compress = &d});   // writer.hpp
//
// Memory, as zlib 1.2.13 (Debian bookworm) allocates it, counted with a zalloc hook: a deflate
// stream takes 262 KiB at window_bits 15 and mem_level 8 (zlib's default), 135 KiB at 15/1,
// 22 KiB at 12/1 and 9 KiB at 9/1; an inflate stream 7 KiB, plus its window once data arrives
// (39 KiB in all at window_bits 15, 11 KiB at 12, 7.5 KiB at 9). Both are allocated lazily, on
// the first compressed message. With context takeover they must live as long as the
// connection (the LZ77 window carries over between messages); with no_context_takeover for a
// direction, that direction's stream is freed at the end of each message, so an idle
// connection holds no zlib memory (and the parser's decompression buffer, inflate_chunk bytes,
// exists only while a compressed message is being received). A server that keeps many idle
// connections should require both (deflate_options::server_no_context_takeover and
// client_no_context_takeover), or at least small windows and mem_level.
//
// zlib cannot compress with a 256-byte window (raw deflate refuses window_bits 8), so an offer
// that requires server_max_window_bits=8 is declined; receiving with any window 8-15 works.
//
// A sender that breaks its negotiated window (a match reaching back further than the window
// bits it agreed to) is not refused consistently: zlib checks a distance against its window
// plus what the current inflate() call has written, so such a message is decoded or refused
// (1007) depending on how its bytes arrive. A sender that keeps to its window is always
// decoded. (Inflating with 15 bits whatever was negotiated would make this exact, at the cost
// of the 32 KiB window that small windows exist to save.)
#pragma once

#include <rproxy/codec/ws/frame.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace rproxy::codec::ws {

/// What the server is willing to agree to (handshake.hpp negotiates it with the client's
/// offers, RFC 7692 §7.1).
struct deflate_options {
  bool enabled = false;
  /// Always reset the server's compressor after each message (saves memory between messages).
  bool server_no_context_takeover = false;
  /// Ask the client to reset its compressor after each message, so the server's decompressor
  /// can be freed between messages.
  bool client_no_context_takeover = false;
  /// The largest LZ77 window the server compresses with (9-15).
  std::uint8_t server_max_window_bits = 15;
  /// The window the server asks the client to stay within (8-15) when the client offers
  /// client_max_window_bits; 15 asks nothing.
  std::uint8_t client_max_window_bits = 15;
  int level = Z_DEFAULT_COMPRESSION;  ///< zlib compression level
  int mem_level = 8;                  ///< zlib memLevel (1-9): memory against speed
};

/// The parameters a handshake agreed on (the server's extension negotiation response).
struct deflate_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::uint8_t server_max_window_bits = 15;
  std::uint8_t client_max_window_bits = 15;
  bool has_server_max_window_bits = false;  ///< written in the response
  bool has_client_max_window_bits = false;  ///< written in the response

  /// The window the endpoint of role `r` compresses with.
  constexpr std::uint8_t send_window(role r) const noexcept {
    return r == role::server ? server_max_window_bits : client_max_window_bits;
  }
  /// Whether the endpoint of role `r` resets its compressor after each message.
  constexpr bool send_reset(role r) const noexcept {
    return r == role::server ? server_no_context_takeover : client_no_context_takeover;
  }
  /// The window the endpoint of role `r` decompresses with (the peer's send window).
  constexpr std::uint8_t receive_window(role r) const noexcept {
    return send_window(r == role::server ? role::client : role::server);
  }
  /// Whether the peer resets its compressor after each message (so ours may be freed).
  constexpr bool receive_reset(role r) const noexcept {
    return send_reset(r == role::server ? role::client : role::server);
  }

  /// The Sec-WebSocket-Extensions value of the response.
  std::string to_string() const {
    std::string s = "permessage-deflate";
    if (server_no_context_takeover) s += "; server_no_context_takeover";
    if (client_no_context_takeover) s += "; client_no_context_takeover";
    if (has_server_max_window_bits) s += "; server_max_window_bits=" + std::to_string(server_max_window_bits);
    if (has_client_max_window_bits) s += "; client_max_window_bits=" + std::to_string(client_max_window_bits);
    return s;
  }
  friend bool operator==(const deflate_params&, const deflate_params&) = default;
};

/// The 4 bytes a sender strips from the end of a compressed message and the receiver appends
/// (an empty stored block, RFC 7692 §7.2.1).
inline constexpr std::string_view deflate_tail{"\x00\x00\xff\xff", 4};

/// The decompressor of one connection (one direction). Lazily allocated; see the memory note.
class inflater {
public:
  explicit inflater(std::uint8_t window_bits = 15, bool reset_each_message = false) noexcept
      : window_bits_(window_bits), reset_each_message_(reset_each_message) {}

  struct step_result {
    std::size_t consumed = 0;  ///< input bytes used
    std::size_t produced = 0;  ///< output bytes written
    bool ok = true;            ///< false: the data is not valid DEFLATE
  };
  /// Inflates from `in` into `out` until the input is used up or the output is full.
  step_result step(std::string_view in, char* out, std::size_t out_size) noexcept {
    if (!ensure()) return {0, 0, false};
    z_stream& z = zs_->z;
    step_result r;
    while (true) {
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + r.consumed));
      z.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size() - r.consumed, 1u << 30));
      z.next_out = reinterpret_cast<Bytef*>(out + r.produced);
      z.avail_out = static_cast<uInt>(std::min<std::size_t>(out_size - r.produced, 1u << 30));
      const uInt in0 = z.avail_in, out0 = z.avail_out;
      const int rc = ::inflate(&z, Z_SYNC_FLUSH);
      r.consumed += in0 - z.avail_in;
      r.produced += out0 - z.avail_out;
      if (rc == Z_STREAM_END) {
        // A block with BFINAL (RFC 7692 §7.2.3.4): the DEFLATE stream ended; what follows in
        // this message (e.g. the appended tail) starts a new one.
        if (::inflateReset(&z) != Z_OK) return {r.consumed, r.produced, false};
        if (r.consumed < in.size() && r.produced < out_size) continue;
        return r;
      }
      if (rc == Z_OK || rc == Z_BUF_ERROR) return r;  // input used up or output full
      r.ok = false;
      return r;
    }
  }
  /// The end of a message: frees the stream when the peer does not take over its context.
  void end_message() noexcept {
    if (reset_each_message_) release();
  }
  /// Frees the zlib stream (it is allocated again when needed).
  void release() noexcept {
    if (zs_) ::inflateEnd(&zs_->z);
    zs_.reset();
  }
  bool allocated() const noexcept { return zs_ != nullptr; }
  std::uint8_t window_bits() const noexcept { return window_bits_; }

  inflater(inflater&& o) noexcept = default;
  inflater& operator=(inflater&& o) noexcept {
    if (this != &o) {
      release();
      zs_ = std::move(o.zs_);
      window_bits_ = o.window_bits_;
      reset_each_message_ = o.reset_each_message_;
    }
    return *this;
  }
  ~inflater() { release(); }

private:
  struct stream {
    z_stream z{};
  };
  bool ensure() noexcept {
    if (zs_) return true;
    zs_.reset(new (std::nothrow) stream{});
    if (!zs_) return false;
    if (::inflateInit2(&zs_->z, -static_cast<int>(window_bits_)) != Z_OK) {
      zs_.reset();
      return false;
    }
    return true;
  }
  std::unique_ptr<stream> zs_;
  std::uint8_t window_bits_;
  bool reset_each_message_;
};

/// The compressor of one connection (one direction), or of a broadcast: with
/// reset_each_message its output for a message depends on that message alone, so one
/// compressed frame can go to every connection that negotiated no_context_takeover for this
/// direction and a window of at least `window_bits`.
class deflater {
public:
  explicit deflater(std::uint8_t window_bits = 15, bool reset_each_message = false,
                    int level = Z_DEFAULT_COMPRESSION, int mem_level = 8) noexcept
      : window_bits_(std::max<std::uint8_t>(window_bits, 9)), reset_each_message_(reset_each_message),
        level_(level), mem_level_(mem_level) {}

  /// Appends the compressed payload of the whole message `in` to `out` (without the
  /// 0x00 0x00 0xff 0xff tail, RFC 7692 §7.2.1). False if zlib fails (out of memory).
  bool compress(std::string_view in, std::string& out) {
    if (in.empty()) {
      // An empty stored block (RFC 7692 §7.2.3.6). zlib would write nothing for an empty sync
      // flush right after another one, and the window does not change.
      out.push_back('\0');
      return true;
    }
    if (!ensure()) return false;
    z_stream& z = zs_->z;
    const std::size_t start = out.size();
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::size_t room = ::deflateBound(&z, static_cast<uLong>(in.size())) + 16;
    while (true) {
      const std::size_t at = out.size();
      out.resize(at + room);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + at);
      z.avail_out = static_cast<uInt>(room);
      const int rc = ::deflate(&z, Z_SYNC_FLUSH);
      out.resize(at + room - z.avail_out);
      if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(out, start);
      if (z.avail_out != 0 && z.avail_in == 0) break;  // all flushed
      room = 4096;
    }
    // A sync flush ends with an empty stored block, 00 00 ff ff: strip it.
    if (out.size() - start < 4 || std::string_view(out).substr(out.size() - 4) != deflate_tail)
      return fail(out, start);
    out.resize(out.size() - 4);
    if (reset_each_message_) release();
    return true;
  }
  void release() noexcept {
    if (zs_) ::deflateEnd(&zs_->z);
    zs_.reset();
  }
  bool allocated() const noexcept { return zs_ != nullptr; }

  deflater(deflater&& o) noexcept = default;
  deflater& operator=(deflater&& o) noexcept {
    if (this != &o) {
      release();
      zs_ = std::move(o.zs_);
      window_bits_ = o.window_bits_;
      reset_each_message_ = o.reset_each_message_;
      level_ = o.level_;
      mem_level_ = o.mem_level_;
    }
    return *this;
  }
  ~deflater() { release(); }

private:
  struct stream {
    z_stream z{};
  };
  bool fail(std::string& out, std::size_t start) {
    out.resize(start);
    release();
    return false;
  }
  bool ensure() noexcept {
    if (zs_) return true;
    zs_.reset(new (std::nothrow) stream{});
    if (!zs_) return false;
    if (::deflateInit2(&zs_->z, level_, Z_DEFLATED, -static_cast<int>(window_bits_), mem_level_,
                       Z_DEFAULT_STRATEGY) != Z_OK) {
      zs_.reset();
      return false;
    }
    return true;
  }
  std::unique_ptr<stream> zs_;
  std::uint8_t window_bits_;
  bool reset_each_message_;
  int level_;
  int mem_level_;
};

}  // namespace rproxy::codec::ws
