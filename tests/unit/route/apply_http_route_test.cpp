// apply_http_route over the HTTP/1.1 flow: what the backend is sent (target, fields built by
// the adapter's upstream_head) and what the client gets (response fields), deadlines, body limits.
#include <rproxy/route/apply_http_route.hpp>

#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace {

namespace rt = rproxy::route;
namespace http1 = rproxy::codec::http1;
using namespace std::chrono_literals;

rt::http_router table() {
  std::vector<rt::http_route_config> routes(2);
  routes[0].name = "users";
  routes[0].path = "/v1/users/:id";
  routes[0].rewrite = "/users/{id}";
  routes[0].backends = {{"main", 1}};
  routes[0].request_headers.set = {{"X-Route", "users"}};
  routes[0].request_headers.add = {{"X-Tag", "gw"}};
  routes[0].request_headers.remove = {"X-Debug"};
  routes[0].response_headers.set = {{"Cache-Control", "no-store"}};
  routes[0].response_headers.remove = {"Server"};
  routes[0].timeout = 2s;
  routes[0].idle_timeout = 500ms;
  routes[1].name = "upload";
  routes[1].prefix = "/up";
  routes[1].strip_prefix = "/up";
  routes[1].backends = {{"main", 1}};
  routes[1].max_body = rproxy::config::byte_size{10};
  auto r = rt::http_router::build(std::move(routes));
  REQUIRE(r);
  return std::move(*r);
}

// The upstream head of a request as the HTTP/1.1 adapter writes it (one field per line).
template <class Ctx>
std::string upstream(const Ctx& ctx, const http1::request_parser& p) {
  rproxy::flow::http1_adapter a;
  return a.upstream_head(ctx, p.head(), p.info());
}

}  // namespace

TEST_CASE("apply_http_route: rewritten target with the query, request and response edits, route bounds", "[route]") {
  const auto router = table();
  auto p = rproxy::make_pipeline<rproxy::flow::http1_protocol>(rt::by_http_route{&router}, rt::apply_http_route{});
  http1::request_parser parser;
  const std::string bytes =
      "GET /v1/users/7?a=1&b=%20 HTTP/1.1\r\nHost: api\r\nX-Debug: secret\r\nX-Route: forged\r\nX-Tag: client\r\n\r\n";
  REQUIRE(parser.parse(bytes).what == http1::event::head);
  http1::request_view req{parser.head()};
  auto ctx = p.make_context();
  ctx.client = {asio::ip::make_address("127.0.0.1"), 5000};
  const auto before = std::chrono::steady_clock::now();
  REQUIRE(p.hello(ctx, req).is_next());
  CHECK(ctx.upstream_target == "/users/7?a=1&b=%20");
  CHECK(ctx.idle_timeout == 500ms);
  CHECK(ctx.deadline >= before + 2s);

  const std::string up = upstream(ctx, parser);
  CHECK(up.starts_with("GET /users/7?a=1&b=%20 HTTP/1.1\r\n"));
  CHECK(up.find("X-Debug") == std::string::npos);      // removed
  CHECK(up.find("forged") == std::string::npos);       // set: the client's field is dropped
  CHECK(up.find("X-Route: users\r\n") != std::string::npos);
  CHECK(up.find("X-Tag: client\r\n") != std::string::npos);  // add keeps the client's
  CHECK(up.find("X-Tag: gw\r\n") != std::string::npos);

  http1::fields down{{"Server", "backend/1"}, {"Cache-Control", "max-age=60"}, {"Content-Type", "text/plain"}};
  ctx.response_fields.apply(down);
  CHECK(down == http1::fields{{"Cache-Control", "no-store"}, {"Content-Type", "text/plain"}});
}

TEST_CASE("apply_http_route: strip_prefix, and the route's body limit by Content-Length and by counting", "[route]") {
  const auto router = table();
  auto p = rproxy::make_pipeline<rproxy::flow::http1_protocol>(rt::by_http_route{&router}, rt::apply_http_route{});
  auto hello = [&](const std::string& bytes, auto& ctx) {
    http1::request_parser parser;
    REQUIRE(parser.parse(bytes).what == http1::event::head);
    http1::request_view req{parser.head()};
    return p.hello(ctx, req);
  };
  auto small = p.make_context();
  REQUIRE(hello("POST /up/a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", small).is_next());
  CHECK(small.upstream_target == "/a/b");
  CHECK(small.deadline == std::chrono::steady_clock::time_point{});  // no route timeout: unbounded
  CHECK(p.message(small, std::string_view("0123456789")).is_next());

  auto big = p.make_context();
  const auto v = hello("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", big);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::too_large);
  CHECK(v.reason().message == rt::apply_http_route::too_large);

  auto chunked = p.make_context();
  REQUIRE(hello("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked).is_next());
  CHECK(chunked.upstream_target == "/");
  CHECK(p.message(chunked, std::string_view("01234")).is_next());
  CHECK(p.message(chunked, std::string_view("56789")).is_next());
  CHECK(p.message(chunked, std::string_view("x")).reason().code == rproxy::reject_code::too_large);
}
