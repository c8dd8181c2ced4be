// apps/h3-gateway/gateway.hpp: the HTTP API gateway made of rproxy parts. A world per config
// version (route table, groups' pools, security state, a pipeline per worker); pools and their
// health monitors are kept across reloads by group name, rate-limit counters for good.
//
// Request pipeline, in order (the connection pipeline runs conn_limit once per connection):
//   access_log, metrics      one line and the counters per request (first: closes last), and
//                            requests by the protocol the client spoke (h1, h2 and h3 flows alike)
//   retry_stage              the route's retry policy and budget (its on_route runs first)
//   request_id, cors         every request
//   by_http_route            host/path/predicates -> route, params, upstream path, group (404/400)
//   apply_http_route         upstream target, header edits, the route's body limit
//   ip_filter .. rate_limit  gated: only on routes whose middleware list names them (rate_limit
//                            counts here or, with a redis: block, across instances per route)
//   compress                 gated: response bodies compressed on routes naming it
//   group_stage              the group's balancer over its pool, per-backend breakers and passive
//                            ejection (503 + Retry-After when none is up or the breakers are open)
//   group_transport          how the group's backends are reached (TLS, SNI: its `tls:` block)
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/app/http_metrics.hpp>
#include <rproxy/app/listen.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/balance/group_stage.hpp>
#include <rproxy/cluster/shares.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/upstream.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/health/monitor.hpp>
#include <rproxy/health/retry_stage.hpp>
#include <rproxy/middleware/alt_svc.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/middleware/compress.hpp>
#include <rproxy/middleware/require_auth.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/observe/access_log_stage.hpp>
#include <rproxy/pipeline/gated.hpp>
#include <rproxy/route/apply_http_route.hpp>
#include <rproxy/route/by_http_route.hpp>
#include <rproxy/route/http_route_table.hpp>
#include <rproxy/upstream/group_transports.hpp>

#include "config.hpp"
#include "groups.hpp"

namespace rproxy::cluster { class instance; }  // cluster/instance.hpp (serve.cpp makes it)

namespace h3_gateway {

namespace obs = rproxy::observe;
using runtime = rproxy::app::runtime<config>;
using rproxy::route::by_http_route;

/// What every world shares: counters, the audit log, and the cluster instance: the links to
/// Redis (one client per worker, made from the first config's `redis:` block; a change there
/// needs a restart), the rate-limit counters and the bans shared with other instances. serve.cpp
/// makes the instance; the flows see it through `shares` (cluster/shares.hpp), so the units
/// that compile them do not include it.
struct shared_state {
  shared_state(runtime& rt, const config& c) : sink(&rt.log(), c.audit.file), audit(c.audit.make(sink)) {}
  mw::audit_file sink;
  mw::audit_log audit;
  std::shared_ptr<rproxy::cluster::instance> cluster;  ///< (shared_ptr: destroyed here without its type)
  std::vector<rproxy::cluster::shares> shares;  ///< by worker: what its flows use of `cluster`
};

/// One config version: what the stages point at.
struct world_base {
  world_base(runtime& rt, std::shared_ptr<const config> c, shared_state& s)
      : cfg(std::move(c)), table(cfg->http.build()),
        routes(rproxy::route::http_route_table::of(table, cfg->groups, [&](const auto& r) { return cfg->middleware_mask(r.middleware); })),
        ip(cfg->ip_filter.build()),
        keys(cfg->jwt ? cfg->jwt->key_sources() : std::vector<mw::key_source>{}),
        api_keys(cfg->api_keys ? cfg->api_keys->file : std::string()), shared(&s), log(&rt.log()) {
    if (cfg->jwt) jwt_cfg = cfg->jwt->config(cfg->rate_limit ? cfg->rate_limit->claims() : std::vector<std::string>{});
    else jwt_cfg.sources.clear();  // no token is ever looked for
    if (cfg->api_keys) key_cfg = cfg->api_keys->config();
    else key_cfg.sources.clear();
    jwt_cfg.optional = key_cfg.optional = true;  // "no credentials" is require_auth's call
    if (cfg->rate_limit) rl_cfg = cfg->rate_limit->config("request");
    else rl_cfg.hello_operation.clear();
  }

  /// Loads the side files (bans, JWT keys, API keys); false: one is bad (logged).
  bool load() {
    auto fail = [&](std::string_view what, const std::error_code& ec, std::size_t line = 0) {
      log->error("cannot load", {{"what", what}, {"error", ec.message()}, {"line", line}});
    };
    bool ok = cfg->bans.load(bans, fail);
    if (cfg->jwt)
      if (auto r = keys.reload(); !r) fail("jwt keys", r.error()), ok = false;
    if (cfg->api_keys) ok = cfg->api_keys->load(api_keys, fail) && ok;
    return ok;
  }

  std::shared_ptr<const config> cfg;
  rproxy::route::http_router table;
  rproxy::route::http_route_table routes;  ///< per route: middleware mask, groups, retry rule
  std::vector<std::shared_ptr<bal::upstream_pool>> pools;  ///< per cfg->groups entry
  rproxy::upstream::group_transports upstreams;  ///< how each group's backends are reached (TLS, stand-ins)
  const rproxy::app::http_metrics* metrics = nullptr;
  std::vector<rproxy::app::http_request_metrics::per_route> requests;
  mw::ip_filter_block::built ip;
  /// Per address for all instances with a redis: block (while it is away: rate_limit.distributed's on_failure).
  mw::conn_limit_config conn_cfg = mw::shared_by(cfg->conn_limit.config(), cfg->rate_limit ? cfg->rate_limit->distributed : std::nullopt);
  mw::ban_check_config ban_cfg = cfg->bans.config();
  mw::ban_list bans;
  mw::jwt_auth_config jwt_cfg;
  mw::key_store keys;
  mw::api_key_config key_cfg;
  mw::api_key_store api_keys;
  mw::rate_limit_config rl_cfg;
  mw::request_id_config rid_cfg = cfg->request_id.config();
  mw::cors_config cors_cfg = cfg->cors ? cfg->cors->config() : mw::cors_config{};
  mw::compress_config compress_cfg = cfg->compress ? cfg->compress->config() : mw::compress_config{};
  shared_state* shared;
  const obs::logger* log;
  rproxy::flow::options options;
  std::string alt_svc;  ///< `h3=":PORT"` with a quic: listener
};

/// Per connection: the gauge, the connection cap (per address, for all instances with redis:),
/// and (when a route checks bans) the roster through which a new ban closes its peers' connections.
inline auto connection_pipeline(world_base& w, std::size_t worker) {
  const bool bans = std::any_of(w.routes.masks.begin(), w.routes.masks.end(), [](std::uint32_t m) { return (m & route_middleware.bit("bans")) != 0; });
  return rproxy::make_pipeline<rproxy::flow::http1_protocol>(
      rproxy::app::connection_gauge{w.metrics->connections_open, w.metrics->connections_accepted},
      mw::shared_conn_limit{&w.conn_cfg, w.shared->shares[worker].conns, &w.shared->audit},
      mw::ban_kick{bans ? w.shared->shares[worker].kicks : nullptr, &w.bans, w.shared->shares[worker].bans, &w.ban_cfg, &w.shared->audit});
}

inline auto request_pipeline(world_base& w, std::uint64_t seed, std::size_t worker) {
  auto* a = &w.shared->audit;
  auto on = [&w](std::string_view n) { return rproxy::route::route_uses{&w.routes.masks, route_middleware.bit(n)}; };
  std::vector<bal::any_balancer> bs;
  for (const auto& g : w.cfg->groups) bs.push_back(bal::any_balancer::make(g.balancer, seed));
  return rproxy::make_pipeline<rproxy::flow::http1_protocol>(
      obs::access_log_stage{w.cfg->access_log ? w.log : nullptr}, rproxy::health::retry_stage{rproxy::route::route_retry{&w.routes.retry_rules}},
      rproxy::app::http_request_metrics{&w.requests, &w.metrics->upstream_connections, &w.metrics->by_protocol}, mw::alt_svc{&w.alt_svc}, mw::request_id{&w.rid_cfg},
      mw::cors{w.cfg->cors ? &w.cors_cfg : nullptr}, by_http_route{&w.table, {.seed = seed}}, rproxy::route::apply_http_route{},
      rproxy::gated{mw::ip_filter{&w.ip.rules, a, &w.ip.cfg}, on("ip_filter")},
      rproxy::gated{mw::ban_check{&w.bans, a, &w.ban_cfg, w.shared->shares[worker].bans}, on("bans")}, rproxy::gated{mw::jwt_auth{&w.jwt_cfg, &w.keys, a}, on("jwt")},
      rproxy::gated{mw::api_key_auth{&w.key_cfg, &w.api_keys, a}, on("api_keys")},
      rproxy::gated{mw::require_auth{a}, rproxy::route::route_uses{&w.routes.masks, w.cfg->require_auth ? route_middleware.bit("jwt") | route_middleware.bit("api_keys") : 0}},
      rproxy::gated{mw::basic_rate_limit<mw::shared_counter_store>{&w.rl_cfg, w.shared->shares[worker].limits, a}, on("rate_limit")},
      rproxy::gated{mw::compress{w.cfg->compress ? &w.compress_cfg : nullptr}, on("compress")},
      bal::group_stage{w.pools, std::move(bs), rproxy::route::route_group{&w.routes.groups}, {.no_backend = "no backend available", .retry_after_s = w.cfg->retry_after, .breaker_open = "circuit breaker open"},
                      rproxy::route::route_sticky_key{}},
      rproxy::route::group_transport{&w.upstreams.by_group, rproxy::route::route_group{&w.routes.groups}});
}

struct world : world_base {
  using world_base::world_base;
  mutable std::vector<decltype(connection_pipeline(std::declval<world_base&>(), 0))> connections;
  mutable std::vector<decltype(request_pipeline(std::declval<world_base&>(), 0, 0))> pipelines;
  mutable std::optional<rproxy::net::tls_server_context> tls;  ///< the `tls:` listener's certificates (app/http_listeners.hpp)
  std::optional<rproxy::net::quic::tls_credentials> quic_tls;   ///< the same certificates for QUIC (app/quic_listen.hpp)
};

}  // namespace h3_gateway
