// rproxy/route/by_http_route.hpp: routes an HTTP/1.1 request by the route table (http_router):
// sets ctx.route to the route's name in on_hello and keeps the match (params, upstream path,
// backend group, per-route settings) in the stage's state for later stages.
//
//     auto table = cfg.http.build();                          // once per config version, shared
//     rproxy::route::by_http_route r{&table, {.seed = worker_index}};
//     // later stages: const auto& m = ctx.state<rproxy::route::by_http_route>().match;
//     //               m.group(), m.upstream_path(), m.route()->config().timeout, ...
//
// No route: reject not_found (404). A path the normaliser refuses: reject bad_request (400).
// The split's random draws come from a splitmix64 sequence per stage object (one per worker).
#pragma once

#include <cstdint>
#include <string_view>

#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/route/http1_request.hpp>
#include <rproxy/route/http_router.hpp>

namespace rproxy::route {

class by_http_route {
public:
  struct options {
    std::uint64_t seed = 0x9e3779b97f4a7c15ull;  ///< of the split's random draws
    std::string_view not_found = "no route";       ///< the 404's message (config-owned text)
    std::string_view bad_path = "bad path";        ///< the 400's message
  };
  struct state {
    http_match match;  ///< the route, its params, upstream path and group
  };

  explicit by_http_route(const http_router* table) : by_http_route(table, options{}) {}
  by_http_route(const http_router* table, options o) : table_(table), o_(o), rng_(o.seed) {}

  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const codec::http1::request_view& req) {
    auto& m = ctx.template state<by_http_route>().match;
    switch (table_->match(http1_request{req}, m, next_draw())) {
      case http_route_status::matched:
        ctx.route = m.route()->name();
        return rproxy::next;
      case http_route_status::bad_path:
        return rproxy::reject(rproxy::reject_code::bad_request, o_.bad_path);
      case http_route_status::not_found:
        break;
    }
    return rproxy::reject(rproxy::reject_code::not_found, o_.not_found);
  }

private:
  std::uint64_t next_draw() noexcept {  // splitmix64
    std::uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  const http_router* table_;
  options o_;
  std::uint64_t rng_;
};

}  // namespace rproxy::route
