// rproxy/middleware/compress_encoder.hpp: one streamed compression (gzip on zlib, br on
// libbrotli, zstd on libzstd), flushed after every piece so that a reader can decode all it has
// got so far (Server-Sent Events keep flowing through it).
//
//     rproxy::middleware::compress_encoder enc;
//     if (auto ec = enc.start(content_coding::gzip, 6)) ...;    // allocates the codec's state
//     std::string out;
//     enc.write("first piece", false, out);   // out: compressed bytes, decodable up to here
//     enc.write("last piece", true, out);     // ends the stream (gzip trailer, zstd epilogue)
//
// Memory is bounded per stream whatever the body's size: gzip keeps zlib's 32 KiB window
// (about 256 KiB of state at memLevel 8), br a 256 KiB window (lgwin 18), zstd at most a
// 512 KiB window (windowLog 19, below the 8 MiB browsers accept). `out` grows by what one
// piece compresses to (at most a little more than the piece).
#pragma once

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/middleware/compress_negotiation.hpp>

namespace rproxy::middleware {

/// Why a compression failed (the codec libraries report only "no memory" or misuse).
enum class compress_error : std::uint8_t { not_started = 1, codec_failed, bad_level };

inline const std::error_category& compress_category() noexcept {
  struct category final : std::error_category {
    const char* name() const noexcept override { return "rproxy.compress"; }
    std::string message(int e) const override {
      switch (static_cast<compress_error>(e)) {
        case compress_error::not_started: return "compression not started";
        case compress_error::codec_failed: return "compression library failed";
        case compress_error::bad_level: return "compression level out of range";
      }
      return "compression failed";
    }
  };
  static const category c;
  return c;
}
inline std::error_code make_error_code(compress_error e) noexcept { return {static_cast<int>(e), compress_category()}; }

/// The levels each coding accepts.
struct compress_levels {
  static constexpr int gzip_min = 1, gzip_max = 9;
  static constexpr int br_min = 0, br_max = 11;
  static constexpr int zstd_min = 1, zstd_max = 19;
};

class compress_encoder {
public:
  compress_encoder() = default;
  compress_encoder(compress_encoder&& o) noexcept { swap(o); }
  compress_encoder& operator=(compress_encoder&& o) noexcept {
    compress_encoder tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~compress_encoder() { reset(); }

  content_coding coding() const noexcept { return coding_; }
  bool finished() const noexcept { return finished_; }

  /// Begins a stream of `c` at `level` (ends one in progress first).
  std::error_code start(content_coding c, int level) {
    reset();
    switch (c) {
      case content_coding::gzip: {
        if (level < compress_levels::gzip_min || level > compress_levels::gzip_max) return make_error_code(compress_error::bad_level);
        auto z = std::make_unique<z_stream>();  // zlib keeps a pointer to it: it must not move
        // windowBits 15 + 16: a gzip wrapper (RFC 1952), not zlib's own
        if (deflateInit2(z.get(), level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
          return make_error_code(compress_error::codec_failed);
        gzip_ = std::move(z);
        break;
      }
      case content_coding::br: {
        if (level < compress_levels::br_min || level > compress_levels::br_max) return make_error_code(compress_error::bad_level);
        br_ = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
        if (br_ == nullptr || !BrotliEncoderSetParameter(br_, BROTLI_PARAM_QUALITY, static_cast<std::uint32_t>(level)) ||
            !BrotliEncoderSetParameter(br_, BROTLI_PARAM_LGWIN, 18)) {
          reset();
          return make_error_code(compress_error::codec_failed);
        }
        break;
      }
      case content_coding::zstd: {
        if (level < compress_levels::zstd_min || level > compress_levels::zstd_max) return make_error_code(compress_error::bad_level);
        zstd_ = ZSTD_createCCtx();
        if (zstd_ == nullptr || ZSTD_isError(ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(zstd_, ZSTD_c_windowLog, 19)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(zstd_, ZSTD_c_checksumFlag, 1))) {
          reset();
          return make_error_code(compress_error::codec_failed);
        }
        break;
      }
      default: return make_error_code(compress_error::not_started);
    }
    coding_ = c;
    finished_ = false;
    return {};
  }

  /// Compresses `in` and appends to `out` everything needed to decode all input so far; with
  /// `last`, ends the stream (later writes fail). An empty `in` without `last` adds nothing.
  std::error_code write(std::string_view in, bool last, std::string& out) {
    if (coding_ == content_coding::identity || finished_) return make_error_code(compress_error::not_started);
    if (in.empty() && !last) return {};
    std::error_code ec;
    switch (coding_) {
      case content_coding::gzip: ec = write_gzip(in, last, out); break;
      case content_coding::br: ec = write_br(in, last, out); break;
      default: ec = write_zstd(in, last, out); break;
    }
    if (ec || last) finished_ = true;
    return ec;
  }

  /// Frees the codec's state.
  void reset() noexcept {
    if (gzip_) deflateEnd(gzip_.get());
    gzip_.reset();
    if (br_ != nullptr) BrotliEncoderDestroyInstance(br_);
    br_ = nullptr;
    if (zstd_ != nullptr) ZSTD_freeCCtx(zstd_);
    zstd_ = nullptr;
    coding_ = content_coding::identity;
    finished_ = false;
  }

private:
  void swap(compress_encoder& o) noexcept {
    std::swap(gzip_, o.gzip_);
    std::swap(br_, o.br_);
    std::swap(zstd_, o.zstd_);
    std::swap(coding_, o.coding_);
    std::swap(finished_, o.finished_);
  }

  /// Makes room for at least `n` more bytes at the end of `out`; returns where they start.
  static char* grow(std::string& out, std::size_t used, std::size_t n) {
    if (out.size() < used + n) out.resize(used + n);
    return out.data() + used;
  }
  static std::size_t step(std::size_t in) noexcept { return std::max<std::size_t>(in + in / 16 + 64, 4096); }

  std::error_code write_gzip(std::string_view in, bool last, std::string& out) {
    z_stream& z = *gzip_;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));  // zlib does not write to it
    z.avail_in = static_cast<uInt>(in.size());
    std::size_t used = out.size();
    const int flush = last ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
      const std::size_t room = step(z.avail_in);
      z.next_out = reinterpret_cast<Bytef*>(grow(out, used, room));
      z.avail_out = static_cast<uInt>(room);
      const int rc = deflate(&z, flush);
      used += room - z.avail_out;
      if (rc == Z_STREAM_ERROR) return out.resize(used), make_error_code(compress_error::codec_failed);
      if (last ? rc == Z_STREAM_END : (z.avail_out != 0 && z.avail_in == 0)) break;
    }
    out.resize(used);
    return {};
  }

  std::error_code write_br(std::string_view in, bool last, std::string& out) {
    std::size_t avail_in = in.size();
    const auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
    std::size_t used = out.size();
    const auto op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
    for (;;) {
      const std::size_t room = step(avail_in);
      std::size_t avail_out = room;
      auto* next_out = reinterpret_cast<std::uint8_t*>(grow(out, used, room));
      const bool ok = BrotliEncoderCompressStream(br_, op, &avail_in, &next_in, &avail_out, &next_out, nullptr) != 0;
      used += room - avail_out;
      if (!ok) return out.resize(used), make_error_code(compress_error::codec_failed);
      if (avail_in == 0 && !BrotliEncoderHasMoreOutput(br_) && (!last || BrotliEncoderIsFinished(br_))) break;
    }
    out.resize(used);
    return {};
  }

  std::error_code write_zstd(std::string_view in, bool last, std::string& out) {
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::size_t used = out.size();
    for (;;) {
      const std::size_t room = step(src.size - src.pos);
      ZSTD_outBuffer dst{grow(out, used, room), room, 0};
      const std::size_t left = ZSTD_compressStream2(zstd_, &dst, &src, last ? ZSTD_e_end : ZSTD_e_flush);
      used += dst.pos;
      if (ZSTD_isError(left)) return out.resize(used), make_error_code(compress_error::codec_failed);
      if (left == 0 && src.pos == src.size) break;
    }
    out.resize(used);
    return {};
  }

  std::unique_ptr<z_stream> gzip_;
  BrotliEncoderState* br_ = nullptr;
  ZSTD_CCtx* zstd_ = nullptr;
  content_coding coding_ = content_coding::identity;
  bool finished_ = false;
};

}  // namespace rproxy::middleware

template <>
struct std::is_error_code_enum<rproxy::middleware::compress_error> : std::true_type {};
