// apps/ws-server/serve.cpp: the server's composition (serve, declared in config.hpp): its state
// kept for the process (rooms, connections, counters, the Redis link), a world per config
// version, listeners, admin API and reloads. Its flows are compiled in flows.cpp and
// flows_tls.cpp, its config decoder in config.cpp.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

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

int serve(runtime& rt) {
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
