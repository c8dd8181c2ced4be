// codec/h3/server_session.hpp against nghttp3's own client (nghttp3_conn_client_new): requests
// the client encodes (QPACK, frames) are decoded by the session, responses the session encodes
// are decoded by the client, and every byte of each stream is credited back exactly once.
// QUIC is simulated: stream bytes go straight across, acknowledged at once.
#include <catch2/catch.hpp>

#include <rproxy/codec/h3/server_session.hpp>

#include <nghttp3/nghttp3.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h3 = rproxy::codec::h3;

namespace {

struct client {
  struct response {
    std::map<std::string, std::string> fields, trailers;
    std::string body;
    bool ended = false, in_trailers = false;
  };
  nghttp3_conn* c = nullptr;
  std::map<std::int64_t, response> responses;
  std::string upload;  // the body of a POST
  std::size_t upload_at = 0;
  std::int64_t goaway = -1;

  client() {
    nghttp3_callbacks cb{};
    cb.recv_header = [](nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* n, nghttp3_rcbuf* v, std::uint8_t, void* ud, void*) {
      auto& r = static_cast<client*>(ud)->responses[id];
      const auto nb = nghttp3_rcbuf_get_buf(n), vb = nghttp3_rcbuf_get_buf(v);
      (r.in_trailers ? r.trailers : r.fields)[std::string(reinterpret_cast<const char*>(nb.base), nb.len)] =
          std::string(reinterpret_cast<const char*>(vb.base), vb.len);
      return 0;
    };
    cb.recv_trailer = cb.recv_header;
    cb.begin_trailers = [](nghttp3_conn*, std::int64_t id, void* ud, void*) {
      static_cast<client*>(ud)->responses[id].in_trailers = true;
      return 0;
    };
    cb.recv_data = [](nghttp3_conn*, std::int64_t id, const std::uint8_t* d, std::size_t n, void* ud, void*) {
      static_cast<client*>(ud)->responses[id].body.append(reinterpret_cast<const char*>(d), n);
      return 0;
    };
    cb.end_stream = [](nghttp3_conn*, std::int64_t id, void* ud, void*) {
      static_cast<client*>(ud)->responses[id].ended = true;
      return 0;
    };
    cb.shutdown = [](nghttp3_conn*, std::int64_t id, void* ud) {
      static_cast<client*>(ud)->goaway = id;
      return 0;
    };
    nghttp3_settings s;
    nghttp3_settings_default(&s);
    REQUIRE(nghttp3_conn_client_new(&c, &cb, &s, nullptr, this) == 0);
    REQUIRE(nghttp3_conn_bind_control_stream(c, 2) == 0);
    REQUIRE(nghttp3_conn_bind_qpack_streams(c, 6, 10) == 0);
  }
  ~client() { nghttp3_conn_del(c); }

  static nghttp3_nv nv(std::string_view n, std::string_view v) {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
            v.size(), NGHTTP3_NV_FLAG_NONE};
  }
  void request(std::int64_t id, std::string_view method, std::string_view path, bool with_body) {
    std::string cl = std::to_string(upload.size());
    std::vector<nghttp3_nv> h{nv(":method", method), nv(":scheme", "https"), nv(":authority", "example.test"), nv(":path", path),
                              nv("cookie", "a=1"), nv("cookie", "b=2")};
    if (with_body) h.push_back(nv("content-length", cl));
    nghttp3_data_reader dr{[](nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t, std::uint32_t* flags, void* ud, void*) -> nghttp3_ssize {
      auto& self = *static_cast<client*>(ud);
      const auto n = std::min<std::size_t>(self.upload.size() - self.upload_at, 16384);
      vec[0] = {reinterpret_cast<std::uint8_t*>(self.upload.data() + self.upload_at), n};
      self.upload_at += n;
      if (self.upload_at == self.upload.size()) *flags |= NGHTTP3_DATA_FLAG_EOF;
      return 1;
    }};
    REQUIRE(nghttp3_conn_submit_request(c, id, h.data(), h.size(), with_body ? &dr : nullptr, nullptr) == 0);
  }
};

/// Moves stream bytes both ways until neither side has more. `credit[id]`: bytes the session
/// credited back on stream id; `sent[id]`: bytes the client sent on it.
struct pump {
  pump(client& c, h3::server_session& session) : cl(c), s(session) {}
  client& cl;
  h3::server_session& s;
  std::vector<h3::event> events;
  std::map<std::int64_t, std::string> bodies;
  std::map<std::int64_t, std::uint64_t> credit, sent;
  bool consume_at_once = true;

  void run() {
    for (int round = 0; round < 10000; ++round) {
      bool moved = false;
      for (;;) {  // client -> server
        std::int64_t id = -1;
        int fin = 0;
        nghttp3_vec v[16];
        const auto n = nghttp3_conn_writev_stream(cl.c, &id, &fin, v, 16);
        REQUIRE(n >= 0);
        if (id < 0) break;
        std::string bytes;
        for (nghttp3_ssize i = 0; i < n; ++i) bytes.append(reinterpret_cast<const char*>(v[i].base), v[i].len);
        if (bytes.empty() && !fin) break;
        REQUIRE(nghttp3_conn_add_write_offset(cl.c, id, bytes.size()) == 0);
        REQUIRE(nghttp3_conn_add_ack_offset(cl.c, id, bytes.size()) == 0);
        sent[id] += bytes.size();
        for (const auto& e : s.feed(id, std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), fin != 0)) take(e);
        REQUIRE(s.failed() == 0);
        actions();
        moved = true;
      }
      for (const auto& e : s.poll()) take(e);
      actions();
      for (;;) {  // server -> client
        std::int64_t id = -1;
        bool fin = false;
        nghttp3_vec v[16];
        const auto n = s.writev(id, fin, std::span<nghttp3_vec>(v, 16));
        REQUIRE(n >= 0);
        if (id < 0) break;
        std::string bytes;
        for (std::ptrdiff_t i = 0; i < n; ++i) bytes.append(reinterpret_cast<const char*>(v[i].base), v[i].len);
        if (bytes.empty() && !fin) break;
        REQUIRE(s.wrote(id, bytes.size()) == 0);
        const auto r = nghttp3_conn_read_stream(cl.c, id, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), fin ? 1 : 0);
        REQUIRE(r >= 0);
        REQUIRE(s.acked(id, bytes.size()) == 0);
        moved = true;
      }
      if (!moved) return;
    }
    FAIL("the streams never went quiet");
  }
  void take(const h3::event& e) {
    events.push_back(e);
    if (e.what == h3::event_kind::data) {
      bodies[e.stream_id] += e.data;
      if (consume_at_once) s.consume(e.stream_id, e.data.size());
    }
  }
  void actions() {
    for (const auto& a : s.take_actions())
      if (a.what == h3::action_kind::extend) credit[a.stream_id] += a.n;
  }
  bool saw(h3::event_kind k, std::int64_t id) const {
    for (const auto& e : events)
      if (e.what == k && e.stream_id == id) return true;
    return false;
  }
};

struct server {
  h3::server_session s;
  server() { REQUIRE(s.bind(3, 7, 11)); }
};

struct field {
  std::string_view name, value;
};

}  // namespace

TEST_CASE("h3 session: a GET decoded, the response (fields, body, trailers) encoded for nghttp3's client", "[h3]") {
  client cl;
  server sv;
  pump p{cl, sv.s};
  cl.request(0, "GET", "/hello?x=1", false);
  p.run();
  REQUIRE(p.saw(h3::event_kind::request, 0));
  REQUIRE(p.saw(h3::event_kind::end_stream, 0));
  const auto& r = sv.s.request(0);
  CHECK(r.method() == "GET");
  CHECK(r.target() == "/hello?x=1");
  CHECK(r.authority() == "example.test");
  CHECK(h3::request_view(r).header("cookie") == "a=1; b=2");
  std::vector<field> fields{{"Content-Type", "text/plain"}, {"Connection", "close"}, {"X-Up", "yes"}};
  REQUIRE(sv.s.submit_response(0, 200, fields) == 0);
  REQUIRE(sv.s.send_data(0, "hello, ") == 0);
  REQUIRE(sv.s.send_data(0, "world") == 0);
  std::vector<field> trailers{{"Grpc-Status", "0"}};
  REQUIRE(sv.s.end_stream(0, trailers) == 0);
  p.run();
  const auto& resp = cl.responses[0];
  CHECK(resp.fields.at(":status") == "200");
  CHECK(resp.fields.at("content-type") == "text/plain");
  CHECK(resp.fields.at("x-up") == "yes");
  CHECK_FALSE(resp.fields.contains("connection"));  // connection-specific: not in HTTP/3
  CHECK(resp.body == "hello, world");
  CHECK(resp.trailers.at("grpc-status") == "0");
  CHECK(resp.ended);
  CHECK(sv.s.queued(0) == 0);  // all acknowledged: nothing held
}

TEST_CASE("h3 session: a 300 KB upload arrives whole and every byte of the stream is credited once", "[h3]") {
  client cl;
  server sv;
  pump p{cl, sv.s};
  cl.upload.resize(300 * 1024);
  for (std::size_t i = 0; i < cl.upload.size(); ++i) cl.upload[i] = static_cast<char>('a' + i % 26);
  cl.request(0, "POST", "/up", true);
  p.run();
  REQUIRE(p.saw(h3::event_kind::request, 0));
  CHECK(sv.s.request(0).content_length() == cl.upload.size());
  CHECK(p.bodies[0] == cl.upload);
  CHECK(p.saw(h3::event_kind::end_stream, 0));
  CHECK(p.credit[0] == p.sent[0]);  // framing (read_stream, deferred_consume) + body (consume)
  CHECK(p.credit[2] == p.sent[2]);  // the control stream
}

TEST_CASE("h3 session: body credit waits for consume()", "[h3]") {
  client cl;
  server sv;
  pump p{cl, sv.s};
  p.consume_at_once = false;
  cl.upload.assign(50000, 'z');
  cl.request(0, "PUT", "/later", true);
  p.run();
  CHECK(p.bodies[0].size() == 50000);
  CHECK(p.sent[0] - p.credit[0] == 50000);  // the body is not credited yet
  sv.s.consume(0, 50000);
  p.actions();
  CHECK(p.credit[0] == p.sent[0]);
}

TEST_CASE("h3 session: a body over its content-length or the limit is refused", "[h3]") {
  client cl;
  h3::limits l;
  l.max_body_size = 1000;
  h3::server_session s(l);
  REQUIRE(s.bind(3, 7, 11));
  pump p{cl, s};
  cl.upload.assign(5000, 'x');
  cl.request(0, "POST", "/too-big", true);
  p.run();
  CHECK_FALSE(p.saw(h3::event_kind::request, 0));  // refused on its content-length: never a flow
  CHECK(cl.responses[0].fields.at(":status") == "413");
}

TEST_CASE("h3 session: shutdown sends GOAWAY; the request in flight still gets its response", "[h3]") {
  client cl;
  server sv;
  pump p{cl, sv.s};
  cl.request(0, "GET", "/a", false);
  p.run();
  REQUIRE(p.saw(h3::event_kind::request, 0));
  sv.s.shutdown();
  p.run();
  CHECK(cl.goaway == 4);  // requests below stream 4 are processed
  std::vector<field> none;
  REQUIRE(sv.s.submit_response(0, 204, none, true) == 0);
  p.run();
  CHECK(cl.responses[0].fields.at(":status") == "204");
  CHECK(cl.responses[0].ended);
}
