// codec/h3/request.hpp: an HTTP/3 request head as the HTTP/1.1 model sees it (RFC 9114 §4.3).
#include <catch2/catch.hpp>

#include <rproxy/codec/h3/request.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace h3 = rproxy::codec::h3;
namespace h2 = rproxy::codec::h2;
namespace http1 = rproxy::codec::http1;
using fields = std::vector<std::pair<std::string, std::string>>;

namespace {
h2::error build(h3::request& r, const fields& f) {
  for (const auto& [n, v] : f) r.add(n, v);
  return r.finish_head(4);
}
const fields get{{":method", "GET"}, {":scheme", "https"}, {":authority", "api.example:8443"}, {":path", "/v1/x?q=1"}};
}  // namespace

TEST_CASE("h3 request: pseudo fields map to the HTTP/1.1 head, Host first, cookies joined", "[h3]") {
  h3::request r;
  auto f = get;
  f.push_back({"cookie", "a=1"});
  f.push_back({"accept", "*/*"});
  f.push_back({"cookie", "b=2"});
  REQUIRE(build(r, f) == h2::error{});
  CHECK(r.stream_id() == 4);
  CHECK(r.method() == "GET");
  CHECK(r.target() == "/v1/x?q=1");
  CHECK(r.path() == "/v1/x");
  CHECK(r.scheme() == "https");
  CHECK(r.authority() == "api.example:8443");
  const auto& hd = r.head();
  CHECK(hd.version == http1::http_version::http11);  // mapped onto an HTTP/1.1 head...
  CHECK(hd.wire == http1::wire_protocol::h3);        // ...that says what the client spoke
  REQUIRE(hd.fields.size() == 3);
  auto it = hd.fields.begin();
  CHECK(it->name == "host");
  CHECK(it->value == "api.example:8443");
  ++it;
  CHECK(it->name == "cookie");
  CHECK(it->value == "a=1; b=2");
  ++it;
  CHECK(it->name == "accept");
  h3::request_view v(r);
  CHECK(v.header("host") == "api.example:8443");
  CHECK(v.cookie("b") == "2");
  CHECK(v.query("q") == "1");
}

TEST_CASE("h3 request: content-length, trailers", "[h3]") {
  h3::request r;
  fields f{{":method", "POST"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/up"}, {"content-length", "12"}};
  REQUIRE(build(r, f) == h2::error{});
  CHECK(r.content_length() == 12u);
  r.add_trailer("grpc-status", "0");
  REQUIRE(r.finish_trailers() == h2::error{});
  REQUIRE(r.trailers().size() == 1);
  CHECK(r.trailers().begin()->value == "0");
  h3::request bad_trailer;
  REQUIRE(build(bad_trailer, f) == h2::error{});
  bad_trailer.add_trailer(":status", "200");
  CHECK(bad_trailer.finish_trailers() == h2::error::malformed);
}

TEST_CASE("h3 request: malformed heads are refused (RFC 9114 §4.1.2, §4.2, §4.3.1)", "[h3]") {
  auto with = [](fields f) {
    h3::request r;
    return build(r, f);
  };
  CHECK(with({{":scheme", "https"}, {":authority", "x"}, {":path", "/"}}) == h2::error::malformed);  // no :method
  CHECK(with({{":method", "GET"}, {":authority", "x"}, {":path", "/"}}) == h2::error::malformed);    // no :scheme
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}}) == h2::error::malformed);  // no :path
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":path", "/"}}) == h2::error::bad_authority);  // no authority, no host
  CHECK(with({{":method", "GET"}, {":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}}) == h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {"accept", "*"}, {":authority", "x"}, {":path", "/"}}) == h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {":protocol", "ws"}}) == h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"connection", "close"}}) == h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"transfer-encoding", "chunked"}}) ==
        h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"te", "gzip"}}) == h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"te", "trailers"}}) == h2::error{});
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"host", "y"}}) == h2::error::bad_authority);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "a b"}, {":path", "/"}}) == h2::error::bad_authority);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "nope"}}) == h2::error::bad_target);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/a#frag"}}) == h2::error::bad_target);
  CHECK(with({{":method", "G E T"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}}) == h2::error::malformed);
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"x", "a\nb"}}) == h2::error::bad_field);
  CHECK(with({{":method", "POST"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/"}, {"content-length", "1"}, {"content-length", "2"}}) ==
        h2::error::malformed);
  // CONNECT: :authority only (the target), no :scheme or :path.
  CHECK(with({{":method", "CONNECT"}, {":authority", "x:443"}}) == h2::error{});
  CHECK(with({{":method", "CONNECT"}, {":authority", "x:443"}, {":path", "/"}, {":scheme", "https"}}) == h2::error::malformed);
  // the host field stands in for :authority when it is absent
  CHECK(with({{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "h"}}) == h2::error{});
}

TEST_CASE("h3 request: bounded header bytes and count", "[h3]") {
  h3::request small(200, 100);
  fields f = get;
  f.push_back({"x-big", std::string(300, 'a')});
  CHECK(build(small, f) == h2::error::header_too_large);
  h3::request few(64 * 1024, 5);
  fields g = get;
  for (int i = 0; i < 5; ++i) g.push_back({"x-" + std::to_string(i), "v"});
  CHECK(build(few, g) == h2::error::too_many_headers);
}
