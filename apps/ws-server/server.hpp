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
#include <rproxy/cluster/redis_conn_slots.hpp>
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

#include "chat_page.hpp"  // made by CMake from chat.html
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
      rproxy::cluster::shared_conn_limit{&w.conn_cfg, &w.shared->cluster->conn_slots(worker), a},
      connect_rate_limit{{&w.connect_cfg, st, a}}, mw::cors{w.cfg->allowed_origins.empty() ? nullptr : &w.cors_cfg},
      mw::jwt_auth{&w.jwt_cfg, &w.keys, a}, mw::ban_check{&w.shared->cluster->bans.list(), a},
      mw::ban_kick{&w.shared->cluster->kicks, nullptr, &w.shared->cluster->bans.list(), nullptr, a},
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
inline void serve_plain(std::shared_ptr<const world> w, asio::ip::tcp::socket s, const rproxy::net::accepted_endpoints& eps,
                        rproxy::flow::drain_tracker::guard g) {
  auto& p = w->pipelines[rproxy::observe::worker_index() % w->pipelines.size()];
  const auto& a = w->a;
  const auto& o = w->options;
  flow::spawn(p, std::cref(a), std::move(s), o, eps, keep_world{std::move(w), std::move(g)});
}

/// A wss connection: the handshake within the hello timeout (app/tls_listen.hpp, the gateway's
/// TLS start too), then the same flow as ws (flow/ws.hpp runs a TLS stream's session as a
/// coroutine). It keeps its world.
inline asio::awaitable<void> serve_tls(std::shared_ptr<const world> w, asio::ip::tcp::socket s,
                                       rproxy::net::accepted_endpoints eps, rproxy::flow::drain_tracker::guard) {
  if (!w->tls) co_return;
  auto tls = co_await rproxy::app::accept_tls(std::move(s), w->tls->context(), w->options, eps);
  if (!tls) {  // a client that does not trust the certificate, a port probe, a slow one, not TLS at all
    if (auto* f = w->shared->tls_failures) f->with({std::string(tls.error().reason())}).inc();
    co_return;
  }
  const auto i = rproxy::observe::worker_index() % w->pipelines.size();
  (void)co_await flow::serve(w->pipelines[i], w->a, std::move(*tls), w->options, eps);
}

/// The server: its shared state, worlds and metrics.
struct server {
  explicit server(runtime& r) : rt(r), first(r.config().get()), shared(r, *first) {}

  std::shared_ptr<const world> build(const std::shared_ptr<const config>& c) {
    auto w = std::make_shared<world>(rt, c, shared);
    if (!w->load()) return nullptr;
    for (std::size_t i = 0; i < rt.pool().size(); ++i) w->pipelines.push_back(pipeline(*w, i));
    if (c->tls) {  // certificates are read again on every reload
      auto t = rproxy::app::load_tls(*c->tls, {"http/1.1"});
      if (!t) return rt.log().error("cannot load TLS certificates", {{"error", t.error().message}}), nullptr;
      w->tls.emplace(std::move(*t));
    }
    c->websocket.apply(w->a, w->options);  // connections accepted from now on
    w->a.decoder.limits = &shared.reg.limits();
    w->a.hub = &shared.hub;
    w->a.stats = &shared.stats;
    if (c->chat_page) w->a.page = chat_page;
    return w;
  }

  void add_metrics() {
    auto& m = rt.metrics();
    auto& st = shared.stats;
    auto counter = [&](const char* name, const char* help, std::atomic<std::uint64_t>& v) {
      m.add_callback_counter(name, help, [&v] { return static_cast<double>(v.load(std::memory_order_relaxed)); });
    };
    m.add_callback_gauge("ws_connections", "Open WebSocket connections (after the upgrade).",
                         [&st] { return static_cast<double>(st.open.load(std::memory_order_relaxed)); });
    m.add_callback_gauge("ws_rooms", "Rooms open.", [this] { return static_cast<double>(shared.reg.room_count()); });
    counter("ws_upgrades_total", "Upgrades accepted (101).", st.upgrades);
    counter("ws_handshake_failures_total", "Upgrade requests refused as malformed (400, 426, 431) or too slow (408).", st.handshake_failures);
    counter("ws_silent_connections_total", "Connections that ended before sending a byte (port probes); not handshake failures.", st.silent);
    counter("ws_pages_total", "Chat pages served.", st.pages);
    counter("ws_messages_in_total", "Messages received.", st.messages_in);
    counter("ws_bytes_in_total", "Bytes received after the upgrade.", st.bytes_in);
    counter("ws_messages_out_total", "Messages written.", st.messages_out);
    counter("ws_bytes_out_total", "Bytes written after the upgrade (frames).", st.bytes_out);
    counter("ws_protocol_errors_total", "Connections closed for a protocol error (1002, 1007, 1009).", st.protocol_errors);
    counter("ws_idle_closes_total", "Connections closed for idleness (no pong).", st.idle_closes);
    auto& drops = m.add_callback_counter_family("ws_send_dropped_total", "Messages not delivered to a slow consumer, by policy.", {"policy"});
    drops.with({"drop_oldest"}, [&st] { return static_cast<double>(st.dropped_oldest.load(std::memory_order_relaxed)); });
    drops.with({"drop_newest"}, [&st] { return static_cast<double>(st.dropped_newest.load(std::memory_order_relaxed)); });
    drops.with({"close"}, [&st] { return static_cast<double>(st.closed_slow.load(std::memory_order_relaxed)); });
    drops.with({"over_limit"}, [&st] { return static_cast<double>(st.dropped_over_limit.load(std::memory_order_relaxed)); });
    shared.hub.set_fanout_latency(&m.add_histogram(
        "ws_fanout_latency_seconds", "From a delivery (room message, event) to its frame on the last recipient's send queue.",
        {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5}));
    shared.rejections = &m.add_counter_family("ws_rejections_total", "Connections and messages refused, by reason.", {"reason"});
    shared.tls_failures = &m.add_counter_family("ws_tls_handshake_failures_total",
                                                "TLS handshakes (wss) that failed, by reason (net/tls_failure.hpp).", {"reason"});
  }

  runtime& rt;
  std::shared_ptr<const config> first;
  shared_state shared;
};

inline int serve(runtime& rt) {
  auto s = std::make_shared<server>(rt);
  rt.keep(s);
  const auto c = s->first;
  if (!s->shared.sink.ok()) return rt.log().error("cannot open the audit file", {{"file", c->audit.file}}), 1;
  s->add_metrics();
  s->shared.cluster = rproxy::app::open_cluster(rt, c->redis, {.policy = "rooms served by this instance alone", .kicks_metric = "ws_ban_kicks"});
  if (!s->shared.cluster) return 1;
  if (c->redis) {
    s->shared.spread.emplace(s->shared.cluster->links, rt.pool(), s->shared.reg, s->shared.hub, c->cluster.options(c->redis->key_prefix), rt.log());
    rt.log().info("rooms shared through redis", {{"address", c->redis->address.host + ":" + std::to_string(c->redis->address.port)}});
  }
  auto first = s->build(c);
  if (!first) return 1;
  auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
  rt.keep(worlds);
  auto plain = [worlds, &drain = rt.drain()](asio::ip::tcp::socket sock, const rproxy::net::accepted_endpoints& eps) {
    serve_plain(worlds->current(), std::move(sock), eps, drain.track());
  };
  if (const auto ep = c->plain_listen(); ep && !rproxy::app::listen(rt, *ep, "websocket", plain)) return 1;
  if (c->tls) {
    auto secure = [s, worlds, &drain = rt.drain()](asio::ip::tcp::socket sock, const rproxy::net::accepted_endpoints& eps) {
      auto ex = sock.get_executor();
      asio::co_spawn(ex, serve_tls(worlds->current(), std::move(sock), eps, drain.track()), asio::detached);
    };
    if (!rproxy::app::listen(rt, c->tls->listen, "websocket-tls", secure)) return 1;
  }
  rproxy::app::every(rt, std::chrono::seconds(10), [s] { s->shared.reg.sweep(std::chrono::system_clock::now()); });
  s->shared.cluster->start();
  if (s->shared.spread) s->shared.spread->start();
  rt.on_admin([s](rproxy::admin::server& a) { rproxy::admin::mount_bans_api(a, s->shared.cluster->bans); });  // GET/POST/DELETE /bans
  rt.on_stop_accepting([s] {
    if (s->shared.spread) s->shared.spread->stop();
    s->shared.hub.close_all(rproxy::codec::ws::close_code::going_away, "server shutting down");
  });
  rt.on_reload([s, worlds](const std::shared_ptr<const config>& next) {
    auto w = s->build(next);
    if (!w) return s->rt.log().error("config not applied; the previous one keeps serving");
    worlds->swap(std::move(w));
    s->shared.limits.set(message_limits::of(*next));  // the next message of every connection
    s->shared.reg.set_config(next->rooms);             // the next rooms operation
    s->rt.log().info("settings updated: security and rate limits, rooms limits (every connection); websocket, TLS certificates "
                     "(connections accepted from now on)");
  });
  return 0;
}

}  // namespace ws_server
