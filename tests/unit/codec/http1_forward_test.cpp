#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/parser.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace http1 = rproxy::codec::http1;
using http1::field_fate;
using namespace std::string_view_literals;

namespace {

/// The upstream fields for a request head, as parsed from `head`.
http1::fields forwarded(std::string_view head, const http1::forward_rules& rules) {
  http1::request_parser p;
  const auto r = p.parse(head);
  REQUIRE(r.what == http1::event::head);
  http1::fields out;
  http1::copy_forwarded_fields(p.head().fields, out, rules);
  return out;
}

}  // namespace

TEST_CASE("forward: hop-by-hop, framing and forwarding fields are not copied", "[http1]") {
  const auto up = forwarded(
      "POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
      "Content-Length: 1\r\nExpect: 100-continue\r\nX-Drop: 1\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
      "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n"sv,
      {});
  CHECK(up == http1::fields{{"Host", "h"}, {"Accept", "*/*"}});
}

TEST_CASE("forward: a Connection list never removes Host or the framing", "[http1]") {
  http1::fields all{{"Connection", "host, content-length, transfer-encoding, x-a"}};
  const http1::forward_rules rules{};
  CHECK(http1::request_field_fate("Host", all, rules) == field_fate::forward);
  CHECK(http1::request_field_fate("X-A", all, rules) == field_fate::connection_listed);
  // Content-Length and Transfer-Encoding are dropped anyway: the proxy re-frames the body.
  CHECK(http1::request_field_fate("Content-Length", all, rules) == field_fate::hop_by_hop);

  const auto up = forwarded("GET / HTTP/1.1\r\nHost: h\r\nConnection: host\r\n\r\n"sv, {});
  CHECK(up == http1::fields{{"Host", "h"}});
}

TEST_CASE("forward: names the proxy sets and names with '_' are dropped", "[http1]") {
  const std::vector<std::string> strip{"X-User"};
  const http1::forward_rules rules{.strip = strip};
  const auto head = "GET / HTTP/1.1\r\nHost: h\r\nx-user: admin\r\nX_User: admin\r\nX-Ok: 1\r\n\r\n"sv;
  CHECK(forwarded(head, rules) == http1::fields{{"Host", "h"}, {"X-Ok", "1"}});
  CHECK(http1::request_field_fate("X_User", http1::fields{}, rules) == field_fate::underscore);
  CHECK(http1::request_field_fate("X-USER", http1::fields{}, rules) == field_fate::stripped);

  const http1::forward_rules allow{.strip = strip, .allow_underscore = true};
  CHECK(forwarded(head, allow) == http1::fields{{"Host", "h"}, {"X_User", "admin"}, {"X-Ok", "1"}});
}

TEST_CASE("forward: request trailers are dropped unless allowed, and never forbidden ones", "[http1]") {
  const std::vector<std::string> strip{"X-User"};
  const http1::fields trailers{{"X-User", "admin"}, {"X_Role", "root"}, {"X-Checksum", "abc"}, {"Host", "evil"},
                               {"X-Forwarded-For", "1.2.3.4"}, {"Content-Length", "0"}, {"X-Listed", "1"}};
  const http1::fields head{{"Host", "h"}, {"Connection", "x-listed"}};
  CHECK(http1::forwarded_trailers(head, trailers, {.strip = strip}).empty());

  const std::vector<std::string> allow{"x-checksum", "X-User", "X_Role", "Host", "X-Forwarded-For", "Content-Length",
                                       "X-Listed"};
  const auto kept = http1::forwarded_trailers(head, trailers, {.strip = strip, .allow_trailers = allow});
  CHECK(kept == http1::fields{{"X-Checksum", "abc"}});
  CHECK(http1::request_trailer_fate("X-User", head, {.strip = strip, .allow_trailers = allow}) == field_fate::stripped);
  CHECK(http1::request_trailer_fate("X-Other", head, {.allow_trailers = allow}) == field_fate::trailer_refused);
}

TEST_CASE("forward: a request from HTTP/2 or HTTP/3 goes chunked when trailers may follow its length", "[http1]") {
  const std::vector<std::string> allow{"x-checksum"};
  const http1::forward_rules none{}, some{.strip = {}, .allow_underscore = false, .allow_trailers = allow};
  struct row {
    std::optional<std::uint64_t> cl;
    bool ended, body_empty, trailers;
    const http1::forward_rules* rules;
    bool chunked, has_cl;
    std::uint64_t length;
  };
  const row rows[] = {
      // No length: chunked whenever a body may come (trailers or not).
      {std::nullopt, false, true, false, &none, true, false, 0},
      {std::nullopt, true, false, false, &none, true, false, 0},
      {std::nullopt, true, true, false, &none, false, false, 0},  // ended in its HEADERS frame
      {std::nullopt, true, true, true, &some, true, false, 0},    // trailers only: they go on
      // A length, no trailer forwarded (the default): the length stays, whatever comes.
      {50000, false, true, false, &none, false, true, 50000},
      {50000, true, false, true, &none, false, true, 50000},
      // A length, trailers allowed: chunked while they may still come, or when they came.
      {50000, false, true, false, &some, true, false, 0},
      {50000, true, false, true, &some, true, false, 0},
      {50000, true, false, false, &some, false, true, 50000},  // ended without: the length stays
      {0, true, true, false, &some, false, true, 0},
  };
  for (const auto& r : rows) {
    INFO("cl " << (r.cl ? std::to_string(*r.cl) : "-") << " ended " << r.ended << " body_empty " << r.body_empty << " trailers "
               << r.trailers << " allowed " << !r.rules->allow_trailers.empty());
    const auto info = http1::h2_request_framing(r.cl, r.ended, r.body_empty, r.trailers, *r.rules);
    CHECK(info.chunked == r.chunked);
    CHECK(info.has_content_length == r.has_cl);
    CHECK(info.content_length == r.length);
  }
}
