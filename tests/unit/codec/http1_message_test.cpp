#include <rproxy/codec/http1/error.hpp>
#include <rproxy/codec/http1/message.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace http1 = rproxy::codec::http1;

TEST_CASE("fields: insertion order, duplicates, case-insensitive lookup", "[http1]") {
  http1::fields f;
  f.add("Host", "a").add("Set-Cookie", "x=1").add("set-cookie", "y=2").add("X-Empty", "");
  REQUIRE(f.size() == 4);
  CHECK(f[1] == http1::field{"Set-Cookie", "x=1"});
  CHECK(f.find("SET-COOKIE") == "x=1");
  CHECK(f.count("set-cookie") == 2);
  CHECK(f.contains("x-empty"));
  CHECK(f.find("x-empty") == "");
  CHECK_FALSE(f.find("missing").has_value());

  f.set("SET-cookie", "z=3");  // replaces all, keeps the first position
  REQUIRE(f.size() == 3);
  CHECK(f[1] == http1::field{"Set-Cookie", "z=3"});
  f.set("New", "v");
  CHECK(f[3].name == "New");
  CHECK(f.erase("host") == 1);
  CHECK(f.erase("host") == 0);
  CHECK(f.size() == 3);

  std::vector<std::string> names;
  for (const auto& x : f) names.push_back(x.name);
  CHECK(names == std::vector<std::string>{"Set-Cookie", "X-Empty", "New"});
}

TEST_CASE("fields: connection-style token lists", "[http1]") {
  const http1::fields f{{"Connection", "keep-alive, Upgrade"}, {"connection", "x"}};
  CHECK(f.has_token("connection", "upgrade"));
  CHECK(f.has_token("Connection", "X"));
  CHECK_FALSE(f.has_token("connection", "close"));
  CHECK_FALSE(f.has_token("connection", "upgrad"));
}

TEST_CASE("fields: invalid names and values are programmer errors", "[http1]") {
  http1::fields f;
  CHECK_THROWS_AS(f.add("Bad Name", "v"), std::invalid_argument);
  CHECK_THROWS_AS(f.add("", "v"), std::invalid_argument);
  CHECK_THROWS_AS(f.add("X", "a\r\nInjected: yes"), std::invalid_argument);
  CHECK_THROWS_AS(f.add("X", std::string("a\0b", 3)), std::invalid_argument);
  CHECK_THROWS_AS(f.add("X", " padded"), std::invalid_argument);
  CHECK_THROWS_AS(f.set("X", "a\n"), std::invalid_argument);
  CHECK(f.empty());
  CHECK(http1::is_valid_field_value("caf\xc3\xa9 \tok"));
  CHECK_FALSE(http1::is_valid_field_value("a\x7f"));
  CHECK(http1::is_valid_field_name("X-Custom_1.~"));
  CHECK_FALSE(http1::is_valid_field_name("X:"));
}

TEST_CASE("heads: views become owning values", "[http1]") {
  const std::vector<http1::field_view> list{{"Host", "h"}, {"Accept", "*/*"}};
  const http1::request_head_view v{"POST", "/x", http1::http_version::http10, http1::fields_view(list)};
  const auto h = http1::request_head::from(v);
  CHECK(h.method == "POST");
  CHECK(h.target == "/x");
  CHECK(h.version == http1::http_version::http10);
  CHECK(h.fields == http1::fields{{"Host", "h"}, {"Accept", "*/*"}});
  CHECK(h == http1::request_head{"POST", "/x", http1::http_version::http10, {{"Host", "h"}, {"Accept", "*/*"}}});
  CHECK(v.fields.find("ACCEPT") == "*/*");

  const http1::response_head_view rv{http1::http_version::http11, 404, "Not Found", {}};
  const auto r = http1::response_head::from(rv);
  CHECK(r == http1::response_head{404, "Not Found"});
  CHECK(http1::to_string(http1::http_version::http10) == "HTTP/1.0");
}

TEST_CASE("error codes: messages, sources, statuses", "[http1]") {
  const std::error_code ec = http1::error::body_too_large;
  CHECK(ec.category().name() == std::string("rproxy.http1"));
  CHECK(ec.message() == "body too large");
  CHECK(ec == rproxy::condition::downstream);
  CHECK(ec != rproxy::condition::upstream);
  CHECK(ec != rproxy::condition::retry_safe);
  const auto up = http1::make_upstream_error_code(http1::error::body_too_large);
  CHECK(up == rproxy::condition::upstream);
  CHECK(up.message() == "body too large");
  CHECK(http1::to_error(up) == http1::error::body_too_large);
  CHECK(http1::to_error(std::make_error_code(std::errc::io_error)) == http1::error{});
  CHECK(http1::status_for(ec) == 413);
  CHECK(http1::status_for(up) == 502);
  CHECK(http1::status_for(std::make_error_code(std::errc::io_error)) == 500);

  for (int e = 1; e <= static_cast<int>(http1::error::partial_message); ++e) {
    const auto code = http1::make_error_code(static_cast<http1::error>(e));
    CHECK(code.message() != "unknown http1 error");
    const auto s = http1::status_for(static_cast<http1::error>(e));
    CHECK((s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505));
  }
  STATIC_REQUIRE(http1::status_for(http1::error::bad_host) == 400);
  STATIC_REQUIRE(http1::status_for(http1::error::too_many_headers) == 431);
}
