// apps/mc-proxy/mc_proxy.hpp: what mc-proxy is made of besides library parts: per-server state
// kept across reloads (pool, status cache, wake-on-join), its metrics, and the stages only a
// Minecraft proxy has (status responder, per-server backend pick).
//
// Pipeline, in order (the flow driver with flow::mc_adapter runs it; serve.hpp composes it):
//   metrics      counts logins, pings, rejects, bytes, handshake latency (first: closes last)
//   conn_limit   open connections per IP                               (library, on_accept)
//   ban_check    bans by IP/CIDR (accept) and by username (hello)       (library)
//   rate_limit   per-IP "status" and "login" buckets, here or through redis: (library, on_hello)
//   extra...     a user's own stages (apps open to extension: docs/writing-an-app.md)
//   by_host      handshake host -> server (exact, wildcard, default)   (library, on_hello)
//   status_reply status pings and legacy pings from cache / backend / state text (library, on_route)
//   backend_pick the server's balancer over its pool, wake on join     (on_route, on_connect, on_close)
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <rproxy/app/listen.hpp>
#include <rproxy/app/mc_server_state.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/app/wake.hpp>
#include <rproxy/balance/flow_pick.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/cluster/instance.hpp>
#include <rproxy/cluster/redis_counter_store.hpp>
#include <rproxy/codec/mc/protocol.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/flow/mc.hpp>
#include <rproxy/flow/mc_server_list.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/by_host.hpp>

#include "config.hpp"

namespace rproxy::app {
class pools;  // app/pools.hpp (health.cpp and serve.hpp include it)
}

namespace mc_proxy {

namespace mc = rproxy::codec::mc;
namespace mw = rproxy::middleware;
namespace obs = rproxy::observe;
using clock = std::chrono::steady_clock;

/// A server's state kept across reloads besides its pool: status answers, wake on join.
using server_state = rproxy::app::mc_server_state;

/// app::update_mc_servers over a config's servers (pools by name, status-ping checks); compiled
/// in health.cpp, the one unit with the pools' monitors and the checker (heavy instantiations).
bool update_servers(rproxy::app::pools& pools, const config& c, std::map<std::string, std::shared_ptr<server_state>>& states);

struct families {
  obs::counter_family* logins = nullptr;
  obs::counter_family* pings = nullptr;
  obs::gauge_family* players = nullptr;
  obs::counter_family* bytes = nullptr;
  obs::callback_family* backend_up = nullptr;
  obs::histogram* handshake = nullptr;
  std::array<obs::counter*, static_cast<std::size_t>(rproxy::reject_code::internal) + 1> rejects_by{};  ///< by reject_code

  static families add_to(obs::registry& reg) {
    families f;
    f.logins = &reg.add_counter_family("mc_logins", "Logins relayed to a backend.", {"server"});
    f.pings = &reg.add_counter_family("mc_status_pings", "Status pings answered, by where the answer came from.", {"server", "source"});
    f.players = &reg.add_gauge_family("mc_players_online", "Players connected through the proxy.", {"server", "backend"});
    f.bytes = &reg.add_counter_family("mc_bytes", "Bytes relayed.", {"server", "direction"});
    f.backend_up = &reg.add_callback_gauge_family("mc_backend_up", "1 when the backend is in rotation.", {"server", "backend"});
    f.handshake = &reg.add_histogram("mc_handshake_seconds", "From accept to a complete hello (handshake + login or status request).",
                                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
    auto& rejects = reg.add_counter_family("mc_rejects", "Connections refused, by reason.", {"reason"});
    for (std::size_t c = 0; c < f.rejects_by.size(); ++c)
      f.rejects_by[c] = &rejects.with({rproxy::to_string(static_cast<rproxy::reject_code>(c))});
    return f;
  }
};

/// One server as one config version sees it.
struct server_view {
  const server_config* cfg = nullptr;
  std::shared_ptr<bal::upstream_pool> pool;
  std::shared_ptr<server_state> st;
  rproxy::flow::mc_server_list list;  ///< its server-list answers
  obs::counter* logins = nullptr;
  obs::counter* bytes_in = nullptr;
  obs::counter* bytes_out = nullptr;
  std::unordered_map<std::string, obs::gauge*> players;  ///< by backend id
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
  families* metrics = nullptr;
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

/// The refusal for a login that found no backend: wake the server when it sleeps.
inline rproxy::reject_reason wake_or_offline(const world_base& w, const server_view& sv) {
  const auto& sc = *sv.cfg;
  if (!sc.wake) return {rproxy::reject_code::unavailable, sc.messages.offline};
  switch (sv.st->wake.start(clock::now(), *sc.wake, *w.log, sc.name)) {
    case rproxy::app::wake_state::start_result::failed: return {rproxy::reject_code::unavailable, sc.messages.offline};
    case rproxy::app::wake_state::start_result::started: sv.st->status.clear(); break;
    default: break;
  }
  return {rproxy::reject_code::unavailable, sc.messages.starting};
}

/// Counts what happened to each flow, once, when it closes.
struct metrics_stage {
  const world_base* w = nullptr;
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    if (ctx.rejected) w->metrics->rejects_by[static_cast<std::size_t>(ctx.rejected->code)]->inc();
    if (ctx.hello_done != clock::time_point{}) w->metrics->handshake->observe(ctx.hello_done - ctx.started);
    if (const auto* sv = server_of(ctx)) {
      sv->bytes_in->inc(ctx.bytes_from_client);
      sv->bytes_out->inc(ctx.bytes_to_client);
    }
  }
};

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
    if (!h) return rproxy::reject(wake_or_offline(*w, sv));
    ctx.backend = (*h)->address().ep;
    ctx.proxy_out = (*h)->address().proxy;
    ctx.rewrite_host = sv.cfg->rewrite_host;
    ctx.keep_forwarding_data = sv.cfg->keep_forwarding_data;
    return rproxy::next;
  }

  template <class Ctx>
  rproxy::verdict on_connect(Ctx& ctx) {
    const server_view& sv = *server_of(ctx);
    sv.logins->inc();
    sv.st->wake.joined();
    sv.st->wake.reachable(clock::now());
    if (auto it = sv.players.find((*ctx.template state<backend_pick>().handle)->id()); it != sv.players.end()) {
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

/// Shared by every world: the connection counts, bans, rate-limit buckets and audit log.
struct shared_state {
  mw::conn_counter conns;
  mw::ban_list bans{{.fold_identity_case = true}};  // Minecraft names are case-insensitive
  rproxy::cluster::instance* cluster = nullptr;      ///< rate-limit counters and bans shared with other instances (redis:)
  mw::audit_log* audit = nullptr;
};

template <class... Extra>
auto make_mc_pipeline(const world_base* w, shared_state* s, std::uint64_t seed, std::size_t worker, Extra... extra) {
  std::vector<bal::any_balancer> bs;
  for (const auto& sv : w->servers) bs.push_back(bal::any_balancer::make(sv.cfg->balancer, seed));
  const auto* fallback = w->default_server ? &w->default_server : nullptr;
  return rproxy::make_pipeline<protocol>(
      metrics_stage{w}, mw::conn_limit{&w->conns, &s->conns, s->audit}, mw::ban_check{&s->bans, s->audit, &w->bans, &s->cluster->bans.list()},
      mw::basic_rate_limit<rproxy::cluster::redis_counter_store>{&w->rate, &s->cluster->links.limits(worker), s->audit}, std::move(extra)...,
      router{&w->hosts, {fallback, w->cfg->unknown_domain.action == unknown_action::default_server, w->cfg->unknown_domain.message}},
      rproxy::flow::mc_status_reply{[](const auto& ctx) { return &server_of(ctx)->list; }, w->cfg->limits.connect_timeout},
      backend_pick{w, std::move(bs)});
}

/// The pipeline of mc-proxy itself (no extra stages).
using default_pipeline = decltype(make_mc_pipeline(nullptr, nullptr, 0, 0));

/// One config version's world: its parts and a pipeline per worker (each used by its worker only).
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
