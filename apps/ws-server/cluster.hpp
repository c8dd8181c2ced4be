// apps/ws-server/cluster.hpp: rooms across ws-server instances, when the config has a `redis:`
// block (docs/ws-server.md "Several instances"): a Redis client per worker, the link and the
// bridge (rooms/cluster.hpp), the presence heartbeat on worker 0, and the
// rproxy_cluster_degraded gauge. Without `redis:` nothing here exists and the rooms stay in
// the process.
#pragma once

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <vector>

#include <rproxy/app/runtime.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/rooms/cluster.hpp>
#include <rproxy/rooms/cluster_link.hpp>
#include <rproxy/rooms/registry.hpp>

#include "config.hpp"

namespace ws_server {

using bridge = rproxy::rooms::basic_cluster<rproxy::rooms::redis_link>;

struct cluster_part {
  /// Builds the clients, link and bridge from `c` (nothing without a redis block). False: the
  /// block cannot be used (logged: a password file that cannot be read).
  bool open(rproxy::app::runtime<config>& rt, const config& c, rproxy::rooms::registry& reg, rproxy::flow::ws_hub& hub) {
    if (!c.redis) return true;
    auto o = c.redis->options();
    if (!o) return rt.log().error("cannot use the redis block", {{"error", o.error()}}), false;
    std::vector<rproxy::cluster::redis_client*> raw;
    std::vector<asio::any_io_executor> exs;
    for (std::size_t i = 0; i < rt.pool().size(); ++i) {
      clients.push_back(std::make_unique<rproxy::cluster::redis_client>(rt.pool().executor(i), *o, i == 0 ? &rt.log() : nullptr));
      raw.push_back(clients.back().get());
      exs.push_back(rt.pool().executor(i));
    }
    link = std::make_unique<rproxy::rooms::redis_link>(std::move(raw), std::move(exs));
    the_bridge = std::make_unique<bridge>(reg, hub, *link, c.cluster.options(c.redis->key_prefix), &rt.log());
    link->attach(*the_bridge);
    beat = std::make_unique<asio::steady_timer>(rt.pool().executor(0));
    rt.metrics().add_callback_gauge("rproxy_cluster_degraded",
                                    "1 while Redis cannot be reached: rooms are served by this instance alone.",
                                    [l = link.get()] { return l->up() ? 0.0 : 1.0; });
    rt.log().info("rooms shared through redis", {{"address", c.redis->address.host + ":" + std::to_string(c.redis->address.port)}});
    return true;
  }

  /// Connects (before the workers run) and starts the heartbeat.
  void start() {
    if (!the_bridge) return;
    for (auto& cl : clients) cl->start();
    heartbeat();
  }

  /// Stops the heartbeat (shutdown; from any thread).
  void stop() {
    if (beat) asio::post(beat->get_executor(), [t = beat.get()] { t->cancel(); });
  }

  bridge* get() const noexcept { return the_bridge.get(); }

private:
  void heartbeat() {
    beat->expires_after(the_bridge->heartbeat_interval());
    beat->async_wait([this](std::error_code ec) {
      if (ec) return;
      the_bridge->heartbeat();
      heartbeat();
    });
  }

  std::vector<std::unique_ptr<rproxy::cluster::redis_client>> clients;
  std::unique_ptr<rproxy::rooms::redis_link> link;
  std::unique_ptr<bridge> the_bridge;
  std::unique_ptr<asio::steady_timer> beat;
};

}  // namespace ws_server
