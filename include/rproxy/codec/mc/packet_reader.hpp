// rproxy/codec/mc/packet_reader.hpp: an incremental packet decoder for one direction of a
// connection: feed it bytes as they arrive, in any split; take out whole packets.
//
// It buffers only what has not been returned yet, checks every length against its limit before
// waiting for the bytes, and inflates compressed packets (zip-bomb safe, compression.hpp) once
// set_compression() was called. After an error it stays failed: every next() repeats the error.
//
//     mc::packet_reader in{mc::handshake_max_length};
//     in.feed(received);                                  // or prepare(n) + commit(n)
//     for (auto r = in.next(); r; r = in.next()) handle(r->id, r->fields);
//     // r.need_more(): wait for bytes; r.failed(): close with r.error()
//
// Views in a returned packet stay valid until the next call to a non-const member.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <system_error>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/compression.hpp>
#include <rproxy/codec/mc/decode_result.hpp>
#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/packet.hpp>

namespace rproxy::codec::mc {

class packet_reader {
public:
  explicit packet_reader(std::size_t max_length = max_packet_length) noexcept : max_(max_length) {}

  /// The frame length limit, from the next frame on.
  void set_max_length(std::size_t n) noexcept { max_ = n; }
  std::size_t max_length() const noexcept { return max_; }

  /// Compression settings, from the next frame on (after Set Compression went by).
  void set_compression(const compression& c) noexcept { comp_ = c; }
  const compression& compression_settings() const noexcept { return comp_; }

  /// Appends received bytes.
  void feed(byte_view data) {
    auto dst = prepare(data.size());
    std::copy(data.begin(), data.end(), dst.begin());
    commit(data.size());
  }

  /// Writable room for up to `n` bytes (read from a socket into it, then commit()).
  std::span<std::byte> prepare(std::size_t n) {
    if (begin_ > 0 && (begin_ == end_ || begin_ >= buf_.size() / 2)) {
      std::copy(buf_.begin() + static_cast<std::ptrdiff_t>(begin_),
                buf_.begin() + static_cast<std::ptrdiff_t>(end_), buf_.begin());
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() < end_ + n) buf_.resize(end_ + n);
    return {buf_.data() + end_, n};
  }
  /// Makes `n` bytes written into prepare()'s room part of the stream.
  void commit(std::size_t n) noexcept { end_ += std::min(n, buf_.size() - end_); }

  /// The next whole packet, need_more, or the (sticky) error.
  decode_result<packet> next() {
    using R = decode_result<packet>;
    if (err_) return R::failure(err_);
    auto f = decode_frame(unread(), max_);
    if (f.need_more()) return R::incomplete();
    if (f.failed()) return fail(f.error());
    begin_ += f.size();
    byte_view body = f->payload;
    if (comp_.enabled()) {
      auto b = decode_compressed_payload(f->payload, comp_, scratch_);
      if (!b) return fail(b.error());
      body = *b;
    }
    auto p = split_packet(body);
    if (!p) return fail(p.error());
    p->raw = f->raw;
    return R::ok(*p, f.size());
  }

  /// Bytes received but not returned as packets yet (e.g. to forward them verbatim).
  byte_view unread() const noexcept { return {buf_.data() + begin_, end_ - begin_}; }
  /// Drops the first `n` unread bytes (at most all of them).
  void skip(std::size_t n) noexcept { begin_ += std::min(n, end_ - begin_); }
  /// The error that stopped the reader, if any.
  const std::error_code& error() const noexcept { return err_; }

private:
  decode_result<packet> fail(std::error_code ec) {
    err_ = ec;
    return decode_result<packet>::failure(ec);
  }

  bytes buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t max_;
  compression comp_{};
  bytes scratch_;
  std::error_code err_{};
};

}  // namespace rproxy::codec::mc
