// rproxy/codec/mc/compression.hpp: zlib packet compression (1.8+, after Set Compression).
//
// With compression on, a frame's payload is [VarInt data length][data]: data length 0 means the
// data is the uncompressed packet body (id + fields); otherwise the data is a zlib stream that
// inflates to exactly `data length` bytes. A sender compresses a body of `threshold` bytes or more.
// Decoding is zip-bomb safe: the declared length is checked against a limit before inflating,
// output grows only as zlib produces it, and inflating past the declared length is an error.
//
//     mc::compression c{256};                               // threshold from Set Compression
//     mc::append_packet(out, body, c);                      // full frame, compressed if >= 256
//     mc::bytes scratch;
//     auto body = mc::decode_compressed_payload(frame.payload, c, scratch);
//
// Link zlib (ZLIB::ZLIB) when including this header.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <new>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/varint.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::mc {

/// The vanilla limit on a declared uncompressed length: 2^23 bytes.
inline constexpr std::size_t max_uncompressed_length = 8388608;

/// Compression settings of one direction of a connection.
struct compression {
  /// Bodies of this many bytes or more are compressed; negative: compression is off (frames
  /// have no data length field at all).
  std::int32_t threshold = -1;
  /// Largest declared uncompressed length accepted when decoding.
  std::size_t max_uncompressed = max_uncompressed_length;
  /// Also reject uncompressed bodies of `threshold` bytes or more.
  bool strict_threshold = false;
  /// zlib level used when encoding.
  int level = Z_DEFAULT_COMPRESSION;

  constexpr bool enabled() const noexcept { return threshold >= 0; }
};

/// Appends the zlib (RFC 1950) compression of `in` to `out`.
inline void zlib_compress(bytes& out, byte_view in, int level = Z_DEFAULT_COMPRESSION) {
  z_stream zs{};
  if (deflateInit(&zs, level) != Z_OK) throw std::bad_alloc();
  const auto bound = deflateBound(&zs, static_cast<uLong>(in.size()));
  const auto old = out.size();
  out.resize(old + bound);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data() + old);
  zs.avail_out = static_cast<uInt>(bound);
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(old + zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::bad_alloc();  // cannot happen with a deflateBound buffer
}

/// Inflates a zlib stream that must produce exactly `expected` bytes, appended to `out`.
/// Memory grows with the output actually produced, never past `expected`. A corrupt stream,
/// a size mismatch or bytes after the end of the stream are error::decompression_failed.
inline result<void> zlib_decompress(bytes& out, byte_view in, std::size_t expected) {
  const auto fail = [] { return failure(make_error_code(error::decompression_failed)); };
  if (in.size() > UINT_MAX || expected > UINT_MAX) return fail();
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw std::bad_alloc();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  const auto old = out.size();
  std::size_t produced = 0;
  std::size_t chunk = std::max<std::size_t>(1, std::min<std::size_t>(expected, 16384));
  int rc = Z_OK;
  for (;;) {
    // Room for one more byte than expected, to tell "exactly expected" from "too much".
    const auto want = std::min(expected + 1, produced + chunk);
    out.resize(old + want);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + old + produced);
    zs.avail_out = static_cast<uInt>(want - produced);
    rc = inflate(&zs, Z_NO_FLUSH);
    produced = want - zs.avail_out;
    if (rc == Z_STREAM_END || produced > expected) break;
    if (rc != Z_OK) break;  // Z_BUF_ERROR (truncated input), Z_DATA_ERROR, Z_NEED_DICT, ...
    if (zs.avail_out == 0) chunk *= 2;
  }
  inflateEnd(&zs);
  out.resize(old + std::min(produced, expected));
  if (rc != Z_STREAM_END || produced != expected || zs.avail_in != 0) {
    out.resize(old);
    return fail();
  }
  return {};
}

/// Appends one complete frame carrying `body` (packet id + fields): the plain format when
/// compression is off, else [length][data length][data], compressed if body >= threshold.
inline void append_packet(bytes& out, byte_view body, const compression& c = {}) {
  if (!c.enabled()) return append_frame(out, body);
  bytes payload;
  if (body.size() >= static_cast<std::size_t>(c.threshold)) {
    append_varint(payload, static_cast<std::int32_t>(body.size()));
    zlib_compress(payload, body, c.level);
  } else {
    payload.reserve(body.size() + 1);
    append_varint(payload, 0);
    append(payload, body);
  }
  append_frame(out, payload);
}

/// The packet body carried by a frame payload in compressed mode (`c.enabled()`): a view into
/// `payload`, or into `scratch` (cleared and refilled) when the data was compressed.
inline result<byte_view> decode_compressed_payload(byte_view payload, const compression& c,
                                                   bytes& scratch) {
  auto dl = decode_varint(payload);
  if (dl.need_more()) return failure(make_error_code(error::truncated));
  if (dl.failed()) return failure(dl.error());
  const auto data = payload.subspan(dl.size());
  const auto declared = dl.value();
  if (declared == 0) {
    if (c.strict_threshold && c.threshold >= 0 &&
        data.size() >= static_cast<std::size_t>(c.threshold))
      return failure(make_error_code(error::bad_compressed_length));
    return data;
  }
  if (declared < 0 || declared < c.threshold ||
      static_cast<std::size_t>(declared) > c.max_uncompressed)
    return failure(make_error_code(error::bad_compressed_length));
  scratch.clear();
  if (auto r = zlib_decompress(scratch, data, static_cast<std::size_t>(declared)); !r)
    return failure(r.error());
  return byte_view{scratch};
}

}  // namespace rproxy::codec::mc
