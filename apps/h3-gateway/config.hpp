// apps/h3-gateway/config.hpp: the gateway's YAML, declared once. The library brings every
// block (routes, backend groups, health checks, security stages, CORS, request ids, the
// HTTP/1.1 listener's limits and forwarding); the gateway adds its listeners and the names a
// route's `middleware:` list may use.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/restart_only.hpp>
#include <rproxy/app/tls_block.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/listen_address.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/config.hpp>
#include <rproxy/flow/h2_block.hpp>
#include <rproxy/flow/h3_block.hpp>
#include <rproxy/flow/http1_block.hpp>
#include <rproxy/middleware/api_key_block.hpp>
#include <rproxy/middleware/audit_block.hpp>
#include <rproxy/middleware/ban_block.hpp>
#include <rproxy/middleware/compress_block.hpp>
#include <rproxy/middleware/conn_limit_block.hpp>
#include <rproxy/middleware/cors_block.hpp>
#include <rproxy/middleware/ip_filter_block.hpp>
#include <rproxy/middleware/jwt_block.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>
#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/middleware/request_id_block.hpp>
#include <rproxy/route/http_routes_block.hpp>
#include <rproxy/route/middleware_names.hpp>
#include <rproxy/upstream/group_block.hpp>

namespace h3_gateway {

namespace cfg = rproxy::config;
namespace mw = rproxy::middleware;
namespace bal = rproxy::balance;

/// The stages a route's `middleware:` list can name, in pipeline order (bit i: name i).
inline constexpr rproxy::route::middleware_names<6> route_middleware{{"ip_filter", "bans", "jwt", "api_keys", "rate_limit", "compress"}};

/// A named backend group (upstream/group_block.hpp).
using group_config = rproxy::upstream::group_block;

struct config {
  rproxy::app::admin_config admin{};
  cfg::endpoint listen{"127.0.0.1", 8080};
  std::optional<rproxy::app::tls_listener_block> tls;
  std::optional<rproxy::flow::h3_block> quic;
  rproxy::flow::proxy_protocol_config proxy_protocol{};
  std::vector<group_config> groups;
  rproxy::route::http_routes_block http{};
  std::vector<std::string> default_middleware;
  rproxy::flow::http1_block limits{};
  rproxy::flow::http1_forwarding_block forwarding{};
  rproxy::flow::h2_block h2{};
  std::uint32_t retry_after = 1;
  mw::ip_filter_block ip_filter{};
  mw::conn_limit_block conn_limit{};
  mw::ban_block bans{};
  std::optional<mw::jwt_block> jwt;
  std::optional<mw::api_key_block> api_keys;
  bool require_auth = true;
  std::optional<mw::rate_limit_block> rate_limit;
  std::optional<rproxy::cluster::redis_block> redis;
  mw::audit_block audit{};
  mw::request_id_block request_id{};
  std::optional<mw::cors_block> cors;
  std::optional<mw::compress_block> compress;
  bool access_log = true;

  static constexpr auto describe() {
    return cfg::fields(
        cfg::doc<&config::admin>("admin HTTP endpoint: /metrics /healthz /readyz, POST /reload (off when listen is unset)"),
        cfg::doc<&config::listen>("address and port clients connect to (HTTP/1.1, and HTTP/2 with prior knowledge)"),
        cfg::doc<&config::tls>("a TLS listener: HTTP/2 (ALPN h2), certificates chosen by SNI (off when absent)"),
        cfg::doc<&config::quic>("an HTTP/3 listener on UDP, the tls: block's certificates; TCP responses advertise it (Alt-Svc)"),
        cfg::doc<&config::proxy_protocol>("PROXY v1/v2 headers from trusted load balancers, on both listeners (before TLS)"),
        cfg::required<&config::groups>("named backend groups"),
        cfg::required<&config::http>("routes: hosts, paths, predicates, splits between groups, rewrites (docs/routing.md)"),
        cfg::doc<&config::default_middleware>("middleware for routes without a middleware list: ip_filter, bans, jwt, api_keys, rate_limit, compress"),
        cfg::doc<&config::limits>("timeouts and sizes of the listener"),
        cfg::doc<&config::forwarding>("which request headers and trailers reach the backends"),
        cfg::doc<&config::h2>("HTTP/2 streams and flow-control windows (timeouts and sizes: limits)"),
        cfg::doc<&config::retry_after>("Retry-After seconds on a 503 when a group has no backend up or its breakers are open (0: none)"),
        cfg::doc<&config::ip_filter>("allow/deny lists (routes naming ip_filter)"),
        cfg::doc<&config::conn_limit>("connection caps (every connection; max_per_ip held with other instances through redis:)"),
        cfg::doc<&config::bans>("bans by address or identity (routes naming bans)"),
        cfg::doc<&config::jwt>("JWT bearer tokens (routes naming jwt)"),
        cfg::doc<&config::api_keys>("API keys (routes naming api_keys)"),
        cfg::doc<&config::require_auth>("a route naming jwt or api_keys needs a valid token or key (else 401)"),
        cfg::doc<&config::rate_limit>("request rate limits with X-RateLimit-* (routes naming rate_limit)"),
        cfg::doc<&config::redis>("state shared with other instances: rate limits, bans, connection caps (docs/scaling.md); off when absent"),
        cfg::doc<&config::audit>("security audit log: one line per rejection, no secrets"),
        cfg::doc<&config::request_id>("request ids and W3C trace context (every request)"),
        cfg::doc<&config::cors>("cross-origin requests from browsers (every request; off when unset)"),
        cfg::doc<&config::compress>("response compression: gzip, br, zstd (routes naming compress)"),
        cfg::doc<&config::access_log>("one log line per request"));
  }

  /// What a reload does not apply (app/restart_only.hpp: `validate` prints it, a reload that
  /// changes one logs "restart required"), as serve.cpp keeps it from the first config: the
  /// listeners (plain, TLS and QUIC, with the QUIC endpoint's settings) and the admin endpoint
  /// are opened once; the HTTP/1.1 adapter (its sizes and idle timeout, `forwarding`) and the
  /// HTTP/2 and HTTP/3 bounds (`h2`, and the `limits` they read, header_timeout included) are
  /// set once; the audit log, the Redis links and their sync interval are made once. Certificates,
  /// routes, groups, middleware blocks, header_timeout and connect_timeout of HTTP/1.1 reload.
  rproxy::app::restart_keys restart_only() const {
    using rproxy::app::value_text;
    const auto* dist = rate_limit && rate_limit->distributed ? &*rate_limit->distributed : nullptr;
    return {{"listen", listen.to_string()},
            {"tls", tls ? "on" : "off"},
            {"tls.listen", tls ? tls->listen.to_string() : ""},
            {"quic", quic ? value_text(*quic) : ""},
            {"admin", value_text(admin)},
            {"limits.max_header", value_text(limits.max_header)},
            {"limits.max_header_count", value_text(limits.max_header_count)},
            {"limits.max_body", value_text(limits.max_body)},
            {"limits.buffer_size", value_text(limits.buffer_size)},
            {"limits.idle_timeout", value_text(limits.idle_timeout)},
            {"limits.header_timeout", value_text(limits.header_timeout)},
            {"forwarding", value_text(forwarding)},
            {"h2", value_text(h2)},
            {"audit", value_text(audit)},
            {"redis", redis ? value_text(*redis) : ""},
            {"rate_limit.distributed.sync_interval", dist ? value_text(dist->sync_interval) : ""}};
  }

  /// The middleware bits of a route with this list (empty: default_middleware).
  std::uint32_t middleware_mask(const std::vector<std::string>& list) const { return route_middleware.mask(list.empty() ? default_middleware : list); }

  void validate(cfg::validator& v) const {
    cfg::validate_listen_address(v.at(&config::listen), listen);
    if (quic && !tls) v.at(&config::quic).error("HTTP/3 needs the tls: block's certificates");
    const auto names = rproxy::upstream::validate_groups(groups, v.at(&config::groups));
    // A middleware name must be known and its block set.
    auto configured = [&](std::string_view n) {
      return !((n == "jwt" && !jwt) || (n == "api_keys" && !api_keys) || (n == "rate_limit" && !rate_limit) || (n == "compress" && !compress));
    };
    auto check_list = [&](const std::vector<std::string>& list, auto at) { route_middleware.validate(list, configured, at); };
    check_list(default_middleware, [&](std::size_t j) { return v.at(&config::default_middleware).at(j); });
    if (rate_limit && rate_limit->distributed && !redis)
      v.at(&config::rate_limit).error("rate_limit.distributed needs a redis: block (the instances share their counters there)");
    const auto& routes = http.routes;
    for (std::size_t i = 0; i < routes.size(); ++i) {
      auto r = v.at(&config::http).at(&rproxy::route::http_routes_block::routes).at(i);
      for (std::size_t j = 0; j < routes[i].backends.size(); ++j)
        if (!routes[i].backends[j].group.empty() && !names.contains(routes[i].backends[j].group))
          r.at(&rproxy::route::http_route_config::backends).at(j).error("no group named '" + routes[i].backends[j].group + "'");
      check_list(routes[i].middleware, [&](std::size_t j) { return r.at(&rproxy::route::http_route_config::middleware).at(j); });
    }
  }
};

}  // namespace h3_gateway
