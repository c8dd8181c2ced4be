// h2::server_session against nghttp2's client session (in memory): requests and their
// HTTP/1.1-style heads, bodies both ways with flow control, trailers (gRPC), concurrency,
// graceful shutdown, timeouts.
#include <catch2/catch.hpp>

#include <rproxy/codec/h2/server_session.hpp>
#include <rproxy/middleware/request_view.hpp>

#include "h2_peer.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace h2 = rproxy::codec::h2;
namespace http1 = rproxy::codec::http1;
using h2_test::client;
using h2_test::fields;
using namespace std::chrono_literals;

namespace {

std::vector<h2::event> of_kind(const std::vector<h2::event>& es, h2::event_kind k) {
  std::vector<h2::event> out;
  for (const auto& e : es)
    if (e.what == k) out.push_back(e);
  return out;
}

}  // namespace

TEST_CASE("h2: a GET becomes an HTTP/1.1 request head with Host from :authority", "[h2]") {
  h2::server_session s;
  client c;
  const auto id = c.request({{":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com:8443"},
                             {":path", "/v1/items?api_key=k%20y&x=1"}, {"authorization", "Bearer tok"},
                             {"cookie", "a=1"}, {"accept", "*/*"}, {"cookie", "session=s3"}});
  const auto ev = c.exchange(s);
  const auto reqs = of_kind(ev, h2::event_kind::request);
  REQUIRE(reqs.size() == 1);
  REQUIRE(reqs[0].stream_id == id);
  REQUIRE(of_kind(ev, h2::event_kind::end_stream).size() == 1);

  const auto& r = s.request(id);
  CHECK(r.method() == "GET");
  CHECK(r.target() == "/v1/items?api_key=k%20y&x=1");
  CHECK(r.path() == "/v1/items");
  CHECK(r.scheme() == "https");
  CHECK(r.authority() == "api.example.com:8443");
  const auto& head = r.head();
  CHECK(head.version == http1::http_version::http11);
  REQUIRE(head.fields.size() == 4);
  CHECK(head.fields[0] == http1::field_view{"host", "api.example.com:8443"});
  CHECK(head.fields[1] == http1::field_view{"authorization", "Bearer tok"});
  CHECK(head.fields[2] == http1::field_view{"cookie", "a=1; session=s3"});  // RFC 9113 §8.2.3
  CHECK(head.fields[3] == http1::field_view{"accept", "*/*"});

  // the middleware's view: header, cookie, query, as for HTTP/1.1
  h2::request_view v{r};
  STATIC_REQUIRE(rproxy::middleware::request_view<h2::request_view>);
  CHECK(v.header("Authorization") == "Bearer tok");
  CHECK(v.cookie("session") == "s3");
  CHECK(v.query("api_key") == "k y");
  std::vector<rproxy::middleware::credential_source> src{{}};
  CHECK(rproxy::middleware::find_credential(v, src) == "tok");

  // the response, with a body
  REQUIRE_FALSE(s.submit_response(id, 200, http1::fields{{"Content-Type", "text/plain"}, {"Connection", "close"},
                                                          {"Keep-Alive", "5"}, {"X-Thing", "1"}}));
  REQUIRE_FALSE(s.send_data(id, "hello "));
  REQUIRE_FALSE(s.send_data(id, "world"));
  REQUIRE_FALSE(s.end_stream(id));
  const auto ev2 = c.exchange(s);
  const auto& resp = c.responses[id];
  CHECK(resp.status() == "200");
  CHECK(resp.head.at("content-type") == "text/plain");  // lowercased
  CHECK(resp.head.count("connection") == 0);            // connection-specific: dropped
  CHECK(resp.head.count("keep-alive") == 0);
  CHECK(resp.head.at("x-thing") == "1");
  CHECK(resp.body == "hello world");
  CHECK(resp.closed);
  CHECK(resp.close_code == NGHTTP2_NO_ERROR);
  const auto closed = of_kind(ev2, h2::event_kind::closed);
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].stream_id == id);
  CHECK(s.has_stream(id));  // until released
  s.release(id);
  CHECK_FALSE(s.has_stream(id));
}

TEST_CASE("h2: a Host field without :authority is the Host; one that differs is refused", "[h2]") {
  h2::server_session s;
  client c;
  const auto ok = c.request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h.example"}});
  const auto same = c.request({{":method", "GET"}, {":scheme", "http"}, {":authority", "a.example"}, {":path", "/"},
                               {"host", "A.example"}});
  const auto differ = c.request({{":method", "GET"}, {":scheme", "http"}, {":authority", "a.example"}, {":path", "/"},
                                 {"host", "b.example"}});
  const auto none = c.request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}});
  const auto ev = c.exchange(s);
  CHECK(s.request(ok).head().fields.find("host") == "h.example");
  CHECK(s.request(same).head().fields.count("host") == 1);
  CHECK(s.request(same).head().fields.find("host") == "a.example");
  const auto rej = of_kind(ev, h2::event_kind::rejected);
  REQUIRE(rej.size() == 2);
  for (const auto& e : rej) {
    if (e.stream_id == differ) CHECK(e.error == h2::error::bad_authority);  // ours: 400
    else CHECK((e.stream_id == none && e.error == h2::error::malformed));    // nghttp2's
  }
  CHECK(c.responses[differ].status() == "400");
  CHECK(c.responses[none].status().empty());  // nghttp2 resets it: no :authority and no Host
  CHECK(c.responses[none].close_code == NGHTTP2_PROTOCOL_ERROR);
  CHECK_FALSE(s.has_stream(differ));
}

TEST_CASE("h2: request body both ways, with flow control given back by consume()", "[h2]") {
  h2::limits lim;
  lim.stream_window = 16 * 1024;
  lim.connection_window = 64 * 1024;
  h2::server_session s{lim};
  client c;
  c.exchange(s);  // SETTINGS acknowledged: before that, a client may use the default 65535
  const std::string body(100 * 1024, 'b');
  const auto id = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/up"},
                             {"content-length", std::to_string(body.size())}},
                            body);
  std::string got;
  bool ended = false;
  // Without consume(), the client stops after one stream window.
  auto ev = c.exchange(s);
  for (const auto& e : of_kind(ev, h2::event_kind::data)) got += e.data;
  CHECK(got.size() == lim.stream_window);
  CHECK(of_kind(ev, h2::event_kind::end_stream).empty());
  CHECK(s.request(id).content_length() == body.size());
  // The application forwards and gives the window back: the rest comes.
  for (int i = 0; i < 100 && !ended; ++i) {
    s.consume(id, got.size());
    const auto before = got.size();
    ev = c.exchange(s);
    for (const auto& e : ev) {
      if (e.what == h2::event_kind::data) got += e.data;
      if (e.what == h2::event_kind::end_stream) ended = true;
    }
    s.consume(id, got.size() - before);
  }
  CHECK(ended);
  CHECK(got == body);

  // response body larger than the client's window (65535 by default): queued, sent as the
  // client consumes, in order
  const std::string down(300 * 1024, 'd');
  REQUIRE_FALSE(s.submit_response(id, 200));
  REQUIRE_FALSE(s.send_data(id, down.substr(0, 1000)));
  c.exchange(s);
  CHECK(c.responses[id].body.size() == 1000);  // deferred, then resumed by send_data
  REQUIRE_FALSE(s.send_data(id, down.substr(1000)));
  CHECK(s.queued(id) > 0);
  REQUIRE_FALSE(s.end_stream(id));
  c.exchange(s, {}, 500);
  CHECK(c.responses[id].body == down);
  CHECK(s.queued(id) == 0);
  CHECK(c.responses[id].closed);
}

TEST_CASE("h2: gRPC-style trailers pass both ways", "[h2]") {
  h2::server_session s;
  client c;
  const auto id = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "grpc.local"},
                             {":path", "/pkg.Svc/Call"}, {"content-type", "application/grpc"}, {"te", "trailers"}},
                            std::string("\0\0\0\0\x02hi", 7), {{"x-checksum", "abc"}});
  const auto ev = c.exchange(s);
  REQUIRE(of_kind(ev, h2::event_kind::request).size() == 1);
  CHECK(s.request(id).head().fields.find("te") == "trailers");
  const auto ends = of_kind(ev, h2::event_kind::end_stream);
  REQUIRE(ends.size() == 1);
  const auto& t = s.request(id).trailers();
  REQUIRE(t.size() == 1);
  CHECK(t[0] == http1::field_view{"x-checksum", "abc"});

  REQUIRE_FALSE(s.submit_response(id, 200, http1::fields{{"content-type", "application/grpc"}}));
  REQUIRE_FALSE(s.send_data(id, std::string("\0\0\0\0\x02ok", 7)));
  REQUIRE_FALSE(s.end_stream(id, http1::fields{{"grpc-status", "0"}, {"grpc-message", "OK"}}));
  c.exchange(s);
  const auto& r = c.responses[id];
  CHECK(r.status() == "200");
  CHECK(r.body == std::string("\0\0\0\0\x02ok", 7));
  REQUIRE(r.trailers.size() == 2);
  CHECK(r.trailers[0] == std::pair<std::string, std::string>{"grpc-status", "0"});
  CHECK(r.trailers[1] == std::pair<std::string, std::string>{"grpc-message", "OK"});
  CHECK(r.closed);

  // trailers-only response (no body)
  const auto id2 = c.request(h2_test::frames::get("/2"));
  c.exchange(s);
  REQUIRE_FALSE(s.submit_response(id2, 200));
  REQUIRE_FALSE(s.end_stream(id2, http1::fields{{"grpc-status", "5"}}));
  c.exchange(s);
  REQUIRE(c.responses[id2].trailers.size() == 1);
  CHECK(c.responses[id2].trailers[0].second == "5");
}

TEST_CASE("h2: many concurrent streams, answered out of order", "[h2]") {
  h2::limits lim;
  lim.max_concurrent_streams = 64;
  h2::server_session s{lim};
  client c;
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 64; ++i) ids.push_back(c.request(h2_test::frames::get("/n/" + std::to_string(i))));
  const auto ev = c.exchange(s);
  REQUIRE(of_kind(ev, h2::event_kind::request).size() == 64);
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    REQUIRE_FALSE(s.submit_response(*it, 200));
    REQUIRE_FALSE(s.send_data(*it, s.request(*it).target()));
    REQUIRE_FALSE(s.end_stream(*it));
  }
  const auto ev2 = c.exchange(s);
  CHECK(of_kind(ev2, h2::event_kind::closed).size() == 64);
  for (int i = 0; i < 64; ++i) CHECK(c.responses[ids[i]].body == "/n/" + std::to_string(i));
}

TEST_CASE("h2: streams over an acknowledged max_concurrent_streams end the connection", "[h2]") {
  h2::limits lim;
  lim.max_concurrent_streams = 4;
  h2::server_session s{lim};
  client c;
  c.exchange(s);  // settings exchanged: the client knows the limit and would queue; so write raw
  namespace f = h2_test::frames;
  std::string raw;
  for (std::uint32_t id = 1; id <= 11; id += 2) raw += f::headers(id, f::get(), true);
  const auto ev = s.feed(raw, {});
  std::size_t delivered = 0;
  for (const auto& e : ev) delivered += e.what == h2::event_kind::request;
  CHECK(delivered == 4);
  // nghttp2 1.52 treats the fifth as a connection error (RFC 9113 §5.1.2 allows a stream
  // error; a client that ignores an acknowledged limit gets no more streams either way).
  const auto g = f::find(f::parse(s.pending_output()), f::GOAWAY);
  REQUIRE(g);
  CHECK(g->code() == NGHTTP2_PROTOCOL_ERROR);
  CHECK(g->last_stream() == 7);
  CHECK(s.failed());
}

TEST_CASE("h2: graceful shutdown lets in-flight streams finish", "[h2]") {
  h2::server_session s;
  client c;
  const auto a = c.request(h2_test::frames::get("/a"));
  c.exchange(s);
  s.shutdown();
  const auto b = c.request(h2_test::frames::get("/b"));  // after GOAWAY: refused by the server
  c.exchange(s);
  REQUIRE(c.goaway_code == NGHTTP2_NO_ERROR);
  CHECK(c.goaway_last == a);
  CHECK_FALSE(s.done());
  REQUIRE_FALSE(s.submit_response(a, 204, true));
  c.exchange(s);
  CHECK(c.responses[a].status() == "204");
  CHECK_FALSE(s.has_stream(b));
  CHECK(s.done());
}

TEST_CASE("h2: body over max_body_size: 413 from content-length, reset mid-stream", "[h2]") {
  h2::limits lim;
  lim.max_body_size = 1000;
  h2::server_session s{lim};
  client c;
  const auto big_cl = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"},
                                 {"content-length", "5000"}},
                                std::string(5000, 'x'));
  const auto no_cl = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}},
                               std::string(5000, 'y'));
  const auto ev = c.exchange(s);
  CHECK(c.responses[big_cl].status() == "413");
  bool big_delivered = false, reset_seen = false;
  for (const auto& e : ev) {
    if (e.what == h2::event_kind::request && e.stream_id == big_cl) big_delivered = true;
    if (e.what == h2::event_kind::reset && e.stream_id == no_cl) {
      reset_seen = true;
      CHECK(e.error == h2::error::body_too_large);
    }
  }
  CHECK_FALSE(big_delivered);
  CHECK(reset_seen);
  CHECK(c.responses[no_cl].status() == "413");  // no response had started
  CHECK(c.responses[no_cl].closed);
  // the connection goes on, and its window was given back
  const auto next = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}},
                              std::string(900, 'z'));
  const auto ev2 = c.exchange(s);
  std::string got;
  for (const auto& e : ev2)
    if (e.what == h2::event_kind::data && e.stream_id == next) got += e.data;
  CHECK(got.size() == 900);
}

TEST_CASE("h2: reset streams give their unconsumed window back to the connection", "[h2]") {
  h2::limits lim;
  lim.stream_window = 32 * 1024;
  lim.connection_window = 64 * 1024;
  h2::server_session s{lim};
  client c;
  // Four times a stream that sends a full stream window, never consumed, then is reset by the
  // client: without the session's give-back, the connection window (64 KiB) would be spent.
  for (int i = 0; i < 4; ++i) {
    const auto id = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}},
                              std::string(32 * 1024, 'q'));
    c.exchange(s);
    c.reset(id);
    const auto ev = c.exchange(s);
    const auto resets = of_kind(ev, h2::event_kind::reset);
    REQUIRE(resets.size() == 1);
    CHECK(resets[0].code == h2::code::cancel);
    CHECK(resets[0].error == h2::error::cancelled);
    s.release(id);
  }
  const auto id = c.request({{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}},
                            std::string(20 * 1024, 'r'));
  const auto ev = c.exchange(s);
  std::size_t got = 0;
  for (const auto& e : ev)
    if (e.what == h2::event_kind::data && e.stream_id == id) got += e.data.size();
  CHECK(got == 20 * 1024);
  CHECK(s.streams() == 1);
}

TEST_CASE("h2: header and idle timeouts, with the caller's clock", "[h2]") {
  namespace f = h2_test::frames;
  const h2::clock::time_point t0{};
  SECTION("no request within header_timeout: GOAWAY NO_ERROR") {
    h2::server_session s;
    s.feed(std::string(f::preface) + f::settings(), t0);
    CHECK(s.tick(t0 + 9s).empty());
    const auto ev = s.tick(t0 + 11s);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].what == h2::event_kind::goaway_sent);
    CHECK(ev[0].error == h2::error::header_timeout);
    const auto g = f::find(f::parse(s.pending_output()), f::GOAWAY);
    REQUIRE(g);
    CHECK(g->code() == NGHTTP2_NO_ERROR);
  }
  SECTION("a header block left open (no END_HEADERS): GOAWAY ENHANCE_YOUR_CALM") {
    h2::server_session s;
    s.feed(std::string(f::preface) + f::settings() + f::headers(1, f::get(), true, true), t0);  // one request
    s.feed(f::headers(3, f::get(), true, false), t0 + 5s);  // CONTINUATION never comes
    CHECK(s.tick(t0 + 14s).empty());
    const auto ev = s.tick(t0 + 16s);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].error == h2::error::header_timeout);
    const auto g = f::find(f::parse(s.pending_output()), f::GOAWAY);
    REQUIRE(g);
    CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
  }
  SECTION("idle: no open stream for idle_timeout") {
    h2::server_session s;
    client c;
    const auto id = c.request(f::get());
    c.exchange(s, t0);
    REQUIRE_FALSE(s.submit_response(id, 204, true));
    c.exchange(s, t0 + 1s);
    s.release(id);
    CHECK(s.tick(t0 + 60s).empty());
    const auto ev = s.tick(t0 + 62s);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].error == h2::error::idle_timeout);
    c.exchange(s, t0 + 62s);
    CHECK(c.goaway_code == NGHTTP2_NO_ERROR);
    CHECK(s.done());
  }
}

TEST_CASE("h2: extended CONNECT (RFC 8441) only when enabled; plain CONNECT maps to authority-form", "[h2]") {
  namespace f = h2_test::frames;
  const fields ws{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"}, {":authority", "chat.example"},
                  {":path", "/chat"}, {"sec-websocket-version", "13"}};
  SECTION("enabled") {
    h2::limits lim;
    lim.enable_connect_protocol = true;
    h2::server_session s{lim};
    const auto ev = s.feed(std::string(f::preface) + f::settings() + f::headers(1, ws, false), {});
    REQUIRE(of_kind({ev.begin(), ev.end()}, h2::event_kind::request).size() == 1);
    const auto& r = s.request(1);
    CHECK(r.method() == "CONNECT");
    CHECK(r.protocol() == "websocket");
    CHECK(r.target() == "/chat");
    // the server advertised SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) = 1
    const auto st = f::find(f::parse(s.pending_output()), f::SETTINGS);
    REQUIRE(st);
    CHECK(st->payload.find(std::string("\x00\x08\x00\x00\x00\x01", 6)) != std::string::npos);
  }
  SECTION("disabled: :protocol is malformed") {
    h2::server_session s;
    const auto ev = s.feed(std::string(f::preface) + f::settings() + f::headers(1, ws, false), {});
    CHECK(of_kind({ev.begin(), ev.end()}, h2::event_kind::request).empty());
    const auto rst = f::find(f::parse(s.pending_output()), f::RST_STREAM, 1);
    REQUIRE(rst);
    CHECK(rst->code() == NGHTTP2_PROTOCOL_ERROR);
  }
  SECTION("plain CONNECT") {
    h2::server_session s;
    const auto ev = s.feed(std::string(f::preface) + f::settings() +
                               f::headers(1, {{":method", "CONNECT"}, {":authority", "db.internal:5432"}}, false),
                           {});
    REQUIRE(of_kind({ev.begin(), ev.end()}, h2::event_kind::request).size() == 1);
    CHECK(s.request(1).target() == "db.internal:5432");
    CHECK(s.request(1).head().fields.find("host") == "db.internal:5432");
  }
}

TEST_CASE("h2: a 32 MiB download is not a WINDOW_UPDATE flood", "[h2]") {
  h2::server_session s;  // default limits
  client c;
  const auto id = c.request(h2_test::frames::get("/big"));
  c.exchange(s);
  REQUIRE_FALSE(s.submit_response(id, 200));
  const std::string chunk(1 << 20, 'd');
  std::size_t sent = 0;
  for (int i = 0; i < 2000 && !c.responses[id].closed; ++i) {
    if (sent < 32 && s.queued(id) < chunk.size()) {
      REQUIRE_FALSE(s.send_data(id, chunk));
      if (++sent == 32) REQUIRE_FALSE(s.end_stream(id));
    }
    c.exchange(s, {}, 4);
  }
  CHECK_FALSE(s.failed());
  CHECK_FALSE(c.goaway_code);
  CHECK(c.responses[id].body.size() == 32u << 20);
  CHECK(c.responses[id].closed);
}
