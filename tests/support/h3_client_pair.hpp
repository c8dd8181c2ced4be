// tests/support/h3_client_pair.hpp: codec::h3::client_session wired, with no QUIC and no socket,
// to an HTTP/3 server made of nghttp3 alone (the library's own server side, not our code), so
// that what our client sends is decoded by nghttp3 and what nghttp3 answers is decoded by ours.
//
//     h3_test::pair p;                           // client_session<recorder, fake_conn> + nghttp3 server
//     p.server.respond = [](auto& req) { return h3_test::reply{200, {{"x", "1"}}, "hello"}; };
//     auto sid = p.client().submit({.method = "GET", .authority = "a", .path = "/"}, 7);
//     p.pump();                                   // moves bytes both ways until nothing moves
//     p.rec.responses[7] ...
//
// fake_conn is the session's Connection: stream ids as QUIC numbers them, credit counted, resets
// recorded; the free functions below are what the session finds by argument-dependent lookup.
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/codec/h3/client_session.hpp>
#include <rproxy/core/result.hpp>

namespace h3_test {

namespace h3 = rproxy::codec::h3;

template <class App>
struct fake_conn {
  App app_;
  std::int64_t next_bidi = 0, next_uni = 2;
  std::uint64_t bidi_left = 100;
  std::map<std::int64_t, std::uint64_t> credit;       // extend_credit per stream
  std::map<std::int64_t, std::uint64_t> resets;       // shutdown_stream codes
  bool done = false;
  std::error_code end = std::make_error_code(std::errc::connection_aborted);

  template <class... Args>
  explicit fake_conn(Args&&... a) : app_(std::forward<Args>(a)...) {}
  App& app() { return app_; }
  void app_done() { done = true; }
};

template <class App>
rproxy::result<std::int64_t> open_bidi_stream(fake_conn<App>& c, void*) {
  if (c.bidi_left == 0) return rproxy::failure(std::make_error_code(std::errc::resource_unavailable_try_again));
  --c.bidi_left;
  const auto id = c.next_bidi;
  c.next_bidi += 4;
  return id;
}
template <class App>
rproxy::result<std::int64_t> open_uni_stream(fake_conn<App>& c) {
  const auto id = c.next_uni;
  c.next_uni += 4;
  return id;
}
template <class App>
void extend_credit(fake_conn<App>& c, std::int64_t id, std::size_t n) {
  c.credit[id] += n;
}
template <class App>
void shutdown_stream(fake_conn<App>& c, std::int64_t id, std::uint64_t code) {
  c.resets[id] = code;
}
template <class App>
void shutdown_stream_read(fake_conn<App>& c, std::int64_t id, std::uint64_t code) {
  c.resets[id] = code;
}
template <class App>
void shutdown_stream_write(fake_conn<App>& c, std::int64_t id, std::uint64_t code) {
  c.resets[id] = code;
}
template <class App>
void schedule_write(fake_conn<App>&) {}
template <class App>
std::error_code end_error(fake_conn<App>& c) {
  return c.end;
}

/// A response as our client saw it.
struct seen {
  int status = 0;
  std::vector<h3::field> headers;
  std::string body;
  bool ended = false;
  std::error_code error;
};

/// The session's handler: records everything by tag.
struct recorder {
  std::map<std::uint64_t, seen> responses;
  bool ready = false;
  std::error_code closed;
  std::function<void(std::uint64_t)> on_end;  // (tests: submit more from inside a hook)
  template <class S>
  void on_ready(S&) {
    ready = true;
  }
  template <class S>
  void on_response_head(S&, std::uint64_t tag, h3::response_head& h) {
    responses[tag].status = h.status;
    responses[tag].headers = h.headers;
  }
  template <class S>
  void on_response_data(S&, std::uint64_t tag, const std::uint8_t* d, std::size_t n) {
    responses[tag].body.append(reinterpret_cast<const char*>(d), n);
  }
  template <class S>
  void on_response_end(S&, std::uint64_t tag) {
    responses[tag].ended = true;
    if (on_end) on_end(tag);
  }
  template <class S>
  void on_stream_error(S&, std::uint64_t tag, std::error_code ec) {
    responses[tag].error = ec;
  }
  template <class S>
  void on_closed(S&, std::error_code ec) {
    closed = ec;
  }
};

/// A request as the nghttp3 server decoded it.
struct request {
  std::int64_t id = -1;
  std::vector<h3::field> fields;  // pseudo-headers included, in order
  std::string body;
  bool ended = false;
  std::string get(std::string_view name) const {
    for (const auto& f : fields)
      if (f.name == name) return f.value;
    return {};
  }
};
struct reply {
  int status = 200;
  std::vector<h3::field> headers;
  std::string body;
};

/// An HTTP/3 server of nghttp3 alone.
struct server {
  nghttp3_conn* conn = nullptr;
  std::map<std::int64_t, request> requests;
  std::map<std::int64_t, std::pair<reply, std::size_t>> replies;  // body and how much was handed out
  std::function<reply(const request&)> respond = [](const request&) { return reply{200, {}, "hello"}; };

  server() {
    nghttp3_callbacks cb{};
    cb.recv_header = [](nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* n, nghttp3_rcbuf* v, std::uint8_t, void* ud, void*) {
      auto nb = nghttp3_rcbuf_get_buf(n), vb = nghttp3_rcbuf_get_buf(v);
      auto& r = static_cast<server*>(ud)->requests[id];
      r.id = id;
      r.fields.push_back({std::string(reinterpret_cast<const char*>(nb.base), nb.len), std::string(reinterpret_cast<const char*>(vb.base), vb.len)});
      return 0;
    };
    cb.recv_data = [](nghttp3_conn*, std::int64_t id, const std::uint8_t* d, std::size_t n, void* ud, void*) {
      static_cast<server*>(ud)->requests[id].body.append(reinterpret_cast<const char*>(d), n);
      return 0;
    };
    cb.end_stream = [](nghttp3_conn* c, std::int64_t id, void* ud, void*) {
      auto& s = *static_cast<server*>(ud);
      auto& r = s.requests[id];
      r.ended = true;
      auto& [rep, off] = s.replies[id];
      rep = s.respond(r);
      off = 0;
      const std::string status = std::to_string(rep.status);
      std::vector<nghttp3_nv> nva;
      auto nv = [](std::string_view a, std::string_view b) {
        return nghttp3_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(a.data())), reinterpret_cast<std::uint8_t*>(const_cast<char*>(b.data())),
                          a.size(), b.size(), NGHTTP3_NV_FLAG_NONE};
      };
      nva.push_back(nv(":status", status));
      for (const auto& f : rep.headers) nva.push_back(nv(f.name, f.value));
      nghttp3_data_reader dr{[](nghttp3_conn*, std::int64_t sid, nghttp3_vec* vec, std::size_t, std::uint32_t* flags, void* ud2, void*) -> nghttp3_ssize {
        auto& [rp, o] = static_cast<server*>(ud2)->replies[sid];
        *flags |= NGHTTP3_DATA_FLAG_EOF;
        if (o >= rp.body.size()) return 0;
        vec[0] = {reinterpret_cast<std::uint8_t*>(rp.body.data()) + o, rp.body.size() - o};
        o = rp.body.size();
        return 1;
      }};
      return nghttp3_conn_submit_response(c, id, nva.data(), nva.size(), &dr);
    };
    nghttp3_settings st;
    nghttp3_settings_default(&st);
    nghttp3_conn_server_new(&conn, &cb, &st, nullptr, this);
    nghttp3_conn_set_max_client_streams_bidi(conn, 100);
    nghttp3_conn_bind_control_stream(conn, 3);
    nghttp3_conn_bind_qpack_streams(conn, 7, 11);
  }
  ~server() { nghttp3_conn_del(conn); }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
};

using session = h3::client_session<recorder, fake_conn>;

/// The client and the server, and the pump between them.
struct pair {
  fake_conn<session> conn;
  server srv;
  std::set<std::int64_t> client_fin, server_fin, closed;
  /// Bytes the client sent per stream (what a fuzz target may replace with its own).
  std::map<std::int64_t, std::string> client_bytes;
  /// Bytes the server sent per stream, in order of sending (seeds for the fuzz target).
  std::vector<std::pair<std::int64_t, std::string>> server_chunks;

  explicit pair(h3::client_limits l = {}) : conn(recorder{}, l) {}
  session& client() { return conn.app(); }

  /// The handshake's end: control streams, then ready.
  void start() {
    (void)client().on_ready(conn);
    client().on_handshake_completed(conn);
  }

  /// Moves bytes until nothing moves (with `to_client` false, only the client's go out).
  /// Returns false if either side failed.
  bool pump(int rounds = 1000, bool to_client = true) {
    for (int r = 0; r < rounds; ++r) {
      bool moved = false;
      // client -> server
      for (;;) {
        std::int64_t sid = -1;
        bool fin = false;
        std::array<ngtcp2_vec, 16> v{};
        const auto n = client().writev(sid, fin, std::span<ngtcp2_vec>(v));
        if (n < 0) return false;
        if (sid < 0) break;
        std::string data;
        for (std::ptrdiff_t i = 0; i < n; ++i) data.append(reinterpret_cast<const char*>(v[static_cast<std::size_t>(i)].base), v[static_cast<std::size_t>(i)].len);
        if (data.empty() && !fin) break;
        if (client().wrote(sid, data.size()) != 0) return false;
        client_bytes[sid] += data;
        if (nghttp3_conn_read_stream(srv.conn, sid, reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), fin) < 0) return false;
        if (client().on_acked(conn, sid, data.size()) != 0) return false;
        if (fin) client_fin.insert(sid);
        moved = true;
      }
      // server -> client
      for (; to_client;) {
        std::int64_t sid = -1;
        int fin = 0;
        std::array<nghttp3_vec, 16> v{};
        const auto n = nghttp3_conn_writev_stream(srv.conn, &sid, &fin, v.data(), v.size());
        if (n < 0) return false;
        if (sid < 0) break;
        std::string data;
        for (nghttp3_ssize i = 0; i < n; ++i) data.append(reinterpret_cast<const char*>(v[static_cast<std::size_t>(i)].base), v[static_cast<std::size_t>(i)].len);
        if (data.empty() && !fin) break;
        nghttp3_conn_add_write_offset(srv.conn, sid, data.size());
        server_chunks.emplace_back(sid, data);
        if (client().on_stream_data(conn, sid, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), fin != 0) != 0)
          return false;
        nghttp3_conn_add_ack_offset(srv.conn, sid, data.size());
        if (fin) server_fin.insert(sid);
        moved = true;
      }
      // A request stream both sides ended: QUIC would close it.
      for (auto sid : server_fin)
        if (client_fin.contains(sid) && !closed.contains(sid) && (sid & 3) == 0) {
          closed.insert(sid);
          if (client().on_stream_close(conn, sid, 0, false) != 0) return false;
          nghttp3_conn_close_stream(srv.conn, sid, NGHTTP3_H3_NO_ERROR);
          moved = true;
        }
      if (!moved) return true;
    }
    return true;
  }
};

}  // namespace h3_test
