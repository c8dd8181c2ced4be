// apps/ws-server/server.hpp: the WebSocket room server made of rproxy parts. One process-wide
// room registry and connection hub; a world per config version (security stages' config, a
// pipeline per worker); each connection keeps the world it started with, except for what a
// reload must change for every operation: the per-message rate limits and the rooms limits,
// read per message from versioned holders (config/versioned.hpp).
//
// Pipeline, in order:
//   reject_metrics           rejections by reason (on_close)
//   ip_filter, conn_limit    on accept (conn_limit's per-IP cap for all instances with redis:)
//   rate limit "connect"     on accept, per ip
//   cors (enforced)          the Origin allow-list, at the upgrade (CSRF from other sites' pages)
//   jwt_auth                 the token (header, cookie or ?token=) -> user and role
//   ban_check, ban_kick      bans (admin API, other instances); a new ban closes open connections (1008)
//   rate limits              per operation: message, join, private_message, invalid (the current ones)
//   rooms::stage             names the user at the upgrade, runs each request
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>

#include <rproxy/admin/bans_api.hpp>
#include <rproxy/app/cluster.hpp>
#include <rproxy/app/every.hpp>
#include <rproxy/app/listen.hpp>
#include <rproxy/app/restart_only.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/tls_block.hpp>
#include <rproxy/app/tls_listen.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/cluster/shares.hpp>
#include <rproxy/config/versioned.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/flow/drain.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/ws.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/middleware/audit_block.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/cors.hpp>
#include <rproxy/middleware/ip_filter.hpp>
#include <rproxy/middleware/jwt_auth.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/net/pool_executors.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/observe/worker_index.hpp>
#include <rproxy/rooms/redis_rooms.hpp>
#include <rproxy/rooms/registry.hpp>
#include <rproxy/rooms/stage.hpp>
#include <rproxy/rooms/ws_decoder.hpp>

#include "config.hpp"

namespace ws_server {

namespace obs = rproxy::observe;
namespace flow = rproxy::flow;
namespace rooms = rproxy::rooms;
using runtime = rproxy::app::runtime<config>;
using protocol = flow::ws_protocol<rooms::ws_request>;
using adapter = flow::ws_adapter<rooms::ws_decoder>;

struct connect_tag {};
struct message_tag {};
struct join_tag {};
struct private_message_tag {};
struct invalid_tag {};
template <class Tag>
using rate_limit = mw::basic_rate_limit<mw::local_counter_store, Tag>;

/// Counts each refused connection or message by reason.
struct reject_metrics {
  obs::counter_family* by_reason = nullptr;
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    if (ctx.rejected) by_reason->with({std::string(rproxy::to_string(ctx.rejected->code))}).inc();
  }
};

/// One rate limit from its block (absent: a config with no rule, the stage passes everything).
inline mw::rate_limit_config limit_of(const std::optional<mw::rate_limit_block>& b, std::string_view op, bool on_accept = false) {
  mw::rate_limit_config c;
  if (b) c = b->config(op);
  c.hello_operation.clear();
  if (on_accept) c.accept_operation = std::string(op);
  return c;
}

/// The rate limits counted per message: a reload replaces them for the next message of every
/// connection (the `connect` limit is counted at accept, by the new connections' world).
struct message_limits {
  mw::rate_limit_config message, join, private_message, invalid;
  static message_limits of(const config& c) {
    return {limit_of(c.rate_limits.message, "message"), limit_of(c.rate_limits.join, "join"),
            limit_of(c.rate_limits.private_message, "private_message"), limit_of(c.rate_limits.invalid, "invalid")};
  }
};

/// The rate limit of one operation, with the current message_limits (one atomic load per message).
/// A WebSocket flow renders no rate-limit headers: it keeps no state (count_message).
template <class Tag, mw::rate_limit_config message_limits::*Which>
struct live_rate_limit {
  using inner = rate_limit<Tag>;
  const rproxy::config::versioned<message_limits>* limits = nullptr;
  mw::local_counter_store* store = nullptr;
  mw::audit_log* audit = nullptr;

  template <class Ctx, class Msg>
  rproxy::verdict on_message(Ctx& ctx, const Msg& m) {
    return inner{&(limits->get().*Which), store, audit}.count_message(ctx, m);
  }
};

/// The `connect` limit, counted at accept, with no state either (count_accept).
struct connect_rate_limit {
  rate_limit<connect_tag> inner;
  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    return inner.count_accept(ctx);
  }
};

/// What lives as long as the process: the rooms, the connections, counters, the audit log.
struct shared_state {
  shared_state(runtime& rt, const config& c)
      : sink(&rt.log(), c.audit.file), audit(c.audit.make(sink)), limits(message_limits::of(c)), reg(c.rooms), hub(rproxy::net::executors_of(rt.pool())) {}
  mw::audit_file sink;
  mw::audit_log audit;
  mw::local_counter_store counters{{.max_keys = 1u << 20}};
  rproxy::config::versioned<message_limits> limits;
  rooms::registry reg;
  flow::ws_hub hub;
  /// Bans made on any instance, the roster of open connections a new ban closes (1008), connection counts.
  std::unique_ptr<rproxy::cluster::instance> cluster;
  std::vector<rproxy::cluster::shares> shares;  ///< by worker: what its flows use of `cluster`
  std::optional<rooms::redis_rooms> spread;  ///< rooms across instances (with a redis: block)
  flow::ws_stats stats;
  obs::counter_family* rejections = nullptr;
  obs::counter_family* tls_failures = nullptr;  ///< TLS handshakes that failed, by reason
};

/// One config version: what the stages point at.
struct world_base {
  world_base(runtime& rt, std::shared_ptr<const config> c, shared_state& s)
      : cfg(std::move(c)), ip(cfg->ip_filter.build()), keys(cfg->jwt ? cfg->jwt->key_sources() : std::vector<mw::key_source>{}),
        shared(&s), log(&rt.log()) {
    if (cfg->jwt) jwt_cfg = cfg->jwt->config({"role"});
    else jwt_cfg.sources.clear();  // no token is looked for
    jwt_cfg.optional = cfg->anonymous;  // without a token: the rooms stage's ?user= (anonymous) or 401
    cors_cfg.allow_origins = cfg->allowed_origins;
    cors_cfg.enforce = true;
    connect_cfg = limit_of(cfg->rate_limits.connect, "connect", true);
  }

  /// Loads the JWT keys; false: they are bad (logged).
  bool load() {
    if (!cfg->jwt) return true;
    if (auto r = keys.reload(); !r) {
      log->error("cannot load", {{"what", "jwt keys"}, {"error", r.error().message()}});
      return false;
    }
    return true;
  }

  std::shared_ptr<const config> cfg;
  mw::ip_filter_block::built ip;
  mw::conn_limit_config conn_cfg = cfg->conn_limit.config();
  mw::key_store keys;
  mw::jwt_auth_config jwt_cfg;
  mw::cors_config cors_cfg;
  mw::rate_limit_config connect_cfg;
  shared_state* shared;
  const obs::logger* log;
  flow::options options;
};

inline auto pipeline(world_base& w, std::size_t worker) {
  auto* a = &w.shared->audit;
  auto* st = &w.shared->counters;
  const auto* l = &w.shared->limits;
  return rproxy::make_pipeline<protocol>(
      reject_metrics{w.shared->rejections}, mw::ip_filter{&w.ip.rules, a, &w.ip.cfg},
      mw::shared_conn_limit{&w.conn_cfg, w.shared->shares[worker].conns, a},
      connect_rate_limit{{&w.connect_cfg, st, a}}, mw::cors{w.cfg->allowed_origins.empty() ? nullptr : &w.cors_cfg},
      mw::jwt_auth{&w.jwt_cfg, &w.keys, a}, mw::ban_check{w.shared->shares[worker].bans, a},
      mw::ban_kick{w.shared->shares[worker].kicks, nullptr, w.shared->shares[worker].bans, nullptr, a},
      live_rate_limit<message_tag, &message_limits::message>{l, st, a},
      live_rate_limit<join_tag, &message_limits::join>{l, st, a},
      live_rate_limit<private_message_tag, &message_limits::private_message>{l, st, a},
      live_rate_limit<invalid_tag, &message_limits::invalid>{l, st, a},
      rooms::basic_stage<rooms::redis_rooms::bridge>{&w.shared->reg, &w.shared->hub, {.anonymous = w.cfg->anonymous},
                                                     w.shared->spread ? &w.shared->spread->get() : nullptr});
}

struct world : world_base {
  using world_base::world_base;
  mutable std::vector<decltype(pipeline(std::declval<world_base&>(), 0))> pipelines;
  mutable std::optional<rproxy::net::tls_server_context> tls;  ///< the `tls:` listener's certificates
  adapter a{};  ///< this config's websocket block; its connections point to it (the world outlives them)
};

/// What a connection keeps for its life: its world (pipelines, adapter, options) and its drain count.
struct keep_world {
  std::shared_ptr<const world> w;
  rproxy::flow::drain_tracker::guard guard;
  void operator()(const std::error_code&) const noexcept {}
};

/// A ws connection: the current world's flow, spawned (no coroutine frame once upgraded).
/// Defined in flows.cpp, the one unit that instantiates the flow driver over the pipeline.
void serve_plain(std::shared_ptr<const world> w, asio::ip::tcp::socket s, const rproxy::net::accepted_endpoints& eps,
                 rproxy::flow::drain_tracker::guard g);

/// A wss connection: the handshake within the hello timeout (app/tls_listen.hpp, the gateway's
/// TLS start too), then the same flow as ws (flow/ws.hpp runs a TLS stream's session as a
/// coroutine). It keeps its world. Defined in flows_tls.cpp.
asio::awaitable<void> serve_tls(std::shared_ptr<const world> w, asio::ip::tcp::socket s, rproxy::net::accepted_endpoints eps,
                                rproxy::flow::drain_tracker::guard g);

}  // namespace ws_server
