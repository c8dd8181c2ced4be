// apps/ws-server/serve.cpp: the server's composition (serve, declared in config.hpp): its state
// kept for the process (rooms, connections, counters, the Redis link), a world per config
// version, listeners, admin API and reloads. Its flows are compiled in flows.cpp and
// flows_tls.cpp, its config decoder in config.cpp.
#include <chrono>
#include <memory>
#include <string>

#include <rproxy/app/ws_metrics.hpp>

#include "chat_page.hpp"  // made by CMake from chat.html
#include "server.hpp"

namespace ws_server {

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
    rproxy::app::add_ws_metrics(m, shared.stats, shared.hub);  // connections, messages, bytes, drops, fan-out latency
    m.add_callback_gauge("ws_rooms", "Rooms open.", [this] { return static_cast<double>(shared.reg.room_count()); });
    shared.rejections = &m.add_counter_family("ws_rejections_total", "Connections and messages refused, by reason.", {"reason"});
    shared.tls_failures = &m.add_counter_family("ws_tls_handshake_failures_total",
                                                "TLS handshakes (wss) that failed, by reason (net/tls_failure.hpp).", {"reason"});
  }

  runtime& rt;
  std::shared_ptr<const config> first;
  shared_state shared;
};

int serve(runtime& rt) {
  auto s = std::make_shared<server>(rt);
  rt.keep(s);
  const auto c = s->first;
  if (!s->shared.sink.ok()) return rt.log().error("cannot open the audit file", {{"file", c->audit.file}}), 1;
  s->add_metrics();
  s->shared.cluster = rproxy::app::open_cluster(rt, c->redis, {.policy = "rooms served by this instance alone", .kicks_metric = "ws_ban_kicks"});
  if (!s->shared.cluster) return 1;
  s->shared.shares = s->shared.cluster->shares_by_worker();
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
