// apps/mc-proxy/mc_proxy.hpp: the parts of mc-proxy that are its own: per-server state kept
// across reloads (pool, status cache, wake-on-join), the stages only a Minecraft proxy has
// (host router, status responder, per-server backend pick), and `serve`, which composes them
// with the shared middleware into one pipeline per worker.
//
// Pipeline, in order:
//   metrics      counts logins, pings, rejects, bytes, handshake latency (first: closes last)
//   conn_limit   open connections per IP                               (middleware, on_accept)
//   ban_check    bans by IP/CIDR (accept) and by username (hello)       (middleware)
//   rate_limit   per-IP "status" and "login" buckets                   (middleware, on_hello)
//   host_router  handshake host -> server (exact, wildcard, default)   (on_hello)
//   status_reply status pings and legacy pings from cache / backend / state text (on_route)
//   backend_pick the server's balancer over its pool, wake on join     (on_route, on_close)
// The flow itself (read the hello, render refusals, connect with failover, replay, relay) is
// rproxy::net::serve_mc_flow.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <rproxy/app/command.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/balance/flow_pick.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/p2c_ewma.hpp>
#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/random.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/weighted_round_robin.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/protocol.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/health/mc_status_probe.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/mc_flow.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/host.hpp>

#include "config.hpp"

namespace mc_proxy {

namespace mc = rproxy::codec::mc;
namespace mw = rproxy::middleware;
namespace bal = rproxy::balance;
namespace obs = rproxy::observe;
using clock = std::chrono::steady_clock;
using runtime = rproxy::app::runtime<config>;

// ---- backends -----------------------------------------------------------------------------

/// A pool member: where it is and whether it wants a PROXY header.
struct backend_address {
  asio::ip::tcp::endpoint ep;
  rproxy::net::proxy_send proxy = rproxy::net::proxy_send::none;
  asio::ip::tcp::endpoint endpoint() const { return ep; }
  friend bool operator==(const backend_address&, const backend_address&) = default;
};
using pool_t = bal::basic_pool<backend_address>;

inline std::vector<pool_t::config_type> pool_config(const server_config& s) {
  std::vector<pool_t::config_type> out;
  for (const auto& b : s.backends)
    out.push_back({b.address.to_string(),
                   {{asio::ip::make_address(b.address.host), b.address.port}, b.send_proxy_protocol},
                   b.weight});
  return out;
}

/// One balancer chosen at run time; the pick is a switch, not a virtual call.
struct any_balancer {
  std::variant<bal::round_robin, bal::weighted_round_robin, bal::least_conn, bal::random, bal::p2c_ewma> b;
  template <class Key>
  std::optional<pool_t::handle_type> pick(const pool_t& pool, const Key& key) {
    return std::visit([&](auto& x) { return x.pick(pool, key); }, b);
  }
  static any_balancer make(balancer_kind k, std::uint64_t seed) {
    switch (k) {
      case balancer_kind::weighted_round_robin: return {bal::weighted_round_robin{}};
      case balancer_kind::least_conn: return {bal::least_conn{}};
      case balancer_kind::random: return {bal::random{seed}};
      case balancer_kind::lowest_latency: return {bal::p2c_ewma{}};
      default: return {bal::round_robin{}};
    }
  }
};

// ---- per-server state, kept across reloads -------------------------------------------------

/// What the server list shows when no fresh backend answer is at hand.
enum class power { online, offline, sleeping, starting };
constexpr std::string_view to_string(power p) {
  switch (p) {
    case power::online: return "online";
    case power::offline: return "offline";
    case power::sleeping: return "sleeping";
    case power::starting: return "starting";
  }
  return "offline";
}

class server_state {
public:
  explicit server_state(std::string name) : name_(std::move(name)), pool_(std::make_shared<pool_t>()) {}

  const std::string& name() const noexcept { return name_; }
  const std::shared_ptr<pool_t>& pool() const noexcept { return pool_; }

  // Status cache: one answer per server and client protocol version (a version-aware backend
  // answers each version its own way), reused for cache_ttl. While one flow refreshes an
  // answer, others keep using the stale one rather than all asking the backend at once.
  std::optional<std::string> cached(clock::time_point now, clock::duration ttl, std::int32_t protocol, bool& should_fetch) {
    std::lock_guard lock(mu_);
    should_fetch = false;
    status_entry& e = entry(protocol);
    if (!e.json.empty() && now - e.stored < ttl) return e.json;
    if (!e.fetching) {
      e.fetching = true;
      should_fetch = true;
      return std::nullopt;
    }
    if (!e.json.empty()) return e.json;
    should_fetch = true;  // nothing to show: ask as well
    return std::nullopt;
  }
  void fetched(std::int32_t protocol, std::optional<std::string> json, clock::time_point now) {
    std::lock_guard lock(mu_);
    status_entry& e = entry(protocol);
    e.fetching = false;
    if (json) {
      e.json = std::move(*json);
      e.stored = now;
    }
  }
  void forget_status() {
    std::lock_guard lock(mu_);
    status_.clear();
  }

  // Power state, for wake on join and the server list.
  void reachable(clock::time_point now) {
    std::lock_guard lock(mu_);
    if (power_ != power::online) idle_since_ = now;
    power_ = power::online;
  }
  /// A backend did not answer: the state shown until one does.
  power unreachable(clock::time_point now, const server_config& sc) {
    std::lock_guard lock(mu_);
    if (!(power_ == power::starting && sc.wake && now - since_ < sc.wake->start_timeout))
      power_ = sc.wake ? power::sleeping : power::offline;
    return power_;
  }
  power shown(clock::time_point now, const server_config& sc) {
    std::lock_guard lock(mu_);
    if (power_ == power::starting && sc.wake && now - since_ >= sc.wake->start_timeout) power_ = power::sleeping;
    return power_;
  }
  /// True for the one caller that should run the start command now.
  bool begin_start(clock::time_point now, const wake_config& w) {
    std::lock_guard lock(mu_);
    if (power_ == power::starting && now - since_ < w.start_timeout) return false;
    power_ = power::starting;
    since_ = now;
    return true;
  }
  /// True (once) when the server has been online with no players for idle_timeout.
  bool should_stop(clock::time_point now, const wake_config& w) {
    std::lock_guard lock(mu_);
    if (power_ != power::online || players_.load() != 0 || now - idle_since_ < w.idle_timeout) return false;
    power_ = power::sleeping;
    status_.clear();
    return true;
  }

  void player_joined() { players_.fetch_add(1); }
  void player_left(clock::time_point now) {
    if (players_.fetch_sub(1) == 1) {
      std::lock_guard lock(mu_);
      idle_since_ = now;
    }
  }
  int players() const noexcept { return players_.load(); }

private:
  struct status_entry {
    std::int32_t protocol = 0;
    std::string json;
    clock::time_point stored{};
    bool fetching = false;
  };
  /// The entry for a protocol; at most max_status_entries, the oldest answer makes room.
  status_entry& entry(std::int32_t protocol) {
    static constexpr std::size_t max_status_entries = 32;
    for (auto& e : status_)
      if (e.protocol == protocol) return e;
    if (status_.size() >= max_status_entries) {
      auto oldest = std::min_element(status_.begin(), status_.end(), [](const auto& a, const auto& b) { return a.stored < b.stored; });
      *oldest = status_entry{};
      oldest->protocol = protocol;
      return *oldest;
    }
    auto& e = status_.emplace_back();
    e.protocol = protocol;
    return e;
  }

  std::string name_;
  std::shared_ptr<pool_t> pool_;
  std::mutex mu_;
  std::vector<status_entry> status_;
  power power_ = power::online;
  clock::time_point since_{};
  clock::time_point idle_since_ = clock::now();
  std::atomic<int> players_{0};
};

// ---- metrics ----------------------------------------------------------------------------

struct families {
  obs::counter_family* logins = nullptr;
  obs::counter_family* pings = nullptr;
  obs::gauge_family* players = nullptr;
  obs::counter_family* rejects = nullptr;
  obs::counter_family* bytes = nullptr;
  obs::callback_family* backend_up = nullptr;
  obs::histogram* handshake = nullptr;
  std::array<obs::counter*, 10> rejects_by{};

  static families add_to(obs::registry& reg) {
    families f;
    f.logins = &reg.add_counter_family("mc_logins", "Logins relayed to a backend.", {"server"});
    f.pings = &reg.add_counter_family("mc_status_pings", "Status pings answered, by where the answer came from.",
                                      {"server", "source"});
    f.players = &reg.add_gauge_family("mc_players_online", "Players connected through the proxy.", {"server", "backend"});
    f.rejects = &reg.add_counter_family("mc_rejects", "Connections refused, by reason.", {"reason"});
    f.bytes = &reg.add_counter_family("mc_bytes", "Bytes relayed.", {"server", "direction"});
    f.backend_up = &reg.add_callback_gauge_family("mc_backend_up", "1 when the backend is in rotation.", {"server", "backend"});
    f.handshake = &reg.add_histogram("mc_handshake_seconds", "From accept to a complete hello (handshake + login or status request).",
                                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
    for (std::size_t c = 0; c < f.rejects_by.size(); ++c)
      f.rejects_by[c] = &f.rejects->with({rproxy::to_string(static_cast<rproxy::reject_code>(c))});
    return f;
  }
};

// ---- one config version: servers, host table, middleware settings -------------------------

enum class ping_source : std::size_t { cache, backend, offline, sleeping, starting, count };

struct server_view {
  const server_config* cfg = nullptr;
  std::shared_ptr<server_state> st;
  std::array<std::string, 4> state_json;  ///< status JSON per power (online unused)
  std::string online_favicon;             ///< status.online.favicon, encoded, or ""

  std::array<obs::counter*, static_cast<std::size_t>(ping_source::count)> pings{};
  obs::counter* logins = nullptr;
  obs::counter* bytes_in = nullptr;
  obs::counter* bytes_out = nullptr;
  std::unordered_map<std::string, obs::gauge*> players;  ///< by backend id
};

/// Everything a flow needs from one config version; immutable once built. Flows keep the
/// version they started with.
struct world_base {
  std::shared_ptr<const config> cfg;
  std::vector<server_view> servers;
  rproxy::route::host_table<std::size_t> hosts;
  const server_view* default_server = nullptr;
  mw::rate_limit_config rate;
  mw::conn_limit_config conns;
  mw::ban_check_config bans;
  std::vector<mw::cidr> trusted;
  rproxy::net::mc_options options;
  families* metrics = nullptr;
  const obs::logger* log = nullptr;
  std::string config_dir;
};

/// The flow context's own fields: the server chosen for it.
struct flow : mc::flow {
  const server_view* server = nullptr;
  obs::gauge* players = nullptr;  ///< the players-online gauge counting this flow, once joined
};
using protocol = mc::pipeline_protocol<flow>;

/// The refusal for a login that found no backend: wake the server when it sleeps.
inline rproxy::reject_reason wake_or_offline(const world_base& w, const server_view& sv) {
  const auto& sc = *sv.cfg;
  if (!sc.wake) return {rproxy::reject_code::unavailable, sc.messages.offline};
  if (sv.st->begin_start(clock::now(), *sc.wake)) {
    sv.st->forget_status();
    rproxy::app::command_options o;
    if (!sc.wake->log_file.empty()) o.log_file = sc.wake->log_file;
    if (auto r = rproxy::app::spawn_command(sc.wake->start_command, o); !r) {
      w.log->error("wake: start command failed", {{"server", sc.name}, {"error", r.error().message()}});
      return {rproxy::reject_code::unavailable, sc.messages.offline};
    }
    w.log->info("wake: starting server for a joining player", {{"server", sc.name}});
  }
  return {rproxy::reject_code::unavailable, sc.messages.starting};
}

// ---- the stages of mc-proxy --------------------------------------------------------------

/// Counts what happened to each flow, once, when it closes.
struct metrics_stage {
  const world_base* w = nullptr;
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    auto& m = *w->metrics;
    if (ctx.rejected) m.rejects_by[static_cast<std::size_t>(ctx.rejected->code)]->inc();
    if (ctx.hello_done != clock::time_point{}) m.handshake->observe(ctx.hello_done - ctx.started);
    if (ctx.server) {
      ctx.server->bytes_in->inc(ctx.bytes_from_client);
      ctx.server->bytes_out->inc(ctx.bytes_to_client);
      if (ctx.joined) ctx.server->st->player_left(clock::now());
    }
    if (ctx.players) ctx.players->dec();
  }
};

/// Handshake host -> server: exact names, wildcards, then the default server or a kick.
struct host_router {
  const world_base* w = nullptr;
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const mc::hello&) {
    const server_view* sv = nullptr;
    if (const std::size_t* i = w->hosts.find(ctx.host)) sv = &w->servers[*i];
    else if (w->default_server && (w->cfg->unknown_domain.action == unknown_action::default_server || (ctx.legacy && ctx.host.empty())))
      sv = w->default_server;
    if (!sv) return rproxy::reject(rproxy::reject_code::not_found, w->cfg->unknown_domain.message);
    ctx.server = sv;
    ctx.route = sv->cfg->name;
    return rproxy::next;
  }
};

/// Answers status and legacy pings itself: from the cache, else from a backend (which refills
/// the cache), else with the text for the server's state (offline, sleeping, starting).
struct status_reply {
  const world_base* w = nullptr;

  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_route(Ctx& ctx) {
    if (!ctx.legacy && ctx.next != mc::intent::status) co_return rproxy::next;
    const server_view& sv = *ctx.server;
    const auto& sc = *sv.cfg;
    const auto now = clock::now();
    bool fetch = false;
    auto json = sv.st->cached(now, sc.status.cache_ttl, ctx.protocol, fetch);
    ping_source src = ping_source::cache;
    if (!json && fetch) {
      json = co_await ask_backend(ctx, sv);
      sv.st->fetched(ctx.protocol, json, clock::now());
      src = ping_source::backend;
    }
    if (!json) {
      const power p = sv.st->unreachable(clock::now(), sc);
      src = p == power::starting ? ping_source::starting : p == power::sleeping ? ping_source::sleeping : ping_source::offline;
      json = sv.state_json[static_cast<std::size_t>(p)];
    }
    sv.pings[static_cast<std::size_t>(src)]->inc();
    ctx.reply.clear();
    if (ctx.legacy) ctx.reply = mc::make_legacy_kick(*ctx.legacy, legacy_of(*json));
    else mc::append_status_response(ctx.reply, *json);
    co_return rproxy::replied;
  }

private:
  template <class Ctx>
  asio::awaitable<std::optional<std::string>> ask_backend(const Ctx& ctx, const server_view& sv) {
    auto ex = co_await asio::this_coro::executor;
    auto snap = sv.st->pool()->snapshot();
    unsigned tried = 0;
    for (const auto& bp : snap->backends) {
      if (tried == 2) break;
      auto& b = *bp;
      if (b.state() != bal::backend_state::healthy) continue;
      ++tried;
      rproxy::health::mc_status_query q;
      q.host = sv.cfg->rewrite_host.empty() ? ctx.host : sv.cfg->rewrite_host;
      q.port = ctx.local.port();
      if (ctx.protocol > 0) q.protocol = ctx.protocol;
      if (b.address().proxy != rproxy::net::proxy_send::none)
        q.prefix = rproxy::net::detail::proxy_header_out(b.address().proxy, ctx.client, ctx.local);
      auto r = co_await rproxy::health::fetch_mc_status(ex, b.address().ep, std::move(q), w->cfg->limits.connect_timeout);
      if (!r) continue;
      b.observe_latency(r->latency);
      sv.st->reachable(clock::now());
      co_return with_overrides(sv, std::move(r->json));
    }
    co_return std::nullopt;
  }

  /// The backend's answer with status.online's non-empty fields put in.
  static std::string with_overrides(const server_view& sv, std::string json) {
    const auto& on = sv.cfg->status.online;
    if (on.motd.empty() && on.version_name.empty() && sv.online_favicon.empty()) return json;
    auto s = mc::parse_status_json(json);
    if (!s) return json;
    if (!on.motd.empty()) s->description = on.motd.starts_with('{') ? on.motd : mc::text_component(on.motd);
    if (!on.version_name.empty()) s->version_name = on.version_name;
    if (!sv.online_favicon.empty()) s->favicon = sv.online_favicon;
    return mc::to_json(*s);
  }

  static mc::legacy_status legacy_of(const std::string& json) {
    mc::legacy_status l;
    if (auto s = mc::parse_status_json(json)) {
      l.protocol = s->protocol;
      l.version_name = s->version_name;
      l.motd = mc::plain_text(s->description);
      if (s->players) {
        l.online = s->players->online;
        l.max = s->players->max;
      }
    }
    return l;
  }
};

/// The server's balancer over its pool; a login that finds no backend wakes a sleeping server.
struct backend_pick {
  const world_base* w = nullptr;
  std::vector<any_balancer> balancers;  ///< one per server of `w`, this worker's

  struct state : bal::flow_pick<pool_t> {};

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    const server_view& sv = *ctx.server;
    auto& b = balancers[static_cast<std::size_t>(&sv - w->servers.data())];
    const auto* h = ctx.template state<backend_pick>().pick(*sv.st->pool(), b, ctx.client.address(), ctx.connect_error);
    if (!h) return rproxy::reject(wake_or_offline(*w, sv));
    const auto& addr = (*h)->address();
    ctx.backend = addr.ep;
    ctx.proxy_out = addr.proxy;
    ctx.rewrite_host = sv.cfg->rewrite_host;
    ctx.keep_forwarding_data = sv.cfg->keep_forwarding_data;
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    ctx.template state<backend_pick>().finish(ec);
  }
};

/// What serve_mc_flow asks the app: the kick for an unreachable server, and a player joining.
struct flow_hooks {
  const world_base* w = nullptr;
  template <class Ctx>
  rproxy::reject_reason connect_failed(Ctx& ctx, std::error_code) {
    if (!ctx.server) return {rproxy::reject_code::unavailable, {}};
    ctx.server->st->unreachable(clock::now(), *ctx.server->cfg);
    return wake_or_offline(*w, *ctx.server);
  }
  template <class Ctx>
  void joined(Ctx& ctx) {
    const server_view& sv = *ctx.server;
    sv.logins->inc();
    sv.st->player_joined();
    sv.st->reachable(clock::now());
    const auto& id = (*ctx.template state<backend_pick>().handle)->id();
    if (auto it = sv.players.find(id); it != sv.players.end()) {
      ctx.players = it->second;
      ctx.players->inc();
    }
  }
};

inline auto make_mc_pipeline(const world_base* w, mw::conn_counter* conns, const mw::ban_list* bans,
                             mw::local_counter_store* store, mw::audit_log* audit, std::uint64_t seed) {
  std::vector<any_balancer> bs;
  for (const auto& s : w->servers) bs.push_back(any_balancer::make(s.cfg->balancer, seed));
  return rproxy::make_pipeline<protocol>(metrics_stage{w}, mw::conn_limit{&w->conns, conns, audit},
                                         mw::ban_check{bans, audit, &w->bans}, mw::rate_limit{&w->rate, store, audit},
                                         host_router{w}, status_reply{w}, backend_pick{w, std::move(bs)});
}
using pipeline_t = decltype(make_mc_pipeline(nullptr, nullptr, nullptr, nullptr, nullptr, 0));

struct world : world_base {
  mutable std::vector<pipeline_t> pipelines;  ///< one per worker (each used by its worker only)
};

}  // namespace mc_proxy
