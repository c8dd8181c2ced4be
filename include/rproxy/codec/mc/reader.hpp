// rproxy/codec/mc/reader.hpp: a bounds-checked cursor over the fields of one complete packet.
//
// Every read checks the remaining length first, so a lying length can never over-read; running
// past the end of the packet is error::truncated (the packet is complete, so this is not
// need_more). Strings are VarInt-prefixed UTF-8, limited like the vanilla server: at most
// 3 * max_chars bytes, valid UTF-8, and at most max_chars UTF-16 code units.
//
//     mc::reader r{packet_fields};
//     auto proto = r.read_varint();                if (!proto) return failure(proto.error());
//     auto host = r.read_string(255);              // string_view into packet_fields
//     if (auto end = r.expect_end(); !end) ...     // error::trailing_bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/utf.hpp>
#include <rproxy/codec/mc/uuid.hpp>
#include <rproxy/codec/mc/varint.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::mc {

class reader {
public:
  explicit reader(byte_view in) noexcept : in_(in) {}

  std::size_t position() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == in_.size(); }
  /// The bytes not read yet.
  byte_view rest() const noexcept { return in_.subspan(pos_); }

  result<std::int32_t> read_varint() {
    auto r = decode_varint(rest());
    if (r.need_more()) return failure(make_error_code(error::truncated));
    if (r.failed()) return failure(r.error());
    pos_ += r.size();
    return r.value();
  }

  result<std::int64_t> read_varlong() {
    auto r = decode_varlong(rest());
    if (r.need_more()) return failure(make_error_code(error::truncated));
    if (r.failed()) return failure(r.error());
    pos_ += r.size();
    return r.value();
  }

  result<std::uint8_t> read_u8() {
    auto v = read_be(1);
    if (!v) return failure(v.error());
    return static_cast<std::uint8_t>(*v);
  }
  result<std::uint16_t> read_u16() {
    auto v = read_be(2);
    if (!v) return failure(v.error());
    return static_cast<std::uint16_t>(*v);
  }
  result<std::int32_t> read_i32() {
    auto v = read_be(4);
    if (!v) return failure(v.error());
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(*v));
  }
  result<std::int64_t> read_i64() {
    auto v = read_be(8);
    if (!v) return failure(v.error());
    return static_cast<std::int64_t>(*v);
  }

  /// A boolean byte: 0 or 1; anything else is error::bad_boolean.
  result<bool> read_bool() {
    auto v = read_be(1);
    if (!v) return failure(v.error());
    if (*v > 1) return failure(make_error_code(error::bad_boolean));
    return *v == 1;
  }

  result<uuid> read_uuid() {
    auto hi = read_be(8);
    if (!hi) return failure(hi.error());
    auto lo = read_be(8);
    if (!lo) return failure(lo.error());
    return uuid{*hi, *lo};
  }

  /// The next `n` bytes.
  result<byte_view> read_bytes(std::size_t n) {
    if (n > remaining()) return failure(make_error_code(error::truncated));
    auto v = in_.subspan(pos_, n);
    pos_ += n;
    return v;
  }

  /// A VarInt length (at most `max_len`) followed by that many bytes.
  result<byte_view> read_prefixed_bytes(std::size_t max_len) {
    auto len = read_length(max_len);
    if (!len) return failure(len.error());
    return read_bytes(*len);
  }

  /// A string of at most `max_chars` UTF-16 code units, as a view into the packet.
  result<std::string_view> read_string(std::size_t max_chars) {
    auto raw = read_prefixed_bytes(max_chars * 3);
    if (!raw) return failure(raw.error());
    const auto s = as_chars(*raw);
    const auto units = utf16_length(s);
    if (!units) return failure(make_error_code(error::invalid_utf8));
    if (*units > max_chars) return failure(make_error_code(error::string_too_long));
    return s;
  }

  /// Success if every byte was read, error::trailing_bytes otherwise.
  result<void> expect_end() const {
    if (!at_end()) return failure(make_error_code(error::trailing_bytes));
    return {};
  }

private:
  result<std::uint64_t> read_be(std::size_t n) {
    if (n > remaining()) return failure(make_error_code(error::truncated));
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<std::uint64_t>(in_[pos_ + i]);
    pos_ += n;
    return v;
  }

  result<std::size_t> read_length(std::size_t max_len) {
    auto len = read_varint();
    if (!len) return failure(len.error());
    if (*len < 0) return failure(make_error_code(error::negative_length));
    const auto n = static_cast<std::size_t>(*len);
    if (n > max_len) return failure(make_error_code(error::string_too_long));
    if (n > remaining()) return failure(make_error_code(error::truncated));
    return n;
  }

  byte_view in_;
  std::size_t pos_ = 0;
};

}  // namespace rproxy::codec::mc
