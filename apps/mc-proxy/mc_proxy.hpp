// apps/mc-proxy/mc_proxy.hpp: what mc-proxy is made of besides library parts: per-server state
// kept across reloads (pool, status cache, wake-on-join), its metrics, and the stages only a
// Minecraft proxy has (status responder, per-server backend pick).
//
// Pipeline, in order (the flow driver with flow::mc_adapter runs it; serve.hpp composes it):
//   metrics      rejects, bytes, handshake latency per flow (library: app/mc_metrics.hpp; first: closes last)
//   conn_limit   open connections per IP, for all instances with redis: (library, on_accept)
//   ban_check    bans by IP/CIDR (accept) and by username (hello)       (library)
//   ban_kick     a new ban ends the open flows it covers                (library)
//   rate_limit   per-IP "status" and "login" buckets, here or through redis: (library, on_hello)
//   extra...     a user's own stages (apps open to extension: docs/writing-an-app.md)
//   by_host      handshake host -> server (exact, wildcard, default)   (library, on_hello)
//   status_reply status pings and legacy pings from cache / backend / state text (library, on_route)
//   backend_pick the server's balancer over its pool, wake on join     (on_route, on_connect, on_close)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rproxy/app/listen.hpp>
#include <rproxy/app/mc_metrics.hpp>
#include <rproxy/app/mc_server_state.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/balance/flow_pick.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/cluster/shares.hpp>
#include <rproxy/codec/mc/protocol.hpp>
#include <rproxy/flow/mc.hpp>
#include <rproxy/flow/mc_server_list.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/by_host.hpp>

#include "config.hpp"
#include "health.hpp"

namespace mc_proxy {

namespace mc = rproxy::codec::mc;
namespace mw = rproxy::middleware;
namespace obs = rproxy::observe;
using clock = std::chrono::steady_clock;


/// One server as one config version sees it.
struct server_view {
  const server_config* cfg = nullptr;
  std::shared_ptr<bal::upstream_pool> pool;
  std::shared_ptr<server_state> st;
  rproxy::flow::mc_server_list list;  ///< its server-list answers
  rproxy::app::mc_metrics::server series;
};

/// Everything a flow needs from one config version; immutable once built.
struct world_base {
  std::shared_ptr<const config> cfg;
  std::vector<server_view> servers;
  rproxy::route::host_table<const server_view*> hosts;
  const server_view* default_server = nullptr;
  mw::rate_limit_config rate;
  mw::conn_limit_config conns;
  mw::ban_check_config bans;
  rproxy::flow::options options;
  const rproxy::app::mc_metrics* metrics = nullptr;
  const obs::logger* log = nullptr;
};

struct flow : mc::flow {
  obs::gauge* players = nullptr;  ///< the players-online gauge counting this flow, once joined
};
using protocol = mc::pipeline_protocol<flow>;
using router = rproxy::route::by_host<const server_view*>;

template <class Ctx>
const server_view* server_of(const Ctx& ctx) {
  const auto* t = ctx.template state<router>().target;
  return t ? *t : nullptr;
}

/// The server's balancer over its pool. A failed connect marks the server unreachable; a login
/// that finds no backend wakes a sleeping server. A joining player is counted on connect.
struct backend_pick {
  const world_base* w = nullptr;
  std::vector<bal::any_balancer> balancers;  ///< one per server of `w`, this worker's

  struct state : bal::flow_pick<bal::upstream_pool> {};

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    const server_view& sv = *server_of(ctx);
    if (ctx.connect_error) sv.st->wake.unreachable(clock::now(), sv.cfg->wake ? &*sv.cfg->wake : nullptr);
    auto& b = balancers[static_cast<std::size_t>(&sv - w->servers.data())];
    const auto* h = ctx.template state<backend_pick>().pick(*sv.pool, b, ctx.client.address(), ctx);
    if (!h) return rproxy::reject(sv.st->no_backend(*sv.cfg, *w->log));
    ctx.backend = (*h)->address().ep;
    ctx.proxy_out = (*h)->address().proxy;
    ctx.rewrite_host = sv.cfg->rewrite_host;
    ctx.keep_forwarding_data = sv.cfg->keep_forwarding_data;
    return rproxy::next;
  }

  template <class Ctx>
  rproxy::verdict on_connect(Ctx& ctx) {
    const server_view& sv = *server_of(ctx);
    sv.series.logins->inc();
    sv.st->joined();
    if (auto it = sv.series.players.find((*ctx.template state<backend_pick>().handle)->id()); it != sv.series.players.end()) {
      ctx.players = it->second;
      ctx.players->inc();
    }
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    ctx.template state<backend_pick>().finish(ec);
    if (!ctx.players) return;
    ctx.players->dec();
    server_of(ctx)->st->wake.left(clock::now());
  }
};

/// Shared by every world: the bans, what the flows use of the cluster instance (connection
/// counts, rate-limit buckets, shared bans; per worker) and the audit log.
struct shared_state {
  mw::ban_list bans{{.fold_identity_case = true}};  // Minecraft names are case-insensitive
  std::vector<rproxy::cluster::shares> cluster;      ///< by worker (shared with redis:; serve.hpp makes the instance)
  mw::audit_log* audit = nullptr;
};

template <class... Extra>
auto make_mc_pipeline(const world_base* w, shared_state* s, std::uint64_t seed, std::size_t worker, Extra... extra) {
  std::vector<bal::any_balancer> bs;
  for (const auto& sv : w->servers) bs.push_back(bal::any_balancer::make(sv.cfg->balancer, seed));
  const auto* fallback = w->default_server ? &w->default_server : nullptr;
  return rproxy::make_pipeline<protocol>(
      rproxy::app::mc_metrics_stage{w->metrics, [](const auto& ctx) { return server_of(ctx) ? &server_of(ctx)->series : nullptr; }},
      mw::shared_conn_limit{&w->conns, s->cluster[worker].conns, s->audit},
      mw::ban_check{&s->bans, s->audit, &w->bans, s->cluster[worker].bans},
      mw::ban_kick{s->cluster[worker].kicks, &s->bans, s->cluster[worker].bans, &w->bans, s->audit},
      mw::basic_rate_limit<mw::shared_counter_store>{&w->rate, s->cluster[worker].limits, s->audit}, std::move(extra)...,
      router{&w->hosts, {fallback, w->cfg->unknown_domain.action == unknown_action::default_server, w->cfg->unknown_domain.message}},
      rproxy::flow::mc_status_reply{[](const auto& ctx) { return &server_of(ctx)->list; }, w->cfg->limits.connect_timeout},
      backend_pick{w, std::move(bs)});
}

/// The pipeline of mc-proxy itself (no extra stages).
using default_pipeline = decltype(make_mc_pipeline(nullptr, nullptr, 0, 0));

/// One config version's world: its parts and a pipeline per worker (app::per_worker).
template <class Pipeline>
struct world : world_base {
  mutable std::vector<Pipeline> pipelines;
};

/// The players' listener over the current world. Every flow's code (the flow driver with the
/// Minecraft adapter over the pipeline) is instantiated under this call: mc-proxy compiles it
/// in a unit of its own (flows.cpp).
template <class Config, class Pipeline>
bool listen_players(rproxy::app::runtime<Config>& rt, const Config& c, rproxy::app::versions<world<Pipeline>>& worlds) {
  return rproxy::app::listen(rt, c.listen, "players", c.proxy_protocol, worlds.handler(rt.drain(), rproxy::flow::mc_adapter{}));
}

}  // namespace mc_proxy
