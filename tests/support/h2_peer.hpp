// tests/support/h2_peer.hpp: the other side of an h2::server_session in tests.
//   - h2_test::client: an independent HTTP/2 client (nghttp2's client session, a second use of
//     the library with its own state machine), driven in memory against a server session;
//   - h2_test::frames: HTTP/2 frames built byte by byte per RFC 9113 §4.1 / §6, for attacks
//     and malformed input nghttp2's client would refuse to send, and a reader of the server's
//     frames (type, flags, stream, payload).
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <rproxy/codec/h2/server_session.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2_test {

namespace h2 = rproxy::codec::h2;
using fields = std::vector<std::pair<std::string, std::string>>;

// --- raw frames (RFC 9113 §4.1: length 24 bits, type, flags, R + stream id 31 bits) ---------
namespace frames {

inline constexpr std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum : std::uint8_t { DATA = 0, HEADERS = 1, PRIORITY = 2, RST_STREAM = 3, SETTINGS = 4, PUSH_PROMISE = 5, PING = 6,
                      GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9 };
enum : std::uint8_t { END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY_FLAG = 0x20 };

inline std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
  std::string f;
  const auto n = payload.size();
  f += static_cast<char>((n >> 16) & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>((stream >> 16) & 0xff);
  f += static_cast<char>((stream >> 8) & 0xff);
  f += static_cast<char>(stream & 0xff);
  f += payload;
  return f;
}
inline std::string u32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 8) & 0xff),
          static_cast<char>(v & 0xff)};
}
inline std::string settings(std::vector<std::pair<std::uint16_t, std::uint32_t>> s = {}) {
  std::string p;
  for (auto [id, v] : s) p += std::string{static_cast<char>(id >> 8), static_cast<char>(id & 0xff)} + u32(v);
  return frame(SETTINGS, 0, 0, p);
}
inline std::string settings_ack() { return frame(SETTINGS, ACK, 0, ""); }
inline std::string ping(std::string_view opaque = "12345678") { return frame(PING, 0, 0, opaque); }
inline std::string rst_stream(std::uint32_t stream, std::uint32_t code) { return frame(RST_STREAM, 0, stream, u32(code)); }
inline std::string window_update(std::uint32_t stream, std::uint32_t inc) { return frame(WINDOW_UPDATE, 0, stream, u32(inc)); }
inline std::string data(std::uint32_t stream, std::string_view bytes, bool end = false) {
  return frame(DATA, end ? END_STREAM : 0, stream, bytes);
}
inline std::string priority(std::uint32_t stream) { return frame(PRIORITY, 0, stream, u32(0) + std::string(1, '\x0f')); }

/// HPACK (RFC 7541 §6.2.2): a literal field without indexing, new name, 7-bit lengths
/// (names and values under 127 bytes) or the multi-byte integer form (§5.1) for longer ones.
inline std::string hpack_int(std::size_t v, std::uint8_t prefix_bits, std::uint8_t first) {
  std::string o;
  const std::size_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    o += static_cast<char>(first | v);
    return o;
  }
  o += static_cast<char>(first | max);
  v -= max;
  while (v >= 128) {
    o += static_cast<char>((v % 128) + 128);
    v /= 128;
  }
  o += static_cast<char>(v);
  return o;
}
inline std::string literal(std::string_view name, std::string_view value) {
  std::string o(1, '\0');  // 0000 0000: literal without indexing, new name
  o += hpack_int(name.size(), 7, 0);
  o += name;
  o += hpack_int(value.size(), 7, 0);
  o += value;
  return o;
}
inline std::string block(const fields& f) {
  std::string o;
  for (const auto& [n, v] : f) o += literal(n, v);
  return o;
}
inline std::string headers(std::uint32_t stream, const fields& f, bool end_stream = true, bool end_headers = true) {
  return frame(HEADERS, static_cast<std::uint8_t>((end_stream ? END_STREAM : 0) | (end_headers ? END_HEADERS : 0)), stream,
               block(f));
}
inline fields get(std::string_view path = "/", std::string_view authority = "example.com") {
  return {{":method", "GET"}, {":scheme", "http"}, {":authority", std::string(authority)}, {":path", std::string(path)}};
}

/// One frame the server sent.
struct parsed {
  std::uint8_t type = 0, flags = 0;
  std::uint32_t stream = 0;
  std::string payload;
  std::uint32_t code() const {  // RST_STREAM: error code; GOAWAY: error code after last id
    const std::size_t at = type == GOAWAY ? 4 : 0;
    if (payload.size() < at + 4) return 0xffffffff;
    auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(payload[at + i])); };
    return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
  }
  std::uint32_t last_stream() const {
    auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(payload[i])); };
    return (b(0) & 0x7f) << 24 | b(1) << 16 | b(2) << 8 | b(3);
  }
};
/// Splits the server's bytes into frames (whole ones; a trailing partial frame is left out).
inline std::vector<parsed> parse(std::string_view in) {
  std::vector<parsed> out;
  while (in.size() >= 9) {
    auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])); };
    const std::size_t len = b(0) << 16 | b(1) << 8 | b(2);
    if (in.size() < 9 + len) break;
    out.push_back({static_cast<std::uint8_t>(b(3)), static_cast<std::uint8_t>(b(4)),
                   (b(5) & 0x7f) << 24 | b(6) << 16 | b(7) << 8 | b(8), std::string(in.substr(9, len))});
    in.remove_prefix(9 + len);
  }
  return out;
}
inline std::optional<parsed> find(const std::vector<parsed>& fs, std::uint8_t type, std::uint32_t stream = 0xffffffff) {
  for (const auto& f : fs)
    if (f.type == type && (stream == 0xffffffff || f.stream == stream)) return f;
  return std::nullopt;
}

}  // namespace frames

// --- an independent client --------------------------------------------------------------
/// What the client received on one stream.
struct response {
  std::map<std::string, std::string> head;  // :status and fields (last value wins)
  std::string body;
  fields trailers;
  bool in_trailers = false;
  bool closed = false;
  std::uint32_t close_code = 0;
  std::string status() const {
    auto it = head.find(":status");
    return it == head.end() ? "" : it->second;
  }
};

class client {
public:
  client() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &on_begin_headers);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame);
    nghttp2_session_client_new(&s_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~client() { nghttp2_session_del(s_); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Submits a request; `body` is sent as DATA (then trailers if any). Returns the stream id.
  std::int32_t request(const fields& head, std::string body = {}, fields trailers = {}) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : head) nv.push_back(make_nv(n, v));
    auto up = std::make_unique<upload>();
    up->body = std::move(body);
    up->trailers = std::move(trailers);
    const bool has_body = !up->body.empty() || !up->trailers.empty();
    nghttp2_data_provider prd{};
    prd.source.ptr = up.get();
    prd.read_callback = &read_body;
    const auto id = nghttp2_submit_request(s_, nullptr, nv.data(), nv.size(), has_body ? &prd : nullptr, nullptr);
    if (id > 0) uploads_[id] = std::move(up);
    return id;
  }
  /// The client's bytes for the server, then what the server answers, until both are quiet.
  /// Returns the server events seen.
  std::vector<h2::event> exchange(h2::server_session& server, std::chrono::steady_clock::time_point now = {},
                                  int rounds = 64) {
    std::vector<h2::event> seen;
    for (int i = 0; i < rounds; ++i) {
      const std::string out = take_output();
      for (const auto& e : server.feed(out, now)) seen.push_back(copy_event(e));
      const std::string back(server.pending_output());
      server.consume_output(back.size());
      if (!back.empty()) nghttp2_session_mem_recv(s_, reinterpret_cast<const std::uint8_t*>(back.data()), back.size());
      for (const auto& e : server.poll()) seen.push_back(copy_event(e));
      if (out.empty() && back.empty() && !nghttp2_session_want_write(s_)) break;
    }
    return seen;
  }
  std::string take_output() {
    std::string out;
    for (;;) {
      const std::uint8_t* p = nullptr;
      const auto n = nghttp2_session_mem_send(s_, &p);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    }
    return out;
  }
  void reset(std::int32_t id, std::uint32_t code = NGHTTP2_CANCEL) { nghttp2_submit_rst_stream(s_, 0, id, code); }
  nghttp2_session* session() noexcept { return s_; }

  std::map<std::int32_t, response> responses;
  std::optional<std::uint32_t> goaway_code;
  std::int32_t goaway_last = -1;

private:
  struct upload {
    std::string body;
    std::size_t off = 0;
    fields trailers;
  };
  // data views from feed() point into `out`, which dies: the test keeps copies
  std::vector<std::string> kept_;
  h2::event copy_event(const h2::event& e) {
    auto c = e;
    if (!e.data.empty()) c.data = kept_.emplace_back(e.data);
    return c;
  }
  static nghttp2_nv make_nv(const std::string& n, const std::string& v) {
    return {const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(n.data())),
            const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(v.data())), n.size(), v.size(),
            NGHTTP2_NV_FLAG_NONE};
  }
  static client& self(void* p) { return *static_cast<client*>(p); }
  static ssize_t read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                           nghttp2_data_source* src, void*) {
    auto* up = static_cast<upload*>(src->ptr);
    const std::size_t n = std::min(len, up->body.size() - up->off);
    std::memcpy(buf, up->body.data() + up->off, n);
    up->off += n;
    if (up->off == up->body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!up->trailers.empty()) {
        std::vector<nghttp2_nv> nv;
        for (const auto& [k, v] : up->trailers) nv.push_back(make_nv(k, v));
        nghttp2_submit_trailer(s, id, nv.data(), nv.size());
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto& r = self(u).responses[f->hd.stream_id];
    if (f->headers.cat == NGHTTP2_HCAT_HEADERS && !r.head.empty()) r.in_trailers = true;
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v,
                       std::size_t vl, std::uint8_t, void* u) {
    auto& r = self(u).responses[f->hd.stream_id];
    std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
    if (r.in_trailers) r.trailers.emplace_back(name, value);
    else r.head[name] = value;
    return 0;
  }
  static int on_data(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t n, void* u) {
    self(u).responses[id].body.append(reinterpret_cast<const char*>(d), n);
    return 0;
  }
  static int on_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* u) {
    auto& r = self(u).responses[id];
    r.closed = true;
    r.close_code = code;
    return 0;
  }
  static int on_frame(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if (f->hd.type == NGHTTP2_GOAWAY) {
      self(u).goaway_code = f->goaway.error_code;
      self(u).goaway_last = f->goaway.last_stream_id;
    }
    return 0;
  }

  nghttp2_session* s_ = nullptr;
  std::map<std::int32_t, std::unique_ptr<upload>> uploads_;
};

}  // namespace h2_test
