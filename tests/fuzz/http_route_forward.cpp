// libFuzzer target: a request head from the client, routed (route/by_http_route.hpp), applied
// (route/apply_http_route.hpp) and written for the backend by the HTTP/1.1 adapter's
// upstream_head (flow/http1.hpp). The input is the client's bytes.
//   - never crashes or throws (the serializer throws on a head that would split: a target or
//     field the route made from client input must never be one);
//   - the head the backend gets parses whole (a parser with room for the few fields the proxy adds), with the client's method and the route's
//     upstream target (a normal path plus the client's query);
//   - a field the route removes or sets never reaches the backend with the client's value.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/apply_http_route.hpp>
#include <rproxy/route/normalize_path.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace rt = rproxy::route;
namespace http1 = rproxy::codec::http1;

rt::http_route_config route(std::string name, std::string path) {
  rt::http_route_config c;
  c.name = std::move(name);
  if (path.starts_with("prefix:")) c.prefix = path.substr(7);
  else c.path = std::move(path);
  c.backends = {{"main", 1}};
  c.request_headers.remove = {"X-Debug"};
  c.request_headers.set = {{"X-Route", c.name}};
  return c;
}

const rt::http_router& router() {
  static const rt::http_router r = [] {
    std::vector<rt::http_route_config> v;
    v.push_back(route("root", "prefix:/"));
    v.push_back(route("user", "/users/:id"));
    v.back().rewrite = "/u/{id}";
    v.push_back(route("files", "/files/*rest"));
    v.back().rewrite = "/f/{rest}";
    v.push_back(route("api", "prefix:/api"));
    v.back().strip_prefix = "/api";
    v.back().max_body = rproxy::config::byte_size{16};
    rt::http_router_options o;
    o.allow_encoded_slashes = true;
    auto built = rt::http_router::build(std::move(v), o);
    if (!built) std::abort();
    return std::move(*built);
  }();
  return r;
}

void check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "http_route_forward: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  http1::request_parser parser;
  if (parser.parse(in).what != http1::event::head) return 0;
  static auto p = rproxy::make_pipeline<rproxy::flow::http1_protocol>(rt::by_http_route{&router()}, rt::apply_http_route{});
  auto ctx = p.make_context();
  ctx.backend = asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 8080);  // as the balancer sets it (Host for a 1.0 request without one)
  http1::request_view req{parser.head()};
  if (!p.hello(ctx, req).is_next()) return 0;
  const auto& m = ctx.state<rt::by_http_route>().match;
  check(bool(m), "bool(m)");
  check(rt::is_normal_path(m.upstream_path()), "rt::is_normal_path(m.upstream_path())");
  check(ctx.upstream_target.starts_with(m.upstream_path()), "ctx.upstream_target.starts_with(m.upstream_path())");
  const rproxy::flow::http1_adapter adapter;
  const std::string up = adapter.upstream_head(ctx, parser.head(), parser.info());  // must not throw
  // The backend's parser with room for what the proxy adds (forwarding fields, Host, the
  // route's edits: a few fields and bytes more than the client's head had).
  http1::limits more{};
  more.max_header_count += 16;
  more.max_header_bytes += 4096;
  http1::request_parser again(more);
  check(again.parse(up).what == http1::event::head, "again.parse(up).what == http1::event::head");
  check(again.head().method == parser.head().method, "again.head().method == parser.head().method");
  check(again.head().target == ctx.upstream_target, "again.head().target == ctx.upstream_target");
  check(!again.head().fields.contains("x-debug"), "!again.head().fields.contains(\"x-debug\")");
  check(again.head().fields.find("x-route") == std::optional<std::string_view>(m.route()->name()), "again.head().fields.find(\"x-route\") == std::optional<std::string_view>(m.route()->name())");
  return 0;
}
