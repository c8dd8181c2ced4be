// rproxy/route/http_routes_block.hpp: the `routes:` block of an HTTP app, declared once; its
// validate() builds the table, so every route error (bad pattern, unreachable duplicate,
// refused header rule) is reported at config load with file:line:col.
//
//     struct config { rproxy::route::http_routes_block http{}; ... };   // http: { routes: [...] }
//     auto router = cfg.http.build();                                  // after a clean load
//
//     proxy.yaml:14:7: route 'users-b' is unreachable: route 'users' (line 9) has the same hosts
//                      and path and matches every request it matches
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/route/http_route_config.hpp>
#include <rproxy/route/http_router.hpp>

namespace rproxy::route {

struct http_routes_block {
  std::vector<http_route_config> routes;
  bool allow_encoded_slashes = false;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&http_routes_block::routes>("HTTP routes; precedence in docs/routing.md"),
                       cfg::doc<&http_routes_block::allow_encoded_slashes>(
                           "accept %2F and %5C in paths (as data in one segment); else they are a 400"));
  }
  http_router_options options() const { return {.allow_encoded_slashes = allow_encoded_slashes}; }
  static constexpr std::string_view summary = "HTTP routing: hosts, paths, predicates, splits and rewrites";

  void validate(config::validator& v) const {
    auto r = http_router::build(routes, options());
    if (r) return;
    const auto list = v.at(&http_routes_block::routes);
    for (const auto& e : r.error()) {
      auto at = list.at(e.route);
      if (!e.field.empty()) at = at.at(e.field);
      std::string message = e.message;
      if (e.other) {
        const auto m = list.at(*e.other).position();
        if (m.line > 0) message += " (route '" + routes[*e.other].name + "' is at line " + std::to_string(m.line) + ")";
      }
      at.error(std::move(message));
    }
  }

  /// The table of a validated block (a block that failed validate() is a programmer error:
  /// std::logic_error).
  http_router build() const {
    auto r = http_router::build(routes, options());
    if (!r) throw std::logic_error("http_routes_block::build(): the block did not validate");
    return std::move(*r);
  }
};

}  // namespace rproxy::route
