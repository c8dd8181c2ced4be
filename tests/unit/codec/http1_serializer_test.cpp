#include <rproxy/codec/http1/collector.hpp>
#include <rproxy/codec/http1/reject.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/http1/status.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

namespace http1 = rproxy::codec::http1;
using namespace std::string_literals;

TEST_CASE("serialize: request and response heads to one buffer", "[http1]") {
  http1::request_head req{"GET", "/a?b", http1::http_version::http11, {{"Host", "example.com"}}};
  req.fields.add("Accept", "*/*");
  const auto bytes = http1::serialize(req);
  CHECK(bytes == "GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
  CHECK(http1::serialized_size(req) == bytes.size());

  http1::response_head res{404, "Not Found", http1::http_version::http10};
  res.fields.add("Content-Length", "0");
  CHECK(http1::serialize(res) == "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  CHECK(http1::serialized_size(res) == http1::serialize(res).size());

  std::string out = "prefix";  // serialize_to appends (corking several writes)
  http1::serialize_to(out, http1::response_head{204, ""});
  CHECK(out == "prefixHTTP/1.1 204 \r\n\r\n");
}

TEST_CASE("serialize: a parsed head view forwards as is", "[http1]") {
  const std::string in = "POST http://b/x HTTP/1.1\r\nHost: b\r\nX-Y: z\r\nContent-Length: 0\r\n\r\n";
  http1::request_parser p;
  REQUIRE(p.parse(in).what == http1::event::head);
  CHECK(http1::serialize(p.head()) == in);
}

TEST_CASE("serialize: refuses heads that would split the message", "[http1]") {
  CHECK_THROWS_AS(http1::serialize(http1::request_head{"GE T", "/"}), std::invalid_argument);
  CHECK_THROWS_AS(http1::serialize(http1::request_head{"GET", "/a b"}), std::invalid_argument);
  CHECK_THROWS_AS(http1::serialize(http1::request_head{"GET", ""}), std::invalid_argument);
  CHECK_THROWS_AS(http1::serialize(http1::request_head{"GET", "/\r\nX: y"}), std::invalid_argument);
  CHECK_THROWS_AS(http1::serialize(http1::response_head{200, "OK\r\nX: y"}), std::invalid_argument);
  CHECK_THROWS_AS(http1::serialize(http1::response_head{99, "x"}), std::invalid_argument);
  CHECK_THROWS_AS(http1::serialize(http1::response_head{600, "x"}), std::invalid_argument);
  const std::vector<http1::field_view> bad{{"X", "a\nb"}};
  CHECK_THROWS_AS(http1::serialize(http1::request_head_view{"GET", "/", {}, http1::fields_view(bad)}),
                  std::invalid_argument);
}

TEST_CASE("framing helpers: Content-Length and chunked exclude each other", "[http1]") {
  http1::fields f{{"Transfer-Encoding", "chunked"}, {"X", "1"}};
  http1::set_content_length(f, 1234567890123ULL);
  CHECK(f == http1::fields{{"X", "1"}, {"Content-Length", "1234567890123"}});
  http1::set_chunked(f);
  CHECK(f == http1::fields{{"X", "1"}, {"Transfer-Encoding", "chunked"}});
}

TEST_CASE("chunked encoder round-trips through the parser", "[http1]") {
  CHECK(http1::chunk_header(0x1a).view() == "1a\r\n");
  CHECK(http1::chunk_header(0xffffffffffffffffULL).view() == "ffffffffffffffff\r\n");
  std::string out;
  http1::append_chunk(out, "hello");
  http1::append_chunk(out, "");  // nothing: an empty chunk would end the body
  http1::append_chunk(out, std::string(300, 'x'));
  http1::append_last_chunk(out, http1::fields{{"X-Sum", "42"}});
  CHECK(out.starts_with("5\r\nhello\r\n12c\r\n"));
  CHECK(out.ends_with("\r\n0\r\nX-Sum: 42\r\n\r\n"));

  http1::request_head h{"POST", "/", http1::http_version::http11, {{"Host", "h"}}};
  http1::set_chunked(h.fields);
  http1::request_collector c;
  c.feed(http1::serialize(h) + out);
  REQUIRE(c.messages().size() == 1);
  CHECK(c.messages()[0].body == "hello" + std::string(300, 'x'));
  CHECK(c.messages()[0].trailers == http1::fields{{"X-Sum", "42"}});

  std::string empty;
  http1::append_last_chunk(empty);
  CHECK(empty == "0\r\n\r\n");
}

TEST_CASE("set_keep_alive writes the Connection field per version", "[http1]") {
  http1::response_head h;
  http1::set_keep_alive(h, true);
  CHECK_FALSE(h.fields.contains("connection"));
  http1::set_keep_alive(h, false);
  CHECK(h.fields.find("connection") == "close");
  h.version = http1::http_version::http10;
  http1::set_keep_alive(h, true);
  CHECK(h.fields.find("connection") == "keep-alive");
  http1::set_keep_alive(h, false);
  CHECK_FALSE(h.fields.contains("connection"));

  http1::fields f{{"Connection", "Upgrade, close"}, {"Connection", "keep-alive"}};
  http1::set_keep_alive(f, http1::http_version::http11, true);
  CHECK(f == http1::fields{{"Connection", "Upgrade"}});

  // what the parser concludes matches what was asked, in every combination
  for (auto v : {http1::http_version::http10, http1::http_version::http11})
    for (bool ka : {false, true}) {
      http1::response_head r{200, "OK", v};
      http1::set_content_length(r.fields, 0);
      http1::set_keep_alive(r, ka);
      http1::response_collector c;
      c.feed(http1::serialize(r));
      REQUIRE(c.messages().size() == 1);
      CHECK(c.messages()[0].keep_alive == ka);
    }
}

TEST_CASE("make_error_response: a complete response a client can parse", "[http1]") {
  const auto bytes = http1::make_error_response(431);
  CHECK(bytes ==
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 31\r\nConnection: close\r\n\r\nRequest Header Fields Too Large");

  http1::response_collector c;
  c.feed(http1::make_error_response(400, "bad chunk framing\n") +
         http1::make_error_response(503, "", {.keep_alive = true, .retry_after_s = 5}));
  REQUIRE(c.messages().size() == 2);
  CHECK(c.messages()[0].head.status == 400);
  CHECK(c.messages()[0].body == "bad chunk framing\n");
  CHECK_FALSE(c.messages()[0].keep_alive);
  CHECK(c.messages()[1].head.reason == "Service Unavailable");
  CHECK(c.messages()[1].head.fields.find("retry-after") == "5");
  CHECK(c.messages()[1].keep_alive);

  const auto head = http1::make_error_response(404, "gone", {.head_request = true});
  CHECK(head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
  CHECK(http1::make_error_response(status_for(http1::error::version_not_supported))
            .starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"));
}

TEST_CASE("make_reject_response renders pipeline verdicts", "[http1]") {
  using rproxy::reject_code;
  CHECK(http1::status_for(reject_code::bad_request) == 400);
  CHECK(http1::status_for(reject_code::unauthorized) == 401);
  CHECK(http1::status_for(reject_code::forbidden) == 403);
  CHECK(http1::status_for(reject_code::banned) == 403);
  CHECK(http1::status_for(reject_code::not_found) == 404);
  CHECK(http1::status_for(reject_code::rate_limited) == 429);
  CHECK(http1::status_for(reject_code::too_many_connections) == 429);
  CHECK(http1::status_for(reject_code::unavailable) == 503);
  CHECK(http1::status_for(reject_code::timeout) == 408);
  CHECK(http1::status_for(reject_code::internal) == 500);

  const auto v = rproxy::verdict::make_reject({reject_code::rate_limited, "slow down", 10});
  http1::response_collector c;
  c.feed(http1::make_reject_response(v.reason(), {.keep_alive = true}));
  REQUIRE(c.messages().size() == 1);
  const auto& m = c.messages()[0];
  CHECK(m.head.status == 429);
  CHECK(m.head.reason == "Too Many Requests");
  CHECK(m.head.fields.find("retry-after") == "10");
  CHECK(m.body == "slow down");
  CHECK(m.keep_alive);
}

namespace {
/// Renders like middleware::rate_limit_headers (any type with render(add) will do).
struct fake_rate_headers {
  bool refused = false;
  template <class F>
  void render(F&& add) const {
    add("X-RateLimit-Limit", "10");
    add("X-RateLimit-Remaining", refused ? "0" : "7");
    add("X-RateLimit-Reset", "3");
    if (refused) add("Retry-After", "2");
    add("X-Bad", "a\r\nInjected: 1");  // invalid values are skipped, never serialized
  }
};
}  // namespace

TEST_CASE("set_rendered_fields: stage-provided fields on responses and rejects", "[http1]") {
  STATIC_REQUIRE(http1::field_source<fake_rate_headers>);
  STATIC_REQUIRE_FALSE(http1::field_source<int>);

  http1::response_head h{200, "OK"};
  h.fields.add("X-RateLimit-Limit", "99");  // a backend's own value is replaced
  http1::set_rendered_fields(h.fields, fake_rate_headers{});
  CHECK(h.fields.count("x-ratelimit-limit") == 1);
  CHECK(h.fields.find("X-RateLimit-Limit") == "10");
  CHECK(h.fields.find("X-RateLimit-Remaining") == "7");
  CHECK_FALSE(h.fields.contains("Retry-After"));
  CHECK_FALSE(h.fields.contains("X-Bad"));

  http1::fields extra;
  http1::set_rendered_fields(extra, fake_rate_headers{true});
  const rproxy::reject_reason why{rproxy::reject_code::rate_limited, "slow down", 5};
  http1::response_collector c;
  c.feed(http1::make_reject_response(why, extra, {.keep_alive = true}));
  REQUIRE(c.messages().size() == 1);
  const auto& m = c.messages()[0];
  CHECK(m.head.status == 429);
  CHECK(m.head.fields.count("retry-after") == 1);  // the rendered one replaces the hint's
  CHECK(m.head.fields.find("retry-after") == "2");
  CHECK(m.head.fields.find("x-ratelimit-remaining") == "0");
  CHECK(m.body == "slow down");
  CHECK(m.keep_alive);
  CHECK(http1::make_error_response(400, "x", http1::fields{{"X-A", "1"}}).find("X-A: 1\r\n") != std::string::npos);
}

TEST_CASE("reason phrases", "[http1]") {
  CHECK(http1::reason_phrase(200) == "OK");
  CHECK(http1::reason_phrase(413) == "Content Too Large");
  CHECK(http1::reason_phrase(599).empty());
  STATIC_REQUIRE(http1::reason_phrase(101) == "Switching Protocols");
}
