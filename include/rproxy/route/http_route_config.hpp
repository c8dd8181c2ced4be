// rproxy/route/http_route_config.hpp: one HTTP route as a config file writes it, declared once
// (the YAML keys, the `init` text and the reference come from describe()). The router
// (http_router.hpp) compiles a list of these; http_routes_block.hpp is the block an app lists.
//
//     - name: users-v1
//       hosts: [ api.example.com ]
//       path: /v1/users/:id              # or prefix: /v1
//       methods: [ GET, HEAD ]
//       headers: [ { name: X-Tenant, value: acme } ]
//       rewrite: /users/{id}
//       backends: [ { group: users, weight: 90 }, { group: users-canary, weight: 10 } ]
//       sticky: { cookie: session }
//       request_headers: { set: { X-Route: users-v1 }, remove: [ X-Debug ] }
//       timeout: 5s
//       max_body: 1MiB
//       middleware: [ jwt, rate_limit ]
//       retry: { count: 2, on: [ connect_error, reset ] }
//
// docs/routing.md has the precedence rules and the full example.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/duration.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/health/retry_block.hpp>

namespace rproxy::route {

/// A header, query parameter or cookie the request must have (with this value, if given).
struct http_match_rule {
  std::string name;
  std::optional<std::string> value;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&http_match_rule::name>("header, query parameter or cookie name"),
                       cfg::doc<&http_match_rule::value>("the exact value it must have (unset: present with any value)"));
  }
  static constexpr std::string_view summary = "one request property a route requires";
};

/// One backend group of a route and its share of the route's requests.
struct http_backend_share {
  std::string group;
  std::uint32_t weight = 1;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&http_backend_share::group>("backend group name"),
                       cfg::doc<&http_backend_share::weight>("share of the route's requests (0: none)"));
  }
  static constexpr std::string_view summary = "a backend group and its weight";
};

/// What keeps a client on one backend group of a weighted split.
struct http_sticky_config {
  std::string header;
  std::string cookie;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&http_sticky_config::header>("hash this request header's value to choose the group"),
                       cfg::doc<&http_sticky_config::cookie>("hash this cookie's value to choose the group"));
  }
  static constexpr std::string_view summary = "same key, same group (a request without it is split at random)";
};

/// Header edits of a request (to the backend) or a response (to the client).
struct http_header_rules {
  std::map<std::string, std::string> set;
  std::map<std::string, std::string> add;
  std::vector<std::string> remove;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&http_header_rules::set>("replace every field of this name with one value"),
                       cfg::doc<&http_header_rules::add>("add a field, keeping those already there"),
                       cfg::doc<&http_header_rules::remove>("remove every field of these names"));
  }
  static constexpr std::string_view summary = "remove, then set, then add; hop-by-hop and framing fields are refused";
  bool empty() const noexcept { return set.empty() && add.empty() && remove.empty(); }
};

/// One route.
struct http_route_config {
  std::string name;
  std::vector<std::string> hosts;
  std::string path;
  std::string prefix;
  std::vector<std::string> methods;
  std::vector<http_match_rule> headers;
  std::vector<http_match_rule> query;
  std::vector<http_match_rule> cookies;
  std::vector<http_backend_share> backends;
  http_sticky_config sticky{};
  std::string strip_prefix;
  std::string rewrite;
  http_header_rules request_headers{};
  http_header_rules response_headers{};
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<config::byte_size> max_body;
  std::vector<std::string> middleware;
  std::optional<health::retry_block> retry;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::required<&http_route_config::name>("route name (metrics, logs, errors); unique"),
        cfg::doc<&http_route_config::hosts>("host names: exact, *.suffix, or * (empty: the default hosts, like *)"),
        cfg::doc<&http_route_config::path>("whole path: /literal, /:param (one segment), /*rest (the rest, last)"),
        cfg::doc<&http_route_config::prefix>("path prefix, whole segments (/api matches /api and /api/x, not /apix)"),
        cfg::doc<&http_route_config::methods>("request methods (empty: any)"),
        cfg::doc<&http_route_config::headers>("request headers it must have"),
        cfg::doc<&http_route_config::query>("query parameters it must have (compared decoded)"),
        cfg::doc<&http_route_config::cookies>("cookies it must have"),
        cfg::required<&http_route_config::backends>("backend groups, split by weight"),
        cfg::doc<&http_route_config::sticky>("keep a client on one group of the split"),
        cfg::doc<&http_route_config::strip_prefix>("remove this literal leading part of the path before forwarding"),
        cfg::doc<&http_route_config::rewrite>("forward this path instead; {param} inserts a captured parameter"),
        cfg::doc<&http_route_config::request_headers>("edits of the request sent to the backend"),
        cfg::doc<&http_route_config::response_headers>("edits of the response sent to the client"),
        cfg::doc<&http_route_config::timeout>("whole request deadline (unset: the listener's)"),
        cfg::doc<&http_route_config::idle_timeout>("no progress for this long ends the request (unset: the listener's)"),
        cfg::doc<&http_route_config::max_body>("request body limit (unset: the listener's)"),
        cfg::doc<&http_route_config::middleware>("middleware chain names, in order"),
        cfg::doc<&http_route_config::retry>("retries on another backend, their causes and budget (unset: failed connects only, up to twice)"));
  }
  static constexpr std::string_view summary = "one route: what it matches and where it goes";
};

}  // namespace rproxy::route
