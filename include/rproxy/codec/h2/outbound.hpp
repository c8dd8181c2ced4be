// rproxy/codec/h2/outbound.hpp: what both ends of an HTTP/2 connection send the same way, on
// libnghttp2: the fields of a header block (names lowercased, connection-specific and invalid
// fields left out) and a stream's outgoing body (queued bytes handed to nghttp2 as the peer's
// window allows, then the end of the stream, with trailers when there are some). The server
// session (responses) and the client session (requests) share them.
//
//     h2::field_list fl;
//     fl.clear(total_size(fields) + 16);
//     fl.push(":status", "200");
//     fl.append(fields, /*trailers=*/false);
//     nghttp2_submit_response(session, id, fl.data(), fl.size(), &provider);
//
//     h2::outbound body;                       // per stream
//     body.append(bytes); body.end(trailers);  // then resume(session, id) when it was deferred
//     // in the data provider's read callback:
//     return body.read(session, id, buf, length, flags);
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::codec::h2 {

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2). `te` is allowed with the value "trailers" only.
constexpr bool is_connection_specific(std::string_view lower_name, std::string_view value = {}) noexcept {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
    if (lower_name == h) return true;
  return lower_name == "te" && !http1::detail::iequals(value, "trailers");
}

/// A field that may go into a header block (lowercase name): valid, not connection-specific,
/// no framing field in trailers. `allow_te`: keep `te: trailers` (requests); else TE goes too.
inline bool keep_field(std::string_view lower_name, std::string_view value, bool trailer, bool allow_te = false) noexcept {
  if (!http1::is_valid_field_name(lower_name) || !http1::is_valid_field_value(value)) return false;
  if (is_connection_specific(lower_name, value)) return false;
  if (lower_name == "te" && !allow_te) return false;
  if (trailer && (lower_name == "content-length" || lower_name == "host" || lower_name == "te")) return false;
  return true;
}

template <class Fields>
std::size_t total_size(const Fields& fields) {
  std::size_t n = 0;
  for (const auto& f : fields) n += f.name.size() + f.value.size();
  return n;
}

/// The nghttp2_nv array of one header block; the names it lowercases live in its arena, the
/// values are views of the caller's fields (valid until nghttp2 has copied them: the submit call).
class field_list {
public:
  /// Starts a new block; `reserve` at least the bytes of the names appended (arena stability).
  void clear(std::size_t reserve) {
    nv_.clear();
    arena_.clear();
    arena_.reserve(reserve);
  }
  void push(std::string_view name, std::string_view value) {
    nv_.push_back({const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
                   const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())), name.size(), value.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  /// Appends the fields that keep_field() keeps; names a Connection field lists are left out
  /// too (connection-specific, RFC 9113 §8.2.2).
  template <class Fields>
  void append(const Fields& fields, bool trailers, bool allow_te = false) {
    for (const auto& f : fields) {
      const std::size_t at = arena_.size();
      for (char c : f.name) arena_ += http1::detail::to_lower(c);
      const std::string_view n(arena_.data() + at, f.name.size());  // arena_ reserved: stable
      if (!keep_field(n, f.value, trailers, allow_te)) continue;
      bool listed = false;
      for (const auto& c : fields)
        if (http1::detail::iequals(c.name, "connection") && http1::detail::list_contains(c.value, n)) listed = true;
      if (listed) continue;
      push(n, f.value);
    }
  }
  nghttp2_nv* data() noexcept { return nv_.data(); }
  std::size_t size() const noexcept { return nv_.size(); }

private:
  std::vector<nghttp2_nv> nv_;
  std::string arena_;
};

/// One stream's outgoing body: bytes queued until nghttp2 takes them, its end, its trailers.
struct outbound {
  struct owned_field {
    std::string name, value;
  };
  std::string out;
  std::size_t out_off = 0;
  bool eof = false, deferred = false;
  std::vector<owned_field> trailers;

  std::size_t queued() const noexcept { return out.size() - out_off; }
  void append(std::string_view bytes) { out.append(bytes); }
  /// The body ends after what is queued, with these trailers (the ones keep_field() keeps).
  template <class Fields>
  void end(const Fields& fields) {
    eof = true;
    trailers.clear();
    for (const auto& f : fields) {
      std::string n(f.name);
      for (auto& c : n) c = http1::detail::to_lower(c);
      if (!keep_field(n, f.value, true)) continue;
      trailers.push_back({std::move(n), std::string(f.value)});
    }
  }
  /// After append() or end(): nghttp2 asks again if it had been told to wait.
  void resume(nghttp2_session* session, std::int32_t id) {
    if (!deferred) return;
    deferred = false;
    nghttp2_session_resume_data(session, id);
  }
  /// The data provider's read callback: copies up to `length` bytes; at the end, EOF (and the
  /// trailers as a HEADERS frame); nothing queued yet: deferred until resume().
  ssize_t read(nghttp2_session* session, std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
    const std::size_t n = std::min(length, out.size() - out_off);
    if (n > 0) std::memcpy(buf, out.data() + out_off, n);
    out_off += n;
    if (out_off == out.size()) out.clear(), out_off = 0;
    else if (out_off > 64 * 1024 && out_off * 2 > out.size()) out.erase(0, out_off), out_off = 0;
    if (out_off == out.size() && eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!trailers.empty()) {
        std::vector<nghttp2_nv> nv;
        nv.reserve(trailers.size());
        for (const auto& t : trailers)
          nv.push_back({const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(t.name.data())),
                        const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(t.value.data())), t.name.size(),
                        t.value.size(), NGHTTP2_NV_FLAG_NONE});
        if (nghttp2_submit_trailer(session, id, nv.data(), nv.size()) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }
};

}  // namespace rproxy::codec::h2
