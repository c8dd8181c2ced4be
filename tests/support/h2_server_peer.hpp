// tests/support/h2_server_peer.hpp: the other side of an h2::client_session in tests: nghttp2's
// own server session (a second, independent use of the library), driven in memory. It records
// what each request carried (fields, body, trailers) and answers as told.
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <rproxy/codec/h2/client_session.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h2_test {

using field_pairs = std::vector<std::pair<std::string, std::string>>;

class server_peer {
public:
  struct request {
    field_pairs head, trailers;
    std::string body;
    bool ended = false, closed = false;
    std::uint32_t close_code = 0;
    bool in_trailers = false;
    std::string field(std::string_view name) const {
      for (const auto& [n, v] : head)
        if (n == name) return v;
      return {};
    }
  };

  /// `max_streams`: SETTINGS_MAX_CONCURRENT_STREAMS; `auto_window`: give back window as it reads.
  explicit server_peer(std::uint32_t max_streams = 100) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_close);
    nghttp2_session_server_new(&s_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams}};
    nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~server_peer() { nghttp2_session_del(s_); }
  server_peer(const server_peer&) = delete;
  server_peer& operator=(const server_peer&) = delete;

  /// Answers stream `id`: head, then `body` (as the client's window allows), then trailers.
  void respond(std::int32_t id, const field_pairs& head, std::string body = {}, field_pairs trailers = {}, bool end = true) {
    auto& o = out_[id];
    o.body = std::move(body);
    o.trailers = std::move(trailers);
    o.end = end;
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : head) nv.push_back(make_nv(n, v));
    const bool no_body = o.body.empty() && o.trailers.empty() && end;
    nghttp2_data_provider prd{};
    prd.read_callback = &read_body;
    nghttp2_submit_response(s_, id, nv.data(), nv.size(), no_body ? nullptr : &prd);
  }
  void reset(std::int32_t id, std::uint32_t code = NGHTTP2_INTERNAL_ERROR) { nghttp2_submit_rst_stream(s_, NGHTTP2_FLAG_NONE, id, code); }
  void goaway(std::uint32_t code = NGHTTP2_NO_ERROR) {
    nghttp2_submit_goaway(s_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s_), code, nullptr, 0);
  }

  /// Bytes both ways until both are quiet; returns the client's events.
  std::vector<rproxy::codec::h2::client_event> exchange(rproxy::codec::h2::client_session& c, int rounds = 64) {
    std::vector<rproxy::codec::h2::client_event> seen;
    for (int i = 0; i < rounds; ++i) {
      bool moved = false;
      const auto up = std::string(c.pending_output());
      c.consume_output(up.size());
      if (!up.empty()) {
        moved = true;
        nghttp2_session_mem_recv(s_, reinterpret_cast<const std::uint8_t*>(up.data()), up.size());
      }
      std::string down;
      for (;;) {
        const std::uint8_t* p = nullptr;
        const auto n = nghttp2_session_mem_send(s_, &p);
        if (n <= 0) break;
        down.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
      }
      kept_.push_back(down);  // the client's data events view these bytes
      if (!down.empty()) moved = true;
      for (const auto& e : c.feed(kept_.back())) {
        seen.push_back(e);
        if (e.what == rproxy::codec::h2::client_event_kind::data) data_[e.stream_id] += e.data;
      }
      if (!moved) break;
    }
    return seen;
  }

  std::map<std::int32_t, request> requests;
  std::map<std::int32_t, std::string> data_;  ///< response bytes the client received, by stream
  std::vector<std::int32_t> order;            ///< stream ids as they arrived

private:
  struct outgoing {
    std::string body;
    std::size_t off = 0;
    field_pairs trailers;
    bool end = true;
  };
  static nghttp2_nv make_nv(const std::string& n, const std::string& v) {
    return {const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(n.data())),
            const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(v.data())), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE};
  }
  static server_peer& self(void* p) { return *static_cast<server_peer*>(p); }
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto& s = self(u);
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      s.requests[f->hd.stream_id];
      s.order.push_back(f->hd.stream_id);
    } else {
      s.requests[f->hd.stream_id].in_trailers = true;
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v,
                       std::size_t vl, std::uint8_t, void* u) {
    auto& r = self(u).requests[f->hd.stream_id];
    (r.in_trailers ? r.trailers : r.head).emplace_back(std::string(reinterpret_cast<const char*>(n), nl),
                                                       std::string(reinterpret_cast<const char*>(v), vl));
    return 0;
  }
  static int on_data(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t n, void* u) {
    self(u).requests[id].body.append(reinterpret_cast<const char*>(d), n);
    return 0;
  }
  static int on_frame(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      self(u).requests[f->hd.stream_id].ended = true;
    return 0;
  }
  static int on_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* u) {
    auto& r = self(u).requests[id];
    r.closed = true;
    r.close_code = code;
    return 0;
  }
  static ssize_t read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                           nghttp2_data_source*, void* u) {
    auto& o = self(u).out_[id];
    const auto n = std::min(len, o.body.size() - o.off);
    std::memcpy(buf, o.body.data() + o.off, n);
    o.off += n;
    if (o.off == o.body.size()) {
      if (!o.end) return n == 0 ? ssize_t{NGHTTP2_ERR_DEFERRED} : static_cast<ssize_t>(n);
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!o.trailers.empty()) {
        std::vector<nghttp2_nv> nv;
        for (const auto& [tn, tv] : o.trailers) nv.push_back(make_nv(tn, tv));
        if (nghttp2_submit_trailer(s, id, nv.data(), nv.size()) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }

  nghttp2_session* s_ = nullptr;
  std::map<std::int32_t, outgoing> out_;
  std::vector<std::string> kept_;
};

}  // namespace h2_test
