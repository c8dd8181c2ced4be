// codec/h3/client_session.hpp against an HTTP/3 server of nghttp3 alone (tests/support/
// h3_client_pair.hpp): what our client sends, nghttp3 decodes; what nghttp3 answers, ours decodes.
#include <catch2/catch.hpp>

#include <string>

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
