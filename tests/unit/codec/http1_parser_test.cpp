#include <rproxy/codec/http1/collector.hpp>
#include <rproxy/codec/http1/parser.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using namespace std::string_view_literals;
namespace http1 = rproxy::codec::http1;
using http1::error;
using http1::event;

namespace {

http1::request_collector requests(std::string_view bytes, const http1::limits& l = {}) {
  http1::request_collector c{l};
  c.feed(bytes);
  return c;
}

error request_error(std::string_view bytes, const http1::limits& l = {}) {
  return requests(bytes, l).last_error();
}

http1::response_collector responses(std::string_view bytes, std::string_view method = "GET",
                                    bool eof = false) {
  http1::response_collector c;
  c.parser().set_request_method(method);
  c.feed(bytes);
  if (eof) c.finish();
  return c;
}

constexpr auto get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"sv;

}  // namespace

TEST_CASE("request head: views into the caller's buffer", "[http1]") {
  const std::string buf = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\n"
                          "Accept:  text/html ,  */*  \r\n\r\n";
  http1::request_parser p;
  auto r = p.parse(buf);
  REQUIRE(r.what == event::head);
  REQUIRE(r.consumed == buf.size());
  const auto& h = p.head();
  CHECK(h.method == "GET");
  CHECK(h.target == "/a/b?c=d");
  CHECK(h.version == http1::http_version::http11);
  REQUIRE(h.fields.size() == 3);
  CHECK(h.fields[0] == http1::field_view{"Host", "example.com"});
  CHECK(h.fields.find("HOST") == "example.com");
  CHECK(h.fields.find("x-empty") == "");
  CHECK(h.fields.find("accept") == "text/html ,  */*");  // OWS trimmed, inner kept
  CHECK_FALSE(h.fields.find("missing"));
  // zero copy: the views point into buf
  CHECK(h.target.data() == buf.data() + 4);
  CHECK(h.fields[1].value.data() >= buf.data());
  CHECK(h.fields[1].value.data() < buf.data() + buf.size());
  CHECK(p.keep_alive());
  CHECK_FALSE(p.upgrade());
  r = p.parse(std::string_view(buf).substr(r.consumed));
  CHECK(r == http1::parse_result{event::message_complete, 0, {}, {}});
}

TEST_CASE("incomplete head: need_more consumes nothing, then the whole head", "[http1]") {
  http1::request_parser p;
  std::string buf;
  for (std::size_t i = 0; i + 1 < get.size(); ++i) {
    buf.push_back(get[i]);
    const auto r = p.parse(buf);
    REQUIRE(r.what == event::need_more);
    REQUIRE(r.consumed == 0);
  }
  buf.push_back(get.back());
  const auto r = p.parse(buf);
  REQUIRE(r.what == event::head);
  CHECK(r.consumed == get.size());
  CHECK(p.head().fields.find("host") == "example.com");
}

TEST_CASE("a span input works like a string_view", "[http1]") {
  http1::request_parser p;
  const std::vector<char> bytes(get.begin(), get.end());
  CHECK(p.parse(std::span<const char>(bytes)).what == event::head);
}

TEST_CASE("Content-Length body, split anywhere", "[http1]") {
  const std::string msg = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
  for (std::size_t split = 0; split <= msg.size(); ++split) {
    http1::request_collector c;
    c.feed(std::string_view(msg).substr(0, split));
    c.feed(std::string_view(msg).substr(split));
    REQUIRE(c.messages().size() == 1);
    CHECK(c.messages()[0].body == "hello world");
    CHECK(c.events() == std::vector{event::head, event::body, event::message_complete});
  }
  http1::request_parser p;
  std::string_view in = msg;
  auto r = p.parse(in);
  REQUIRE(r.what == event::head);
  CHECK(p.info().has_content_length);
  CHECK(p.info().content_length == 11);
  in.remove_prefix(r.consumed);
  r = p.parse(in.substr(0, 5));
  CHECK(r.what == event::body);
  CHECK(r.data == "hello");
  CHECK(r.consumed == 5);
  CHECK(p.body_bytes() == 5);
}

TEST_CASE("chunked body with extensions and trailers", "[http1]") {
  const std::string msg =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "1 ; a = \"q\\\"s\" ;b\r\n \r\n"
      "00005\r\nworld\r\n"
      "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
  auto c = requests(msg);
  REQUIRE_FALSE(c.failed());
  REQUIRE(c.messages().size() == 1);
  const auto& m = c.messages()[0];
  CHECK(m.body == "hello world");
  CHECK(m.trailers == http1::fields{{"X-Checksum", "abc"}, {"X-Other", "1"}});
  CHECK(c.rest().empty());

  http1::request_parser p;
  std::string_view in = msg;
  auto r = p.parse(in);
  REQUIRE(r.what == event::head);
  CHECK(p.info().chunked);
  in.remove_prefix(r.consumed);
  r = p.parse(in);  // chunk-size line consumed with the data
  CHECK(r.what == event::body);
  CHECK(r.data == "hello");
  CHECK(r.consumed == "5;name=value\r\nhello"sv.size());
}

TEST_CASE("chunked framing fed one byte at a time", "[http1]") {
  const std::string msg = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "a\r\n0123456789\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n";
  http1::request_collector c;
  for (char ch : msg) c.feed(std::string_view(&ch, 1));
  REQUIRE(c.messages().size() == 1);
  CHECK(c.messages()[0].body == "0123456789abc");
  CHECK(c.messages()[0].trailers.find("t") == "v");
}

TEST_CASE("bad chunk framing", "[http1]") {
  const auto head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"s;
  CHECK(request_error(head + "5\r\nhelloX\r\n0\r\n\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5\r\nhello\n0\r\n\r\n") == error::bad_chunk);
  CHECK(request_error(head + "x\r\n") == error::bad_chunk);
  CHECK(request_error(head + ";a\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5;\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5;=x\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5;a=\"open\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5 x\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5 \r\nhello\r\n0\r\n\r\n") == error::bad_chunk);   // trailing whitespace
  CHECK(request_error(head + "5\t\r\nhello\r\n0\r\n\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5;a=b \r\nhello\r\n0\r\n\r\n") == error::bad_chunk);
  CHECK(request_error(head + "-5\r\n") == error::bad_chunk);
  CHECK(request_error(head + "5\n") == error::bad_line_ending);
  CHECK(request_error(head + "5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n") == error::bad_field_name);
  CHECK(request_error(head + "5\r\nhello\r\n0\r\nT: a\nb\r\n\r\n") == error::bad_line_ending);
}

TEST_CASE("huge chunk sizes overflow", "[http1][smuggling]") {
  const auto head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"s;
  CHECK(request_error(head + "10000000000000000\r\n") == error::chunk_size_overflow);
  CHECK(request_error(head + "fffffffffffffffff\r\n") == error::chunk_size_overflow);
  // fits 64 bits but exceeds the body limit
  CHECK(request_error(head + "ffffffffffffffff\r\n") == error::body_too_large);
  // leading zeros are not an overflow
  auto c = requests(head + "00000000000000000000001\r\nx\r\n0\r\n\r\n");
  REQUIRE(c.messages().size() == 1);
  CHECK(c.messages()[0].body == "x");
}

TEST_CASE("pipelined requests in one buffer", "[http1]") {
  const std::string bytes = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                            "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                            "\r\n"  // an extra CRLF between requests is ignored (RFC 9112 §2.2)
                            "PUT /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "2\r\nxy\r\n0\r\n\r\n"
                            "GET /4 HTTP/1.1\r\nHo";
  auto c = requests(bytes);
  REQUIRE_FALSE(c.failed());
  REQUIRE(c.messages().size() == 3);
  CHECK(c.messages()[0].head.target == "/1");
  CHECK(c.messages()[1].head.target == "/2");
  CHECK(c.messages()[1].body == "abc");
  CHECK(c.messages()[2].head.method == "PUT");
  CHECK(c.messages()[2].body == "xy");
  CHECK(c.rest() == "GET /4 HTTP/1.1\r\nHo");
  c.feed("st: h\r\n\r\n");
  REQUIRE(c.messages().size() == 4);
  CHECK(c.messages()[3].head.target == "/4");
}

TEST_CASE("keep-alive per version and Connection", "[http1]") {
  auto ka = [](std::string_view head) {
    auto c = requests(head);
    REQUIRE(c.messages().size() == 1);
    return c.messages()[0].keep_alive;
  };
  CHECK(ka("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.0\r\n\r\n"));
  CHECK(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"));
}

TEST_CASE("Upgrade request: the bytes after it belong to the new protocol", "[http1]") {
  const std::string ws = "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
  auto c = requests(ws + "\x81\x05hello");
  REQUIRE(c.upgraded());
  REQUIRE(c.messages().size() == 1);
  CHECK(c.messages()[0].upgrade);
  CHECK(c.events() == std::vector{event::head, event::upgrade});
  CHECK(c.rest() == "\x81\x05hello");

  http1::request_parser p;
  auto r = p.parse(ws + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(r.what == event::head);
  CHECK(p.upgrade());
  const auto rest = (ws + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n").substr(r.consumed);
  CHECK(p.parse(rest) == http1::parse_result{event::upgrade, 0, {}, {}});
  CHECK(p.parse(rest).what == event::upgrade);  // stays upgraded
  p.resume();                                   // declined: go on with HTTP
  REQUIRE(p.parse(rest).what == event::head);
  CHECK(p.head().target == "/next");
  CHECK_FALSE(p.upgrade());

  // Upgrade without the connection option, or in HTTP/1.0, is not an upgrade
  CHECK_FALSE(requests("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").upgraded());
  CHECK_FALSE(requests("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n").upgraded());
  // an upgrade request with a body: the body first
  auto b = requests("POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
                    "Content-Length: 2\r\n\r\nabNEW");
  REQUIRE(b.upgraded());
  CHECK(b.messages()[0].body == "ab");
  CHECK(b.rest() == "NEW");
}

TEST_CASE("CONNECT: authority-form, then a tunnel", "[http1]") {
  auto c = requests("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01");
  REQUIRE(c.upgraded());
  CHECK(c.messages()[0].head.target == "example.com:443");
  CHECK(c.rest() == "\x16\x03\x01");
  CHECK(requests("CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").upgraded());
  CHECK(request_error("CONNECT /path HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("CONNECT example.com:99999 HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("CONNECT :443 HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
}

TEST_CASE("request-target forms", "[http1]") {
  CHECK(requests("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").messages().size() == 1);
  CHECK(request_error("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  auto abs = requests("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n");
  REQUIRE(abs.messages().size() == 1);
  CHECK(abs.messages()[0].head.target == "http://example.com/x?y");
  CHECK(request_error("GET example.com/x HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET 1http://x/ HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET /#frag HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_target);
  CHECK(request_error("GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n"s) == error::bad_target);
  // characters browsers send unescaped in queries are accepted
  CHECK(requests("GET /q?a={\"b\"}|^`[] HTTP/1.1\r\nHost: h\r\n\r\n").messages().size() == 1);
}

TEST_CASE("methods are tokens", "[http1]") {
  CHECK(requests("PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n").messages().at(0).head.method == "PROPFIND");
  CHECK(requests("M-SEARCH* / HTTP/1.1\r\nHost: h\r\n\r\n").messages().size() == 1);
  CHECK(request_error("G(ET / HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_method);
  CHECK(request_error(" GET / HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_method);
  CHECK(request_error("GET\r\nHost: h\r\n\r\n") == error::bad_method);
  CHECK(request_error("GET /\r\nHost: h\r\n\r\n") == error::bad_version);
  CHECK(request_error("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"s) == error::bad_method);
}

TEST_CASE("versions: only HTTP/1.0 and HTTP/1.1", "[http1]") {
  CHECK(request_error("GET / HTTP/2.0\r\n\r\n") == error::version_not_supported);
  CHECK(request_error("GET / HTTP/1.2\r\n\r\n") == error::version_not_supported);
  CHECK(request_error("GET / HTTP/0.9\r\n\r\n") == error::version_not_supported);
  CHECK(request_error("GET / HTTP/3.0\r\n\r\n") == error::version_not_supported);
  CHECK(http1::status_for(error::version_not_supported) == 505);
  CHECK(request_error("GET / http/1.1\r\n\r\n") == error::bad_version);
  CHECK(request_error("GET / HTTP/1.10\r\n\r\n") == error::bad_version);
  CHECK(request_error("GET / HTTP/1\r\n\r\n") == error::bad_version);
  CHECK(request_error("GET / HTTP/1.1 \r\n\r\n") == error::bad_version);
  auto ten = requests("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(ten.messages().size() == 1);
  CHECK(ten.messages()[0].head.version == http1::http_version::http10);
}

TEST_CASE("Host: required once in HTTP/1.1, valid", "[http1]") {
  CHECK(request_error("GET / HTTP/1.1\r\n\r\n") == error::bad_host);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == error::bad_host);
  CHECK(request_error("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n") == error::bad_host);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == error::bad_host);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") == error::bad_host);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n") == error::bad_host);
  CHECK(requests("GET / HTTP/1.1\r\nHost:\r\n\r\n").messages().size() == 1);  // empty is allowed
  CHECK(requests("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").messages().size() == 1);
  CHECK(requests("GET / HTTP/1.0\r\n\r\n").messages().size() == 1);
}

TEST_CASE("field syntax", "[http1]") {
  const auto line = [](std::string_view field) {
    return request_error("GET / HTTP/1.1\r\nHost: h\r\n"s + std::string(field) + "\r\n\r\n");
  };
  CHECK(line("X-A: b") == error{});
  CHECK(line("X-A:b") == error{});
  CHECK(line("X-A: \t b \t ") == error{});
  CHECK(line("X-Obs: caf\xc3\xa9 \x80\xff") == error{});  // obs-text allowed
  CHECK(line("X-A : b") == error::space_before_colon);
  CHECK(line("X-A\t: b") == error::space_before_colon);
  CHECK(line("X A: b") == error::bad_field_name);
  CHECK(line("X@A: b") == error::bad_field_name);
  CHECK(line(": b") == error::bad_field_name);
  CHECK(line("no colon") == error::bad_field_name);
  CHECK(line("X-A: b\x01") == error::bad_field_value);
  CHECK(line("X-A: b\x7f") == error::bad_field_value);
  CHECK(line("X-A: a\0b"s) == error::bad_field_value);
  CHECK(line(" folded") == error::obs_fold);
  CHECK(line("\tfolded") == error::obs_fold);
}

TEST_CASE("line endings: bare LF and bare CR are rejected", "[http1][smuggling]") {
  CHECK(request_error("GET / HTTP/1.1\nHost: h\r\n\r\n") == error::bad_line_ending);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: h\n\r\n") == error::bad_line_ending);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\n\n") == error::bad_line_ending);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n") == error::bad_line_ending);
  CHECK(request_error("GET / HTTP/1.1\r\nX: a\r\rHost: h\r\n\r\n") == error::bad_line_ending);
  CHECK(request_error("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n") == error::bad_line_ending);
  CHECK(request_error("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") == error::bad_line_ending);
}

TEST_CASE("request smuggling vectors", "[http1][smuggling]") {
  const auto req = [](std::string_view fields, std::string_view body = "") {
    return request_error("POST / HTTP/1.1\r\nHost: h\r\n"s + std::string(fields) + "\r\n" +
                         std::string(body));
  };
  SECTION("Content-Length with Transfer-Encoding") {
    CHECK(req("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n") ==
          error::content_length_with_transfer_encoding);
    CHECK(req("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n") ==
          error::content_length_with_transfer_encoding);
  }
  SECTION("Transfer-Encoding whose final coding is not chunked") {
    CHECK(req("Transfer-Encoding: chunked, x\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: xchunked\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: chunkedx\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: \"chunked\"\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: identity\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n") ==
          error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding:\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: ,\r\n") == error::bad_transfer_encoding);
    CHECK(req("Transfer-Encoding: chunked, chunked\r\n") == error::bad_transfer_encoding);
    CHECK(http1::status_for(error::bad_transfer_encoding) == 400);
  }
  SECTION("codings before chunked are not implemented") {
    CHECK(req("Transfer-Encoding: gzip, chunked\r\n") == error::unsupported_transfer_encoding);
    CHECK(req("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n") ==
          error::unsupported_transfer_encoding);
    CHECK(http1::status_for(error::unsupported_transfer_encoding) == 501);
  }
  SECTION("Transfer-Encoding in HTTP/1.0") {
    CHECK(request_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") ==
          error::bad_transfer_encoding);
  }
  SECTION("space before the colon") {
    CHECK(req("Transfer-Encoding : chunked\r\n") == error::space_before_colon);
    CHECK(req("Content-Length : 3\r\n") == error::space_before_colon);
  }
  SECTION("duplicate Content-Length, identical or not") {
    CHECK(req("Content-Length: 5\r\nContent-Length: 6\r\n") == error::multiple_content_length);
    CHECK(req("Content-Length: 5\r\nContent-Length: 5\r\n") == error::multiple_content_length);
    CHECK(req("Content-Length: 5, 5\r\n") == error::multiple_content_length);
    CHECK(req("Content-Length: 5,\r\n") == error::multiple_content_length);
  }
  SECTION("Content-Length is 1*DIGIT") {
    CHECK(req("Content-Length: +5\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: -1\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: 5a\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: 0x5\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: 5 5\r\n") == error::bad_content_length);
    CHECK(req("Content-Length:\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: 99999999999999999999999\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: 18446744073709551616\r\n") == error::bad_content_length);
    CHECK(req("Content-Length: 005\r\n", "hello") == error{});
  }
  SECTION("obs-fold, bare LF, NUL") {
    CHECK(req("X-A: a\r\n  continued\r\n") == error::obs_fold);
    CHECK(req("Transfer-Encoding: gzip\r\n chunked\r\n") == error::obs_fold);
    CHECK(req("Content-Length: 3\nTransfer-Encoding: chunked\r\n") == error::bad_line_ending);
    CHECK(req("X-A: a\0b\r\n"s) == error::bad_field_value);
  }
  SECTION("after an error the parser stays failed until reset()") {
    http1::request_parser p;
    const std::string bad = "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    CHECK(p.parse(bad) == http1::parse_result{event::error, 0, {}, error::multiple_content_length});
    CHECK(p.parse(get).what == event::error);
    CHECK(p.finish().what == event::error);
    p.reset();
    CHECK(p.parse(get).what == event::head);
  }
}

TEST_CASE("error codes: request errors are downstream, with a status", "[http1]") {
  http1::request_parser p;
  REQUIRE(p.parse("GET / HTTP/1.1\r\nHost: h\r\nX: \x01\r\n\r\n"sv).what == event::error);
  CHECK(p.last_error() == error::bad_field_value);
  CHECK(p.error_code() == error::bad_field_value);
  CHECK(p.error_code() == rproxy::condition::downstream);
  CHECK(p.error_code() != rproxy::condition::retry_safe);
  CHECK(http1::status_for(p.error_code()) == 400);
}

TEST_CASE("limits: each has its own error", "[http1][limits]") {
  http1::limits l;
  l.max_start_line = 32;
  l.max_header_bytes = 64;
  l.max_header_count = 3;
  l.max_chunk_line = 8;
  l.max_body_size = 10;
  l.max_trailer_bytes = 16;

  SECTION("start line") {
    const auto line = [](std::size_t n) { return "GET /" + std::string(n - 14, 'a') + " HTTP/1.1"; };
    REQUIRE(line(32).size() == 32);
    CHECK(request_error(line(32) + "\r\nHost: h\r\n\r\n", l) == error{});
    CHECK(request_error(line(33) + "\r\nHost: h\r\n\r\n", l) == error::start_line_too_long);
    // detected before the line ends
    CHECK(request_error(line(32) + "\r", l) == error{});
    CHECK(request_error(line(33), l) == error::start_line_too_long);
    CHECK(http1::status_for(error::start_line_too_long) == 414);
  }
  SECTION("header bytes") {
    const auto field = [](std::size_t n) { return "X: " + std::string(n - 5, 'v') + "\r\n"; };
    const auto head = [&](std::size_t n) { return "GET / HTTP/1.1\r\n" + field(n - 9) + "Host: h\r\n\r\n"; };
    CHECK(request_error(head(64), l) == error{});
    CHECK(request_error(head(65), l) == error::header_too_large);
    // detected before the head ends
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\n" + std::string(60, 'x'), l) ==
          error::header_too_large);
    CHECK(http1::status_for(error::header_too_large) == 431);
  }
  SECTION("header count") {
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", l) == error{});
    CHECK(request_error("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", l) ==
          error::too_many_headers);
    CHECK(http1::status_for(error::too_many_headers) == 431);
  }
  const auto chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"s;
  SECTION("chunk-size line") {
    CHECK(request_error(chunked + "1;a=bcde\r\nx\r\n0\r\n\r\n", l) == error{});
    CHECK(request_error(chunked + "1;a=bcdef\r\nx\r\n0\r\n\r\n", l) == error::chunk_line_too_long);
    CHECK(request_error(chunked + "1;a=bcdef", l) == error::chunk_line_too_long);
    CHECK(http1::status_for(error::chunk_line_too_long) == 400);
  }
  SECTION("body size") {
    const auto cl = [](std::size_t n) {
      return "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n" +
             std::string(n, 'b');
    };
    CHECK(request_error(cl(10), l) == error{});
    CHECK(request_error(cl(11), l) == error::body_too_large);
    CHECK(request_error(chunked + "5\r\naaaaa\r\n5\r\nbbbbb\r\n0\r\n\r\n", l) == error{});
    CHECK(request_error(chunked + "5\r\naaaaa\r\n6\r\n", l) == error::body_too_large);
    CHECK(http1::status_for(error::body_too_large) == 413);
    // the head of a too large message can still be read, to log or route the 413
    http1::request_parser p{l};
    const auto msg = cl(11);
    REQUIRE(p.parse(msg).what == event::error);
    CHECK(p.head().target == "/");
    CHECK(p.head().fields.find("content-length") == "11");
  }
  SECTION("trailer bytes and count") {
    CHECK(request_error(chunked + "0\r\nT: 01234567890\r\n\r\n", l) == error{});  // 16 bytes
    CHECK(request_error(chunked + "0\r\nT: 012345678901\r\n\r\n", l) == error::trailer_too_large);
    CHECK(request_error(chunked + "0\r\nT: 012345678901", l) == error::trailer_too_large);
    CHECK(request_error(chunked + "0\r\nA:\r\nB:\r\nC:\r\nD:\r\n\r\n", l) == error::trailer_too_large);
    CHECK(http1::status_for(error::trailer_too_large) == 431);
  }
}

TEST_CASE("Expect: 100-continue", "[http1]") {
  http1::request_parser p;
  REQUIRE(p.parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"sv).what ==
          event::head);
  CHECK(p.info().expect_continue);

  // An HTTP/1.0 client does not know 100 Continue: the expectation is ignored (RFC 9110 §10.1.1).
  http1::request_parser q;
  REQUIRE(q.parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"sv).what == event::head);
  CHECK_FALSE(q.info().expect_continue);
}

TEST_CASE("finish: clean close, or a partial message", "[http1]") {
  http1::request_parser p;
  CHECK(p.finish().what == event::end_of_stream);
  CHECK(p.finish().what == event::end_of_stream);

  http1::request_parser q;
  CHECK(q.parse("GET / HT"sv).what == event::need_more);
  CHECK(q.finish() == http1::parse_result{event::error, 0, {}, error::partial_message});

  http1::request_collector c;
  c.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab");
  c.finish();
  CHECK(c.last_error() == error::partial_message);
  CHECK(c.messages().empty());

  http1::request_collector d;
  d.feed(std::string(get) + "\r\n");  // only empty lines after the message
  d.finish();
  CHECK_FALSE(d.failed());
  CHECK(d.messages().size() == 1);
  CHECK(d.events().back() == event::end_of_stream);
}

TEST_CASE("the caller may shrink its input: the parser scans again", "[http1]") {
  http1::request_parser p;
  CHECK(p.parse("GET / HTTP/1.1\r\nHost: h\r\n"sv).what == event::need_more);
  CHECK(p.parse("GET /x"sv).what == event::need_more);
  REQUIRE(p.parse("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"sv).what == event::head);
  CHECK(p.head().target == "/x");
}

// --- responses ---------------------------------------------------------------------------

TEST_CASE("response: status line and Content-Length body", "[http1][response]") {
  auto c = responses("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
                     "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"
                     "HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n"
                     "HTTP/1.0 200 caf\xc3\xa9 ok\r\nContent-Length: 0\r\n\r\n");
  REQUIRE_FALSE(c.failed());
  REQUIRE(c.messages().size() == 4);
  CHECK(c.messages()[0].head.status == 404);
  CHECK(c.messages()[0].head.reason == "Not Found");
  CHECK(c.messages()[0].body == "nope");
  CHECK(c.messages()[1].head.reason == "");
  CHECK(c.messages()[2].head.status == 500);
  CHECK(c.messages()[3].head.reason == "caf\xc3\xa9 ok");
  CHECK_FALSE(c.messages()[3].keep_alive);
}

TEST_CASE("response: bad status lines", "[http1][response]") {
  const auto err = [](std::string_view line) {
    return responses(std::string(line) + "\r\nContent-Length: 0\r\n\r\n").last_error();
  };
  CHECK(err("HTTP/1.1 099 x") == error::bad_status);
  CHECK(err("HTTP/1.1 600 x") == error::bad_status);
  CHECK(err("HTTP/1.1 20 x") == error::bad_status);
  CHECK(err("HTTP/1.1 2000 x") == error::bad_status);
  CHECK(err("HTTP/1.1  200 x") == error::bad_status);
  CHECK(err("HTTP/1.1 abc x") == error::bad_status);
  CHECK(err("HTTP/1.1 200 a\x01") == error::bad_reason);
  CHECK(err("HTTP/2 200 OK") == error::bad_version);
  CHECK(err("HTTP/2.0 200 OK") == error::version_not_supported);
  CHECK(err("ICY 200 OK") == error::bad_version);
}

TEST_CASE("response: no body for 1xx, 204, 304 and HEAD", "[http1][response]") {
  auto c = responses("HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
                     "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  REQUIRE(c.messages().size() == 4);
  CHECK(c.messages()[1].body.empty());
  CHECK(c.messages()[2].body.empty());
  CHECK(c.messages()[3].body == "hi");

  auto h = responses("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                     "HEAD");
  REQUIRE(h.messages().size() == 2);
  CHECK(h.messages()[0].body.empty());
  CHECK(h.messages()[0].head.fields.find("content-length") == "5");
}

TEST_CASE("response: body until close", "[http1][response]") {
  auto c = responses("HTTP/1.1 200 OK\r\n\r\nall of this\r\n\r\nis body", "GET", true);
  REQUIRE(c.messages().size() == 1);
  CHECK(c.messages()[0].body == "all of this\r\n\r\nis body");
  CHECK_FALSE(c.messages()[0].keep_alive);
  CHECK(c.events() == std::vector{event::head, event::body, event::message_complete});

  // Transfer-Encoding without a final chunked: until close as well
  auto g = responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz", "GET", true);
  REQUIRE(g.messages().size() == 1);
  CHECK(g.messages()[0].body == "zzz");

  http1::response_parser p;
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\n\r\n"sv).what == event::head);
  CHECK(p.info().until_close);
  CHECK_FALSE(p.keep_alive());
}

TEST_CASE("response: chunked, trailers, codings before chunked", "[http1][response]") {
  auto c = responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\nEtag: x\r\n\r\n");
  REQUIRE(c.messages().size() == 1);
  CHECK(c.messages()[0].body == "abc");
  CHECK(c.messages()[0].trailers.find("etag") == "x");
  CHECK(responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
            .last_error() == error::content_length_with_transfer_encoding);
  CHECK(responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n").last_error() ==
        error::bad_transfer_encoding);
  CHECK(responses("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").last_error() ==
        error::bad_transfer_encoding);
  CHECK(responses("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n").last_error() ==
        error::multiple_content_length);
}

TEST_CASE("response: 101 and 2xx to CONNECT switch protocols", "[http1][response]") {
  auto ws = responses("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n\r\n\x81\x01");
  REQUIRE(ws.upgraded());
  CHECK(ws.messages()[0].head.status == 101);
  CHECK(ws.rest() == "\x81\x01");

  auto tunnel = responses("HTTP/1.1 200 Connection Established\r\n\r\nTLS", "CONNECT");
  REQUIRE(tunnel.upgraded());
  CHECK(tunnel.rest() == "TLS");

  auto denied = responses("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno", "CONNECT");
  REQUIRE_FALSE(denied.upgraded());
  CHECK(denied.messages().at(0).body == "no");
}

TEST_CASE("response errors are upstream and map to 502", "[http1][response]") {
  http1::response_parser p;
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"sv).what == event::error);
  CHECK(p.last_error() == error::bad_content_length);
  CHECK(p.error_code() == rproxy::condition::upstream);
  CHECK(p.error_code() != error::bad_content_length);  // a different category ...
  CHECK(http1::to_error(p.error_code()) == error::bad_content_length);  // ... same error
  CHECK(http1::status_for(p.error_code()) == 502);
}

TEST_CASE("the request method is sticky across 1xx responses", "[http1][response]") {
  http1::response_collector c;
  c.parser().set_request_method("HEAD");
  c.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
  REQUIRE(c.messages().size() == 2);
  CHECK(c.messages()[1].body.empty());
  CHECK(c.rest().empty());
}

TEST_CASE("response: a body until close is bounded too", "[http1][response][limits]") {
  http1::limits l;
  l.max_body_size = 8;
  http1::response_parser p{l};
  std::string_view in = "HTTP/1.1 200 OK\r\n\r\n0123456789";
  auto r = p.parse(in);
  REQUIRE(r.what == event::head);
  in.remove_prefix(r.consumed);
  r = p.parse(in);  // up to the limit ...
  CHECK(r.what == event::body);
  CHECK(r.data == "01234567");
  in.remove_prefix(r.consumed);
  CHECK(p.parse(in).error == error::body_too_large);  // ... then the error

  http1::response_parser q{l};
  REQUIRE(q.parse("HTTP/1.1 200 OK\r\n\r\n"sv).what == event::head);
  CHECK(q.parse("0123"sv).what == event::body);
  CHECK(q.finish().what == event::message_complete);
  CHECK(q.finish().what == event::end_of_stream);
  CHECK(q.parse("more"sv).what == event::end_of_stream);
}
