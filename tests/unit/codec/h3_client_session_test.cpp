// codec/h3/client_session.hpp against an HTTP/3 server of nghttp3 alone (tests/support/
// h3_client_pair.hpp): what our client sends, nghttp3 decodes; what nghttp3 answers, ours decodes.
// Trailers (at the end) against our own server side, codec/h3/server_session.hpp, which sends them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/codec/h3/server_session.hpp>

#include "h3_client_pair.hpp"

namespace h3 = rproxy::codec::h3;

namespace {
/// A request head (designated initializers that leave members out warn under -Wextra on g++ 12).
h3::request_head req(std::string method, std::string authority, std::string path = "/", std::vector<h3::field> headers = {}) {
  h3::request_head r;
  r.method = std::move(method);
  r.authority = std::move(authority);
  r.path = std::move(path);
  r.headers = std::move(headers);
  return r;
}
}  // namespace

TEST_CASE("h3 client: a GET reaches the server as sent, the response comes back whole", "[h3]") {
  h3_test::pair p;
  p.srv.respond = [](const h3_test::request& r) {
    return h3_test::reply{201, {{"x-path", r.get(":path")}, {"content-length", "5"}}, "hello"};
  };
  CHECK(p.client().submit(req("GET", "a"), 1).error() == h3::client_error::not_ready);  // before the handshake
  p.start();
  REQUIRE(p.conn.app().handler().ready);
  auto sid = p.client().submit(req("GET", "api.example", "/p?q=1", {{"X-Id", "42"}, {"Connection", "close"}}), 7);
  REQUIRE(sid);
  REQUIRE(p.pump());
  const auto& req = p.srv.requests.at(*sid);
  CHECK(req.get(":method") == "GET");
  CHECK(req.get(":scheme") == "https");
  CHECK(req.get(":authority") == "api.example");
  CHECK(req.get(":path") == "/p?q=1");
  CHECK(req.get("x-id") == "42");
  CHECK(req.get("connection").empty());
  CHECK(req.ended);
  const auto& resp = p.conn.app().handler().responses.at(7);
  CHECK(resp.status == 201);
  CHECK(resp.body == "hello");
  CHECK(resp.ended);
  CHECK_FALSE(resp.error);
  CHECK(resp.headers == std::vector<h3::field>{{"x-path", "/p?q=1"}, {"content-length", "5"}});
  CHECK(p.client().open_streams() == 0);  // closed once both sides ended
  CHECK(p.conn.credit[*sid] > 5);  // auto credit: the body and the framing were given back
}

TEST_CASE("h3 client: request bodies stream in pieces; response bytes are credited when consumed", "[h3]") {
  h3_test::pair p;
  p.srv.respond = [](const h3_test::request& r) { return h3_test::reply{200, {}, std::string(100000, 'r') + std::to_string(r.body.size())}; };
  p.start();
  auto sid = p.client().submit(req("POST", "a", "/up"), 1, /*has_body=*/true, /*auto_credit=*/false);
  REQUIRE(sid);
  std::string sent;
  for (int i = 0; i < 10; ++i) {
    const std::string piece(7000 + i, static_cast<char>('a' + i));
    sent += piece;
    REQUIRE_FALSE(p.client().send_body(*sid, piece, false));
    REQUIRE(p.pump());
  }
  CHECK_FALSE(p.srv.requests.at(*sid).ended);  // no fin yet: the server waits
  REQUIRE_FALSE(p.client().send_body(*sid, "end", true));
  REQUIRE(p.pump());
  sent += "end";
  CHECK(p.srv.requests.at(*sid).body == sent);
  CHECK(p.client().body_buffered(*sid) == 0);  // acknowledged bytes are freed
  const auto& resp = p.conn.app().handler().responses.at(1);
  CHECK(resp.body == std::string(100000, 'r') + std::to_string(sent.size()));
  // auto_credit off: body bytes are not credited until consume(); only framing was.
  const auto before = p.conn.credit[*sid];
  CHECK(before < resp.body.size());
  p.client().consume(*sid, resp.body.size());
  CHECK(p.conn.credit[*sid] == before + resp.body.size());
  CHECK(p.client().send_body(*sid, "more", true) == h3::client_error::stream_reset);  // gone
}

TEST_CASE("h3 client: many streams on one connection, submitted from inside hooks too", "[h3]") {
  h3_test::pair p;
  p.srv.respond = [](const h3_test::request& r) { return h3_test::reply{200, {}, r.get(":path")}; };
  p.start();
  auto& rec = p.conn.app().handler();
  int more = 50;
  rec.on_end = [&](std::uint64_t) {
    if (more-- > 0) (void)p.client().submit(req("GET", "a", "/n" + std::to_string(1000 + more)), 1000 + static_cast<std::uint64_t>(more));
  };
  for (int i = 0; i < 20; ++i) REQUIRE(p.client().submit(req("GET", "a", "/n" + std::to_string(i)), static_cast<std::uint64_t>(i)));
  REQUIRE(p.pump());
  CHECK(rec.responses.size() == 70);  // 20, then 50 more from inside on_response_end
  for (const auto& [tag, r] : rec.responses) {
    CHECK(r.ended);
    CHECK(r.body == "/n" + std::to_string(tag));
  }
}

TEST_CASE("h3 client: a bad response head fails that stream only, with a reset", "[h3]") {
  h3_test::pair p({.max_fields = 4, .max_field_bytes = 64 * 1024});
  p.srv.respond = [](const h3_test::request& r) {
    h3_test::reply rep{200, {}, "x"};
    if (r.get(":path") == "/bad")
      for (char i = 0; i < 10; ++i) rep.headers.push_back({std::string{'f', static_cast<char>('0' + i)}, "v"});  // (g++ 12 -O3 warns on "f" + to_string)
    return rep;
  };
  p.start();
  auto bad = p.client().submit(req("GET", "a", "/bad"), 1);
  auto good = p.client().submit(req("GET", "a", "/good"), 2);
  REQUIRE(bad);
  REQUIRE(good);
  REQUIRE(p.pump());
  const auto& rec = p.conn.app().handler();
  CHECK(rec.responses.at(1).error == h3::client_error::too_many_fields);
  CHECK_FALSE(rec.responses.at(1).ended);
  CHECK(p.conn.resets.at(*bad) == NGHTTP3_H3_MESSAGE_ERROR);
  CHECK(rec.responses.at(2).ended);
  CHECK(rec.responses.at(2).body == "x");
}

TEST_CASE("h3 client: a reset stream and a lost connection fail their requests", "[h3]") {
  h3_test::pair p;
  p.start();
  auto a = p.client().submit(req("GET", "a", "/a"), 1);
  auto b = p.client().submit(req("GET", "a", "/b"), 2);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(p.client().on_stream_reset(p.conn, *a, NGHTTP3_H3_REQUEST_REJECTED) == 0);
  const auto& rec = p.conn.app().handler();
  CHECK(rec.responses.at(1).error == h3::client_error::request_rejected);
  CHECK(rec.responses.at(1).error == rproxy::condition::retry_safe);
  p.client().on_closed(p.conn);
  CHECK(rec.responses.at(2).error == h3::client_error::connection_lost);
  CHECK_FALSE(rec.responses.at(2).error == rproxy::condition::retry_safe);
  CHECK(rec.closed == std::errc::connection_aborted);
  CHECK(p.conn.done);  // the connection was told the app is done
  CHECK(p.client().submit(req("GET", "a"), 3).error() == h3::client_error::not_ready);
}

// --- trailers, against our own HTTP/3 server (codec/h3/server_session.hpp) ----------------------

namespace {

/// Records responses with their trailer section (the optional on_response_trailers hook).
struct trailer_recorder : h3_test::recorder {
  std::map<std::uint64_t, std::vector<h3::field>> trailers;
  std::vector<std::string> order;  // "trailers:<tag>", "end:<tag>"
  template <class S>
  void on_response_trailers(S&, std::uint64_t tag, std::vector<h3::field>& t) {
    trailers[tag] = std::move(t);
    order.push_back("trailers:" + std::to_string(tag));
  }
  template <class S>
  void on_response_end(S& s, std::uint64_t tag) {
    order.push_back("end:" + std::to_string(tag));
    h3_test::recorder::on_response_end(s, tag);
  }
};

/// What the server answers to one request: status, head, body, trailers.
struct answer {
  unsigned status = 200;
  std::vector<h3::field> headers;
  std::string body;
  std::vector<h3::field> trailers;
  bool trailers_only = false;  ///< one HEADERS frame with END_STREAM (gRPC's Trailers-Only)
};

/// What the server received on one request stream: its body and trailer section.
struct received {
  std::string body;
  std::vector<h3::field> trailers;
};

/// client_session<Handler> wired to codec::h3::server_session with no QUIC in between.
template <class Handler>
struct server_pair {
  using session = h3::client_session<Handler, h3_test::fake_conn>;
  h3_test::fake_conn<session> conn;
  h3::server_session srv;
  std::function<answer(std::string_view path)> respond = [](std::string_view) { return answer{}; };
  std::set<std::int64_t> client_fin, server_fin, closed;
  std::map<std::string, received, std::less<>> got;  ///< by path

  std::map<std::int64_t, std::string> body_of;

  explicit server_pair(h3::client_limits l = {}) : conn(Handler{}, l) { REQUIRE(srv.bind(3, 7, 11)); }
  session& client() { return conn.app(); }
  Handler& rec() { return conn.app().handler(); }
  void start() {
    REQUIRE(client().on_ready(conn) == 0);
    client().on_handshake_completed(conn);
  }

  void serve(std::span<const h3::event> evs) {
    for (const auto& e : evs) {
      if (e.what == h3::event_kind::data) body_of[e.stream_id].append(e.data);
      if (e.what == h3::event_kind::end_stream) {
        const auto& rq = srv.request(e.stream_id);
        auto& g = got[std::string(rq.path())];
        g.body = std::move(body_of[e.stream_id]);
        for (const auto& f : rq.trailers()) g.trailers.push_back({std::string(f.name), std::string(f.value)});
        const auto a = respond(rq.path());
        if (a.trailers_only) {
          REQUIRE(srv.submit_response(e.stream_id, a.status, a.headers, true) == 0);
          continue;
        }
        REQUIRE(srv.submit_response(e.stream_id, a.status, a.headers) == 0);
        if (!a.body.empty()) REQUIRE(srv.send_data(e.stream_id, a.body) == 0);
        REQUIRE(srv.end_stream(e.stream_id, a.trailers) == 0);
      }
    }
    (void)srv.take_actions();  // (credit: the fake QUIC does not count it on this side)
  }

  /// Moves bytes both ways until nothing moves; false if either side failed.
  bool pump() {
    for (int round = 0; round < 1000; ++round) {
      bool moved = false;
      for (;;) {  // client -> server
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
        serve(srv.feed(sid, std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), fin));
        if (srv.failed() != 0) return false;
        if (client().on_acked(conn, sid, data.size()) != 0) return false;
        if (fin) client_fin.insert(sid);
        moved = true;
      }
      for (;;) {  // server -> client
        std::int64_t sid = -1;
        bool fin = false;
        std::array<nghttp3_vec, 16> v{};
        const auto n = srv.writev(sid, fin, std::span<nghttp3_vec>(v));
        if (n < 0) return false;
        if (sid < 0) break;
        std::string data;
        for (std::ptrdiff_t i = 0; i < n; ++i) data.append(reinterpret_cast<const char*>(v[static_cast<std::size_t>(i)].base), v[static_cast<std::size_t>(i)].len);
        if (data.empty() && !fin) break;
        if (srv.wrote(sid, data.size()) != 0) return false;
        if (client().on_stream_data(conn, sid, std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), fin) != 0) return false;
        if (srv.acked(sid, data.size()) != 0) return false;
        if (fin) server_fin.insert(sid);
        moved = true;
      }
      for (auto sid : server_fin)  // a request stream both sides ended: QUIC would close it
        if (client_fin.contains(sid) && !closed.contains(sid) && (sid & 3) == 0) {
          closed.insert(sid);
          if (client().on_stream_close(conn, sid, 0, false) != 0) return false;
          if (srv.stream_closed(sid, 0, false) != 0) return false;
          serve(srv.poll());
          moved = true;
        }
      if (!moved) return true;
    }
    return true;
  }
};

}  // namespace

TEST_CASE("h3 client: a response's trailers reach the handler before its end (gRPC status)", "[h3]") {
  server_pair<trailer_recorder> p;
  p.respond = [](std::string_view path) {
    answer a;
    a.headers = {{"content-type", "application/grpc"}};
    if (path == "/with") {
      a.body = std::string(40000, 'g');
      a.trailers = {{"grpc-status", "0"}, {"Grpc-Message", "fine"}, {"x-trace", "t1"}};
    } else if (path == "/bodyless") {
      a.trailers = {{"grpc-status", "5"}};  // no DATA frame: the head, then the trailers
    } else {
      a.body = "plain";
    }
    return a;
  };
  p.start();
  REQUIRE(p.client().submit(req("POST", "a", "/with"), 1));
  REQUIRE(p.client().submit(req("POST", "a", "/bodyless"), 2));
  REQUIRE(p.client().submit(req("GET", "a", "/none"), 3));
  REQUIRE(p.pump());
  auto& rec = p.rec();
  CHECK(rec.responses.at(1).body == std::string(40000, 'g'));
  CHECK(rec.responses.at(1).ended);
  CHECK(rec.trailers.at(1) == std::vector<h3::field>{{"grpc-status", "0"}, {"grpc-message", "fine"}, {"x-trace", "t1"}});
  CHECK(rec.responses.at(2).ended);
  CHECK(rec.responses.at(2).body.empty());
  CHECK(rec.trailers.at(2) == std::vector<h3::field>{{"grpc-status", "5"}});
  CHECK(rec.responses.at(3).body == "plain");
  CHECK(rec.responses.at(3).ended);
  CHECK_FALSE(rec.trailers.contains(3));  // none sent: no hook call
  // The trailers come just before the end, for each stream.
  for (std::uint64_t tag : {1u, 2u}) {
    const auto t = std::find(rec.order.begin(), rec.order.end(), "trailers:" + std::to_string(tag));
    REQUIRE(t != rec.order.end());
    REQUIRE(t + 1 != rec.order.end());
    CHECK(*(t + 1) == "end:" + std::to_string(tag));
  }
  CHECK(p.client().open_streams() == 0);
}

TEST_CASE("h3 client: a trailer section over the limits fails its stream only", "[h3]") {
  server_pair<trailer_recorder> p({.max_fields = 4, .max_field_bytes = 1024});
  p.respond = [](std::string_view path) {
    answer a;
    a.body = "b";
    if (path == "/many")
      for (char i = 0; i < 5; ++i) a.trailers.push_back({std::string{'t', static_cast<char>('0' + i)}, "v"});
    else if (path == "/large")
      a.trailers = {{"x-big", std::string(1000, 'z')}};
    else
      a.trailers = {{"t0", "v"}, {"t1", "v"}, {"t2", "v"}, {"t3", "v"}};  // at the count limit: fine
    return a;
  };
  p.start();
  auto many = p.client().submit(req("GET", "a", "/many"), 1);
  auto large = p.client().submit(req("GET", "a", "/large"), 2);
  REQUIRE(p.client().submit(req("GET", "a", "/fits"), 3));
  REQUIRE(many);
  REQUIRE(large);
  (void)p.pump();  // (the reset streams leave the server side half open: no matter here)
  auto& rec = p.rec();
  CHECK(rec.responses.at(1).error == h3::client_error::too_many_fields);
  CHECK_FALSE(rec.responses.at(1).ended);
  CHECK(p.conn.resets.at(*many) == NGHTTP3_H3_MESSAGE_ERROR);
  CHECK(rec.responses.at(2).error == h3::client_error::fields_too_large);
  CHECK_FALSE(rec.responses.at(2).ended);
  CHECK(p.conn.resets.at(*large) == NGHTTP3_H3_MESSAGE_ERROR);
  CHECK_FALSE(rec.trailers.contains(1));
  CHECK_FALSE(rec.trailers.contains(2));
  CHECK(rec.responses.at(3).ended);
  CHECK(rec.trailers.at(3).size() == 4);
}

TEST_CASE("h3 client: a handler without the trailers hook gets the response, trailers dropped", "[h3]") {
  server_pair<h3_test::recorder> p;
  p.respond = [](std::string_view) {
    answer a;
    a.body = "body";
    a.trailers = {{"grpc-status", "0"}};
    return a;
  };
  p.start();
  REQUIRE(p.client().submit(req("GET", "a", "/"), 1));
  REQUIRE(p.pump());
  CHECK(p.rec().responses.at(1).body == "body");
  CHECK(p.rec().responses.at(1).ended);
  CHECK_FALSE(p.rec().responses.at(1).error);
}

TEST_CASE("h3 client: request trailers follow the body as a trailing HEADERS frame", "[h3]") {
  server_pair<trailer_recorder> p;
  p.start();
  auto a = p.client().submit(req("POST", "a", "/with", {{"content-type", "application/grpc"}}), 1, /*has_body=*/true);
  auto b = p.client().submit(req("POST", "a", "/empty-body"), 2, true);
  auto c = p.client().submit(req("POST", "a", "/none"), 3, true);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  REQUIRE(p.client().send_body(*a, std::string(30000, 'q'), false) == std::error_code{});
  // Names go lowercase; connection-specific fields (and TE) are left out of a trailer section.
  const std::vector<h3::field> ta{{"X-Checksum", "abc"}, {"grpc-timeout", "1S"}, {"Connection", "close"}, {"te", "trailers"}};
  REQUIRE(p.client().send_body(*a, "tail", true, ta) == std::error_code{});
  const std::vector<h3::field> tb{{"x-only", "trailers"}};
  REQUIRE(p.client().send_body(*b, {}, true, tb) == std::error_code{});  // no DATA at all: HEADERS, then trailers
  REQUIRE(p.client().send_body(*c, "plain", true) == std::error_code{});
  REQUIRE(p.pump());
  CHECK(p.got.at("/with").body == std::string(30000, 'q') + "tail");
  CHECK(p.got.at("/with").trailers == std::vector<h3::field>{{"x-checksum", "abc"}, {"grpc-timeout", "1S"}});
  CHECK(p.got.at("/empty-body").body.empty());
  CHECK(p.got.at("/empty-body").trailers == std::vector<h3::field>{{"x-only", "trailers"}});
  CHECK(p.got.at("/none").body == "plain");
  CHECK(p.got.at("/none").trailers.empty());
  for (std::uint64_t tag : {1u, 2u, 3u}) CHECK(p.rec().responses.at(tag).ended);
}

TEST_CASE("h3 client: a request trailer section HTTP/3 cannot carry is refused, nothing queued", "[h3]") {
  server_pair<trailer_recorder> p({.max_fields = 4, .max_field_bytes = 1024});
  p.start();
  auto a = p.client().submit(req("POST", "a", "/x"), 1, true);
  REQUIRE(a);
  const std::vector<h3::field> pseudo{{":path", "/y"}};
  CHECK(p.client().send_body(*a, "b", true, pseudo) == h3::client_error::bad_request_field);
  const std::vector<h3::field> bad_value{{"x-a", "1\r\nx-b: 2"}};
  CHECK(p.client().send_body(*a, "b", true, bad_value) == h3::client_error::bad_request_field);
  const std::vector<h3::field> too_many{{"t0", "v"}, {"t1", "v"}, {"t2", "v"}, {"t3", "v"}, {"t4", "v"}};
  CHECK(p.client().send_body(*a, "b", true, too_many) == h3::client_error::bad_request_field);
  const std::vector<h3::field> too_big{{"x-big", std::string(1000, 'z')}};
  CHECK(p.client().send_body(*a, "b", true, too_big) == h3::client_error::bad_request_field);
  CHECK(p.client().body_buffered(*a) == 0);
  // The stream is still open: a good section goes.
  const std::vector<h3::field> fine{{"t0", "v"}, {"t1", "v"}, {"t2", "v"}, {"t3", "v"}};
  REQUIRE(p.client().send_body(*a, "b", true, fine) == std::error_code{});
  REQUIRE(p.pump());
  CHECK(p.got.at("/x").body == "b");
  CHECK(p.got.at("/x").trailers.size() == 4);
}

TEST_CASE("h3 client: gRPC's Trailers-Only answer is a head with the status and an end, no trailers", "[h3]") {
  server_pair<trailer_recorder> p;
  p.respond = [](std::string_view) {
    answer a;
    a.headers = {{"content-type", "application/grpc"}, {"grpc-status", "12"}, {"grpc-message", "unknown method"}};
    a.trailers_only = true;
    return a;
  };
  p.start();
  REQUIRE(p.client().submit(req("POST", "a", "/test.Echo/Nope", {{"content-type", "application/grpc"}}), 1));
  REQUIRE(p.pump());
  auto& rec = p.rec();
  REQUIRE(rec.responses.contains(1));
  CHECK(rec.responses.at(1).status == 200);
  CHECK(rec.responses.at(1).headers ==
        std::vector<h3::field>{{"content-type", "application/grpc"}, {"grpc-status", "12"}, {"grpc-message", "unknown method"}});
  CHECK(rec.responses.at(1).body.empty());
  CHECK(rec.responses.at(1).ended);
  CHECK_FALSE(rec.trailers.contains(1));  // the status came in the head: no trailer hook
  CHECK(rec.order == std::vector<std::string>{"end:1"});
  CHECK(p.client().open_streams() == 0);
}
