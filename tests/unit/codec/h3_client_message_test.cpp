// codec/h3/client_message.hpp: a request's HTTP/3 field lines and a response head's checks.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <rproxy/codec/h3/client_message.hpp>

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

namespace {

std::vector<h3::field> lines(const h3::request_fields& f) {
  std::vector<h3::field> out;
  for (const auto& nv : f.nva())
    out.push_back({std::string(reinterpret_cast<const char*>(nv.name), nv.namelen), std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen)});
  return out;
}

}  // namespace

TEST_CASE("request: pseudo-headers first, names lowercased, values as given", "[h3]") {
  h3::request_fields f;
  auto r = req("POST", "api.example", "/v1/x?y=1", {{"Content-Type", "text/plain"}, {"X-Trace", "Ab C"}});
  REQUIRE_FALSE(f.build(r));
  const std::vector<h3::field> want{{":method", "POST"},      {":scheme", "https"},         {":authority", "api.example"},
                                    {":path", "/v1/x?y=1"}, {"content-type", "text/plain"}, {"x-trace", "Ab C"}};
  CHECK(lines(f) == want);
}

TEST_CASE("request: connection-specific fields are dropped, TE only as trailers", "[h3]") {
  h3::request_fields f;
  auto r = req("GET", "a", "/",
                {{"Connection", "keep-alive, X-Hop"}, {"Keep-Alive", "timeout=5"}, {"Proxy-Connection", "x"}, {"Transfer-Encoding", "chunked"},
                 {"Upgrade", "websocket"}, {"X-Hop", "1"}, {"TE", "gzip"}, {"Accept", "*/*"}});
  REQUIRE_FALSE(f.build(r));
  const std::vector<h3::field> want{{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}, {"accept", "*/*"}};
  CHECK(lines(f) == want);
  r.headers = {{"te", "trailers"}};
  REQUIRE_FALSE(f.build(r));
  CHECK(lines(f).back() == h3::field{"te", "trailers"});
}

TEST_CASE("request: Host becomes :authority when none is given, and is never sent as a field", "[h3]") {
  h3::request_fields f;
  auto r = req("GET", "", "/", {{"Host", "from-host:8080"}, {"Accept", "*/*"}});
  REQUIRE_FALSE(f.build(r));
  auto l = lines(f);
  CHECK(l[2] == h3::field{":authority", "from-host:8080"});
  for (const auto& x : l) CHECK(x.name != "host");
  r.authority = "given";
  REQUIRE_FALSE(f.build(r));
  l = lines(f);
  CHECK(l[2] == h3::field{":authority", "given"});
  for (const auto& x : l) CHECK(x.name != "host");
}

TEST_CASE("request: what HTTP/3 cannot carry is refused with a downstream error", "[h3]") {
  h3::request_fields f;
  auto ec = f.build(req("CONNECT", "a"));
  CHECK(ec == h3::client_error::unsupported_method);
  CHECK(ec == rproxy::condition::downstream);
  CHECK(f.build(req("GE T", "a")) == h3::client_error::unsupported_method);
  CHECK(f.build(req("GET", "a", "/", {{"Bad Name", "x"}})) == h3::client_error::bad_request_field);
  CHECK(f.build(req("GET", "a", "/", {{"x", "a\r\nInjected: 1"}})) == h3::client_error::bad_request_field);
  CHECK(f.build(req("GET", "a", "/", {{"x", std::string("a\0b", 3)}})) == h3::client_error::bad_request_field);
  CHECK(f.build(req("GET", "a b")) == h3::client_error::bad_request_field);
  CHECK(f.build(req("GET", "a", "")) == h3::client_error::bad_request_field);
  h3::request_fields small({.max_fields = 6, .max_field_bytes = 1024});
  CHECK_FALSE(small.build(req("GET", "a", "/", {{"a", "1"}, {"b", "2"}})));
  CHECK(small.build(req("GET", "a", "/", {{"a", "1"}, {"b", "2"}, {"c", "3"}})) == h3::client_error::bad_request_field);
}

TEST_CASE("response: one three-digit :status before the fields; content-length checked", "[h3]") {
  h3::response_builder b;
  b.begin();
  REQUIRE_FALSE(b.add(":status", "204"));
  REQUIRE_FALSE(b.add("content-length", "0"));
  REQUIRE_FALSE(b.add("x-a", "1"));
  REQUIRE_FALSE(b.finish());
  CHECK(b.head().status == 204);
  CHECK(b.head().content_length == 0u);
  CHECK(b.head().headers == std::vector<h3::field>{{"content-length", "0"}, {"x-a", "1"}});
  CHECK_FALSE(b.interim());

  auto one = [&](std::vector<h3::field> fs) {
    b.begin();
    for (const auto& f : fs) (void)b.add(f.name, f.value);
    return b.finish();
  };
  CHECK(one({}) == h3::client_error::bad_status);
  CHECK(one({{"x", "1"}}) == h3::client_error::bad_status);
  CHECK(one({{":status", "20"}}) == h3::client_error::bad_status);
  CHECK(one({{":status", "2000"}}) == h3::client_error::bad_status);
  CHECK(one({{":status", "099"}}) == h3::client_error::bad_status);
  CHECK(one({{":status", "600"}}) == h3::client_error::bad_status);
  CHECK(one({{":status", "2x0"}}) == h3::client_error::bad_status);
  CHECK(one({{":status", "200"}, {":status", "200"}}) == h3::client_error::bad_status);
  CHECK(one({{"x", "1"}, {":status", "200"}}) == h3::client_error::bad_response_field);
  CHECK(one({{":status", "200"}, {":path", "/"}}) == h3::client_error::bad_response_field);
  CHECK(one({{":status", "200"}, {"content-length", "1x"}}) == h3::client_error::bad_content_length);
  CHECK(one({{":status", "200"}, {"content-length", "5"}, {"content-length", "6"}}) == h3::client_error::bad_content_length);
  CHECK(one({{":status", "200"}, {"content-length", "99999999999999999999"}}) == h3::client_error::bad_content_length);
  CHECK_FALSE(one({{":status", "200"}, {"content-length", "5"}, {"content-length", "5"}}));
  CHECK(one({{":status", "200"}, {"content-length", "5"}}) == std::error_code{});
  CHECK(one({{":status", "103"}, {"link", "</a>"}}) == std::error_code{});
  CHECK(b.interim());
  // Errors are upstream: the server sent them.
  CHECK(make_error_code(h3::client_error::bad_status) == rproxy::condition::upstream);
}

TEST_CASE("response: the number of fields and the section's size are bounded", "[h3]") {
  h3::response_builder b({.max_fields = 3, .max_field_bytes = 200});
  b.begin();
  REQUIRE_FALSE(b.add(":status", "200"));
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(b.add("a", "1"));
  CHECK(b.add("a", "1") == h3::client_error::too_many_fields);
  CHECK(b.finish() == h3::client_error::too_many_fields);
  b.begin();
  REQUIRE_FALSE(b.add(":status", "200"));
  CHECK(b.add("big", std::string(200, 'x')) == h3::client_error::fields_too_large);
  CHECK(b.add("a", "1") == h3::client_error::fields_too_large);  // the first error sticks
}
