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
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/app/cluster.hpp>
#include <rproxy/app/listen.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/balance/group_stage.hpp>
#include <rproxy/cluster/instance.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/upstream.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/health/monitor.hpp>
#include <rproxy/health/retry_stage.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/middleware/compress.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/observe/access_log_stage.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/observe/pool_metrics.hpp>
#include <rproxy/pipeline/gated.hpp>
#include <rproxy/route/apply_http_route.hpp>
#include <rproxy/route/by_http_route.hpp>

#include "config.hpp"

namespace h3_gateway {

namespace obs = rproxy::observe;
using runtime = rproxy::app::runtime<config>;
using rproxy::route::by_http_route;

/// Refuses a request no auth stage authenticated (they let one without credentials through, so
/// that a JWT or an API key will do).
struct require_auth {
  mw::audit_log* audit = nullptr;
  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req&) {
    if (mw::find_principal(ctx) != nullptr) return rproxy::next;
    return mw::reject_and_audit(ctx, audit, {rproxy::reject_code::unauthorized, "credentials required"}, "require_auth", "no token or API key");
  }
};

/// Requests by route, status class ("2xx", ..., "none": no status sent) and backend; the
/// request's latency (head read to flow end) by route; the backend's (connected to response
/// head) by route and backend; retries on another pick by route, and requests the retry budget
/// shed; upgrades (101 relayed) by route; requests a stage refused, by route and reason.
struct request_metrics {
  using row = std::array<obs::counter*, 6>;
  struct backend_series {
    asio::ip::tcp::endpoint ep;
    row requests;
    obs::histogram* upstream;
  };
  struct per_route {
    row none;  ///< no backend picked
    std::vector<backend_series> backends;
    obs::histogram* duration;
    obs::counter* retries;
    obs::counter* shed;
    obs::counter* upgrades;
    obs::counter_family* rejects;  ///< bound per reason when one is first refused (the set is closed)
    std::string name;
  };
  struct state {
    std::chrono::steady_clock::time_point connected{};
  };
  const std::vector<per_route>* by_route;  ///< per route index, then one for "no route"
  /// Backend connections per request: [tls][reused] (plain new, plain kept, TLS new, TLS kept).
  const std::array<std::array<obs::counter*, 2>, 2>* connections = nullptr;
  /// Requests by what the client spoke, whichever listener and flow brought them (all three
  /// run this pipeline): [http/1.0, http/1.1, h2, h3] (protocol_index).
  const std::array<obs::counter*, 4>* by_protocol = nullptr;

  static constexpr std::array<std::string_view, 4> protocols{"http/1.0", "http/1.1", "h2", "h3"};
  static constexpr std::size_t protocol_index(const rproxy::codec::http1::request_head_view& h) noexcept {
    using w = rproxy::codec::http1::wire_protocol;
    if (h.wire == w::h2) return 2;
    if (h.wire == w::h3) return 3;
    return h.version == rproxy::codec::http1::http_version::http10 ? 0 : 1;
  }

  template <class Ctx>
  const per_route& route_of(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return (*by_route)[m ? m.route()->index() : by_route->size() - 1];
  }
  template <class Ctx>
  static const backend_series* backend_of(const per_route& r, const Ctx& ctx) {
    if (ctx.backend)
      for (const auto& b : r.backends)
        if (b.ep == *ctx.backend) return &b;
    return nullptr;
  }
  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx&, const Req& req) {
    if (by_protocol) (*by_protocol)[protocol_index(req.head())]->inc();
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    if (ctx.connect_error && !ctx.out_of_attempts) route_of(ctx).retries->inc();  // the retry stage let the driver try again
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_connect(Ctx& ctx) {
    ctx.template state<request_metrics>().connected = std::chrono::steady_clock::now();
    if (connections) (*connections)[ctx.upstream && ctx.upstream->tls ? 1 : 0][ctx.upstream_reused ? 1 : 0]->inc();
    return rproxy::next;
  }
  template <class Ctx, class Resp>
  rproxy::verdict on_response(Ctx& ctx, const Resp&) {
    const auto t = ctx.template state<request_metrics>().connected;
    if (const auto* b = backend_of(route_of(ctx), ctx); b && t != std::chrono::steady_clock::time_point{})
      b->upstream->observe(std::chrono::steady_clock::now() - t);
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    if (ctx.hello_done == std::chrono::steady_clock::time_point{} && ctx.status == 0) return;  // no request came
    const auto& r = route_of(ctx);
    const auto* b = backend_of(r, ctx);
    if (ctx.rejected) {
      if (ctx.rejected->cause == "shed") r.shed->inc();
      r.rejects->with({r.name, rproxy::to_string(ctx.rejected->code)}).inc();
    }
    (b ? b->requests : r.none)[ctx.status >= 100 && ctx.status < 600 ? ctx.status / 100 : 0]->inc();
    if (ctx.upgraded) r.upgrades->inc();  // (a 101 relayed, or an HTTP/2 extended CONNECT)
    if (ctx.hello_done != std::chrono::steady_clock::time_point{}) r.duration->observe(std::chrono::steady_clock::now() - ctx.hello_done);
  }
};

/// Advertises the HTTP/3 listener on every response (`Alt-Svc: h3=":PORT"`; none without one).
struct alt_svc {
  const std::string* value;
  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req&) {
    if (!value->empty()) ctx.response_fields.set("alt-svc", *value);
    return rproxy::next;
  }
};

/// Client connections accepted and open (first in the connection pipeline, so its on_accept always runs).
struct connection_gauge {
  obs::gauge* open;
  obs::counter* accepted;
  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) {
    accepted->inc();
    open->inc();
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    open->dec();
  }
};

/// Whether the matched route's middleware list names a stage (bit `bit`).
struct route_uses {
  const std::vector<std::uint32_t>* masks;
  std::uint32_t bit;
  template <class Ctx>
  bool operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return m && ((*masks)[m.route()->index()] & bit) != 0;
  }
};
constexpr std::uint32_t bit_of(std::string_view n) {
  for (std::size_t i = 0; i < middleware_names.size(); ++i)
    if (middleware_names[i] == n) return 1u << i;
  return 0;
}

/// The route's chosen group, as an index into the world's pools.
struct route_group {
  const std::vector<std::vector<std::size_t>>* groups;  ///< per route index, per split entry
  template <class Ctx>
  std::size_t operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return m ? (*groups)[m.route()->index()][m.group_index()] : ~std::size_t{0};
  }
};

/// How the picked backend is reached (TLS, SNI): its group's settings (after group_stage).
struct group_transport {
  const std::vector<rproxy::flow::upstream_settings>* by_group;  ///< per cfg->groups entry
  route_group select;
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    const std::size_t g = select(ctx);
    ctx.upstream = g < by_group->size() ? &(*by_group)[g] : nullptr;
    return rproxy::next;
  }
};

/// The route's retry rule (per route index; none without a route).
struct route_retry {
  const std::vector<rproxy::health::retry_rule>* rules;
  template <class Ctx>
  const rproxy::health::retry_rule* operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return m ? &(*rules)[m.route()->index()] : nullptr;
  }
};

/// A route's retry rule from its `retry:` block; without one, failed connects are retried twice
/// with no budget (the driver's default).
inline rproxy::health::retry_rule make_retry_rule(const std::optional<rproxy::health::retry_block>& b) {
  rproxy::health::retry_rule r;
  if (!b) {
    r.max_retries = 2;
    r.on = rproxy::health::retry_on::connect_error;
    return r;
  }
  r.max_retries = b->count;
  r.on = b->mask();
  r.retry_after_s = b->retry_after;
  r.budget = std::make_unique<rproxy::health::retry_budget>(b->budget.config());
  return r;
}

/// What every world shares: counters, the audit log, the links to Redis (one client per worker,
/// made from the first config's `redis:` block; a change there needs a restart) and the bans
/// shared with other instances.
struct shared_state {
  shared_state(runtime& rt, const config& c, const std::optional<rproxy::cluster::redis_options>& redis)
      : sink(&rt.log(), c.audit.file), audit(c.audit.make(sink)),
        cluster(rt.pool(), redis, rt.metrics(), rt.log(),
                rproxy::app::sharing(c.rate_limit && c.rate_limit->distributed ? &*c.rate_limit->distributed : nullptr,
                                     {.kicks_metric = "h3gw_ban_kicks"})) {}
  mw::audit_file sink;
  mw::audit_log audit;
  mw::conn_counter conns;
  rproxy::cluster::instance cluster;  ///< links to Redis, the rate-limit counters, bans made on any instance
};

/// One config version: what the stages point at.
struct world_base {
  world_base(runtime& rt, std::shared_ptr<const config> c, shared_state& s)
      : cfg(std::move(c)), table(cfg->http.build()), ip(cfg->ip_filter.build()),
        keys(cfg->jwt ? cfg->jwt->key_sources() : std::vector<mw::key_source>{}),
        api_keys(cfg->api_keys ? cfg->api_keys->file : std::string()), shared(&s), log(&rt.log()) {
    if (cfg->jwt) jwt_cfg = cfg->jwt->config(cfg->rate_limit ? cfg->rate_limit->claims() : std::vector<std::string>{});
    else jwt_cfg.sources.clear();  // no token is ever looked for
    if (cfg->api_keys) key_cfg = cfg->api_keys->config();
    else key_cfg.sources.clear();
    jwt_cfg.optional = key_cfg.optional = true;  // "no credentials" is require_auth's call
    if (cfg->cors) cors_cfg = cfg->cors->config();
    if (cfg->compress) compress_cfg = cfg->compress->config();
    if (cfg->rate_limit) rl_cfg = cfg->rate_limit->config("request");
    else rl_cfg.hello_operation.clear();
    for (const auto& r : table.routes()) {
      masks.push_back(cfg->middleware_mask(r.config().middleware));
      retry_rules.push_back(make_retry_rule(r.config().retry));
      auto& g = groups.emplace_back();
      for (const auto& share : r.config().backends)
        for (std::size_t i = 0; i < cfg->groups.size(); ++i)
          if (cfg->groups[i].name == share.group) g.push_back(i);
    }
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
  std::vector<std::uint32_t> masks;
  std::vector<rproxy::health::retry_rule> retry_rules;  ///< per route index
  std::vector<std::vector<std::size_t>> groups;
  std::vector<std::shared_ptr<bal::upstream_pool>> pools;  ///< per cfg->groups entry
  /// TLS to backends: a client context per group with a `tls:` block (read on every reload),
  /// and how each group's backends are reached (per cfg->groups entry; no TLS: plain TCP).
  /// (Shared: the HTTP/2 connections of proto: h2 groups keep theirs past this version.)
  std::vector<std::shared_ptr<const rproxy::net::tls_client_context>> tls_clients;
  std::vector<rproxy::flow::upstream_settings> upstreams;
  const std::array<std::array<obs::counter*, 2>, 2>* upstream_connections = nullptr;
  const std::array<obs::counter*, 4>* requests_by_protocol = nullptr;
  std::vector<request_metrics::per_route> requests;
  obs::gauge* connections_open = nullptr;
  obs::counter* connections_accepted = nullptr;
  mw::ip_filter_block::built ip;
  mw::conn_limit_config conn_cfg = cfg->conn_limit.config();
  mw::ban_check_config ban_cfg = cfg->bans.config();
  mw::ban_list bans;
  mw::jwt_auth_config jwt_cfg;
  mw::key_store keys;
  mw::api_key_config key_cfg;
  mw::api_key_store api_keys;
  mw::rate_limit_config rl_cfg;
  mw::request_id_config rid_cfg = cfg->request_id.config();
  mw::cors_config cors_cfg;
  mw::compress_config compress_cfg;
  shared_state* shared;
  const obs::logger* log;
  rproxy::flow::options options;
  std::string alt_svc;  ///< `h3=":PORT"` with a quic: listener
};

/// Per connection: the gauge, the connection cap, and (when a route checks bans) the roster
/// that lets a new ban close the connections of the peers it covers.
inline auto connection_pipeline(world_base& w) {
  const bool bans = std::any_of(w.masks.begin(), w.masks.end(), [](std::uint32_t m) { return (m & bit_of("bans")) != 0; });
  return rproxy::make_pipeline<rproxy::flow::http1_protocol>(
      connection_gauge{w.connections_open, w.connections_accepted}, mw::conn_limit{&w.conn_cfg, &w.shared->conns, &w.shared->audit},
      mw::ban_kick{bans ? &w.shared->cluster.kicks : nullptr, &w.bans, &w.shared->cluster.bans.list(), &w.ban_cfg, &w.shared->audit});
}

inline auto request_pipeline(world_base& w, std::uint64_t seed, std::size_t worker) {
  auto* a = &w.shared->audit;
  auto on = [&w](std::string_view n) { return route_uses{&w.masks, bit_of(n)}; };
  std::vector<bal::any_balancer> bs;
  for (const auto& g : w.cfg->groups) bs.push_back(bal::any_balancer::make(g.balancer, seed));
  return rproxy::make_pipeline<rproxy::flow::http1_protocol>(
      obs::access_log_stage{w.cfg->access_log ? w.log : nullptr}, rproxy::health::retry_stage{route_retry{&w.retry_rules}},
      request_metrics{&w.requests, w.upstream_connections, w.requests_by_protocol}, alt_svc{&w.alt_svc}, mw::request_id{&w.rid_cfg},
      mw::cors{w.cfg->cors ? &w.cors_cfg : nullptr}, by_http_route{&w.table, {.seed = seed}}, rproxy::route::apply_http_route{},
      rproxy::gated{mw::ip_filter{&w.ip.rules, a, &w.ip.cfg}, on("ip_filter")},
      rproxy::gated{mw::ban_check{&w.bans, a, &w.ban_cfg, &w.shared->cluster.bans.list()}, on("bans")}, rproxy::gated{mw::jwt_auth{&w.jwt_cfg, &w.keys, a}, on("jwt")},
      rproxy::gated{mw::api_key_auth{&w.key_cfg, &w.api_keys, a}, on("api_keys")},
      rproxy::gated{require_auth{a}, route_uses{&w.masks, w.cfg->require_auth ? bit_of("jwt") | bit_of("api_keys") : 0}},
      rproxy::gated{mw::basic_rate_limit<rproxy::cluster::redis_counter_store>{&w.rl_cfg, &w.shared->cluster.links.limits(worker), a}, on("rate_limit")},
      rproxy::gated{mw::compress{w.cfg->compress ? &w.compress_cfg : nullptr}, on("compress")},
      bal::group_stage{w.pools, std::move(bs), route_group{&w.groups}, {.no_backend = "no backend available", .retry_after_s = w.cfg->retry_after, .breaker_open = "circuit breaker open"}},
      group_transport{&w.upstreams, route_group{&w.groups}});
}

struct world : world_base {
  using world_base::world_base;
  mutable std::vector<decltype(connection_pipeline(std::declval<world_base&>()))> connections;
  mutable std::vector<decltype(request_pipeline(std::declval<world_base&>(), 0, 0))> pipelines;
  mutable std::optional<rproxy::net::tls_server_context> tls;  ///< the `tls:` listener's certificates (listeners.hpp)
  std::optional<rproxy::net::quic::tls_credentials> quic_tls;   ///< the same certificates for QUIC (flows_h3.cpp)
};

int serve(runtime& rt);

}  // namespace h3_gateway
