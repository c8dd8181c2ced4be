// Malformed and smuggling-shaped HTTP/2 requests (RFC 9113 §8), written as raw frames: each
// is refused (RST_STREAM PROTOCOL_ERROR from nghttp2's checks, or our 400/431/413) and never
// becomes an event::request, so it never reaches a backend. The connection goes on.
#include <catch2/catch.hpp>

#include <rproxy/codec/h2/server_session.hpp>

#include "h2_peer.hpp"

#include <string>

namespace h2 = rproxy::codec::h2;
namespace f = h2_test::frames;
using h2_test::fields;

namespace {

struct result {
  bool delivered = false;
  bool ended = false;
  std::optional<h2::event> rejected, reset;
  std::optional<std::uint32_t> rst_code;
  std::string status;  // from our own response, when we answered
  bool goaway = false;
};

std::string status_of(const f::parsed& headers) {
  // our 4xx heads are ":status" alone; 400 is not indexed as such in HPACK's static table for
  // 431/413, and 400 is static index 12 (0x8c): decode the two forms used
  if (headers.payload.size() == 1 && static_cast<unsigned char>(headers.payload[0]) == 0x8c) return "400";
  for (std::string s : {"400", "413", "431"})
    if (headers.payload.find(s) != std::string::npos) return s;
  return "?";
}

result send(const std::string& frames_after_preface, const h2::limits& lim = {}) {
  h2::server_session s{lim};
  s.feed(std::string(f::preface) + f::settings() + f::settings_ack(), {});
  s.consume_output(s.pending_output().size());
  result r;
  for (const auto& e : s.feed(frames_after_preface, {})) {
    if (e.stream_id != 1) continue;
    if (e.what == h2::event_kind::request) r.delivered = true;
    if (e.what == h2::event_kind::end_stream) r.ended = true;
    if (e.what == h2::event_kind::rejected) r.rejected = e;
    if (e.what == h2::event_kind::reset) r.reset = e;
  }
  for (const auto& fr : f::parse(s.pending_output())) {
    if (fr.type == f::RST_STREAM && fr.stream == 1) r.rst_code = fr.code();
    if (fr.type == f::HEADERS && fr.stream == 1) r.status = status_of(fr);
    if (fr.type == f::GOAWAY) r.goaway = true;
  }
  for (const auto& e : s.poll())
    if (e.what == h2::event_kind::reset && e.stream_id == 1) r.reset = e;
  // the connection still serves a valid request
  const auto ok = s.feed(f::headers(3, f::get("/after")), {});
  bool next = false;
  for (const auto& e : ok) next |= e.what == h2::event_kind::request && e.stream_id == 3;
  CHECK(next);
  return r;
}

fields with(fields base, std::vector<std::pair<std::string, std::string>> extra) {
  for (auto& e : extra) base.push_back(std::move(e));
  return base;
}

/// nghttp2's refusal: RST_STREAM PROTOCOL_ERROR, a rejected event, no request.
void expect_protocol_error(const result& r) {
  CHECK_FALSE(r.delivered);
  REQUIRE(r.rejected);
  CHECK(r.rejected->error == h2::error::malformed);
  REQUIRE(r.rst_code);
  CHECK(*r.rst_code == NGHTTP2_PROTOCOL_ERROR);
  CHECK_FALSE(r.goaway);
}

/// Our refusal: a 4xx response head, a rejected event with `e`, no request.
void expect_status(const result& r, const std::string& status, h2::error e) {
  CHECK_FALSE(r.delivered);
  REQUIRE(r.rejected);
  CHECK(r.rejected->error == e);
  CHECK(r.status == status);
  CHECK_FALSE(r.goaway);
}

}  // namespace

TEST_CASE("h2 validation: a valid request is delivered (the baseline)", "[h2]") {
  const auto r = send(f::headers(1, f::get("/ok")));
  CHECK(r.delivered);
  CHECK(r.ended);
  CHECK_FALSE(r.rejected);
}

TEST_CASE("h2 validation: pseudo-header fields (RFC 9113 §8.3)", "[h2]") {
  SECTION("missing :method") { expect_protocol_error(send(f::headers(1, {{":scheme", "http"}, {":authority", "x"}, {":path", "/"}}))); }
  SECTION("missing :path") { expect_protocol_error(send(f::headers(1, {{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}}))); }
  SECTION("missing :scheme") { expect_protocol_error(send(f::headers(1, {{":method", "GET"}, {":authority", "x"}, {":path", "/"}}))); }
  SECTION("empty :path") { expect_protocol_error(send(f::headers(1, f::get("")))); }
  SECTION("duplicate :path") { expect_protocol_error(send(f::headers(1, with(f::get(), {{":path", "/b"}})))); }
  SECTION("unknown pseudo-header") { expect_protocol_error(send(f::headers(1, with(f::get(), {{":foo", "1"}})))); }
  SECTION("response pseudo-header in a request") { expect_protocol_error(send(f::headers(1, with(f::get(), {{":status", "200"}})))); }
  SECTION("pseudo-header after a regular field") {
    expect_protocol_error(send(f::headers(
        1, {{":method", "GET"}, {":scheme", "http"}, {"accept", "*/*"}, {":authority", "x"}, {":path", "/"}})));
  }
  SECTION("pseudo-header in trailers: the head was delivered, the stream is reset") {
    const auto r = send(f::headers(1, f::get(), false) + f::headers(1, {{":path", "/evil"}}, true));
    CHECK(r.delivered);
    CHECK_FALSE(r.ended);
    REQUIRE(r.rst_code);
    CHECK(*r.rst_code == NGHTTP2_PROTOCOL_ERROR);
    REQUIRE(r.reset);
    CHECK(r.reset->error == h2::error::malformed);
  }
}

TEST_CASE("h2 validation: connection-specific fields and TE (RFC 9113 §8.2.2)", "[h2]") {
  for (const auto& [n, v] : std::vector<std::pair<std::string, std::string>>{{"connection", "keep-alive"},
                                                                            {"keep-alive", "timeout=5"},
                                                                            {"proxy-connection", "keep-alive"},
                                                                            {"transfer-encoding", "chunked"},
                                                                            {"upgrade", "websocket"},
                                                                            {"te", "gzip"},
                                                                            {"te", "trailers, gzip"}}) {
    INFO(n << ": " << v);
    expect_protocol_error(send(f::headers(1, with(f::get(), {{n, v}}))));
  }
  const auto te = send(f::headers(1, with(f::get(), {{"te", "trailers"}})));
  CHECK(te.delivered);
}

TEST_CASE("h2 validation: field names and values", "[h2]") {
  SECTION("uppercase name") { expect_protocol_error(send(f::headers(1, with(f::get(), {{"X-Upper", "1"}})))); }
  SECTION("name with a space") { expect_protocol_error(send(f::headers(1, with(f::get(), {{"x bad", "1"}})))); }
  SECTION("empty name") { expect_protocol_error(send(f::headers(1, with(f::get(), {{"", "1"}})))); }
  SECTION("CR LF in a value (header injection toward an HTTP/1.1 backend)") {
    expect_protocol_error(send(f::headers(1, with(f::get(), {{"x-a", "1\r\nx-injected: 2"}}))));
  }
  SECTION("LF alone") { expect_protocol_error(send(f::headers(1, with(f::get(), {{"x-a", "1\nx-b: 2"}})))); }
  SECTION("NUL") { expect_protocol_error(send(f::headers(1, with(f::get(), {{"x-a", std::string("1\0", 2)}})))); }
  SECTION("leading or trailing whitespace") {
    expect_protocol_error(send(f::headers(1, with(f::get(), {{"x-a", " 1"}}))));
  }
  SECTION("other control characters") {
    expect_protocol_error(send(f::headers(1, with(f::get(), {{"x-a", "a\x01z"}}))));
    expect_protocol_error(send(f::headers(1, with(f::get(), {{"x-a", "a\x7fz"}}))));
  }
  SECTION("CR LF in :path") { expect_protocol_error(send(f::headers(1, f::get("/a\r\nHost: evil")))); }
  SECTION("space in :path: not a request-target") {
    const auto r = send(f::headers(1, f::get("/a b")));
    CHECK_FALSE(r.delivered);
    REQUIRE(r.rejected);
    CHECK((r.rejected->error == h2::error::bad_target || r.rejected->error == h2::error::malformed));
  }
  SECTION(":path not starting with /") {
    const auto r = send(f::headers(1, f::get("a/b")));
    CHECK_FALSE(r.delivered);
    REQUIRE(r.rejected);
  }
  SECTION(":authority with userinfo (nghttp2 lets it through; 400 from us)") {
    expect_status(send(f::headers(1, f::get("/", "user@host"))), "400", h2::error::bad_authority);
  }
  SECTION("obs-text in :path (nghttp2 lets it through; not a request-target: 400 from us)") {
    expect_status(send(f::headers(1, f::get("/caf\xc3\xa9"))), "400", h2::error::bad_target);
  }
  SECTION("a fragment in :path (not a request-target; an HTTP/1.1 serializer refuses it: 400 from us)") {
    expect_status(send(f::headers(1, f::get("/a#b"))), "400", h2::error::bad_target);
  }
  SECTION("two Host fields") {
    expect_protocol_error(
        send(f::headers(1, {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "a"}, {"host", "b"}})));
  }
  SECTION("OPTIONS * is a valid target") {
    const auto r = send(f::headers(1, {{":method", "OPTIONS"}, {":scheme", "http"}, {":authority", "x"}, {":path", "*"}}));
    CHECK(r.delivered);
  }
}

TEST_CASE("h2 validation: content-length against DATA (smuggling, RFC 9113 §8.1.1)", "[h2]") {
  const fields post{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}};
  SECTION("fewer bytes than content-length") {
    const auto r = send(f::headers(1, with(post, {{"content-length", "10"}}), false) + f::data(1, "abc", true));
    CHECK(r.delivered);  // the head was valid; the body gives it away: reset, never complete
    CHECK_FALSE(r.ended);
    REQUIRE(r.rst_code);
    CHECK(*r.rst_code == NGHTTP2_PROTOCOL_ERROR);
    REQUIRE(r.reset);
    CHECK(r.reset->error == h2::error::malformed);
  }
  SECTION("more bytes than content-length") {
    const auto r = send(f::headers(1, with(post, {{"content-length", "2"}}), false) + f::data(1, "abcdef", true));
    CHECK_FALSE(r.ended);
    REQUIRE(r.rst_code);
    CHECK(*r.rst_code == NGHTTP2_PROTOCOL_ERROR);
  }
  SECTION("content-length on a request that ends with its HEADERS") {
    expect_protocol_error(send(f::headers(1, with(post, {{"content-length", "5"}}), true)));
  }
  SECTION("two content-length fields") {
    expect_protocol_error(send(f::headers(1, with(post, {{"content-length", "3"}, {"content-length", "3"}}), false)));
  }
  SECTION("content-length list / non-digits") {
    expect_protocol_error(send(f::headers(1, with(post, {{"content-length", "3, 3"}}), false)));
    expect_protocol_error(send(f::headers(1, with(post, {{"content-length", "-1"}}), false)));
  }
  SECTION("content-length over max_body_size: 413 before any byte") {
    h2::limits lim;
    lim.max_body_size = 100;
    expect_status(send(f::headers(1, with(post, {{"content-length", "101"}}), false), lim), "413", h2::error::body_too_large);
  }
  SECTION("a matching content-length is delivered") {
    const auto r = send(f::headers(1, with(post, {{"content-length", "3"}}), false) + f::data(1, "abc", true));
    CHECK(r.delivered);
    CHECK(r.ended);
  }
}

TEST_CASE("h2 validation: header list size limit: 431", "[h2]") {
  h2::limits lim;
  lim.max_header_list_size = 1024;
  expect_status(send(f::headers(1, with(f::get(), {{"x-big", std::string(2000, 'a')}})), lim), "431",
                h2::error::header_too_large);
  const auto ok = send(f::headers(1, with(f::get(), {{"x-ok", std::string(800, 'a')}})), lim);
  CHECK(ok.delivered);
}

TEST_CASE("h2 validation: oversized trailers reset the stream", "[h2]") {
  h2::limits lim;
  lim.max_header_list_size = 1024;
  const auto r = send(f::headers(1, f::get(), false) + f::headers(1, {{"x-t", std::string(2000, 't')}}, true), lim);
  CHECK(r.delivered);
  CHECK_FALSE(r.ended);
  REQUIRE(r.rst_code);
  CHECK(*r.rst_code == NGHTTP2_PROTOCOL_ERROR);
}

TEST_CASE("h2 validation: a bad connection preface ends the connection without a word", "[h2]") {
  h2::server_session s;
  const auto ev = s.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", {});
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].what == h2::event_kind::goaway_sent);
  CHECK(s.failed());
  CHECK(s.done());
  CHECK(s.pending_output().empty());
}
