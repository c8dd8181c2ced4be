// apps/ws-server/cluster.hpp: rooms across ws-server instances, when the config has a `redis:`
// block (docs/ws-server.md "Several instances"): the instance's links to Redis
// (cluster::worker_links: a client per worker, the rproxy_cluster_degraded gauge and its log
// lines, as in h3-gateway), the rooms link and bridge (rooms/cluster.hpp), the presence
// heartbeat on worker 0. Without `redis:` nothing here exists and the rooms stay in the
// process.
#pragma once

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <vector>

#include <rproxy/app/runtime.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/cluster/shared_bans.hpp>
#include <rproxy/cluster/worker_links.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/rooms/cluster.hpp>
#include <rproxy/rooms/cluster_link.hpp>
#include <rproxy/rooms/registry.hpp>

#include "config.hpp"

namespace ws_server {

using bridge = rproxy::rooms::basic_cluster<rproxy::rooms::redis_link>;

struct cluster_part {
  /// Builds the links, the rooms link and the bridge from `c` (nothing without a redis block). False: the
  /// block cannot be used (logged: a password file that cannot be read).
  bool open(rproxy::app::runtime<config>& rt, const config& c, rproxy::rooms::registry& reg, rproxy::flow::ws_hub& hub) {
    bans = std::make_unique<rproxy::cluster::shared_bans>(nullptr, &rt.log());  // the admin API's, here alone
    if (!c.redis) return true;
    auto o = c.redis->options();
    if (!o) return rt.log().error("cannot use the redis block", {{"error", o.error()}}), false;
    links = std::make_unique<rproxy::cluster::worker_links>(rt.pool(), *o, rt.metrics(), rt.log());
    bans = std::make_unique<rproxy::cluster::shared_bans>(links->client(0), &rt.log());  // on every instance
    links->policy("rooms served by this instance alone");
    std::vector<rproxy::cluster::redis_client*> raw;
    std::vector<asio::any_io_executor> exs;
    for (std::size_t i = 0; i < links->size(); ++i) {
      raw.push_back(links->client(i));
      exs.push_back(rt.pool().executor(i));
    }
    link = std::make_unique<rproxy::rooms::redis_link>(std::move(raw), std::move(exs));
    the_bridge = std::make_unique<bridge>(reg, hub, *link, c.cluster.options(c.redis->key_prefix), &rt.log());
    link->attach(*the_bridge);
    beat = std::make_unique<asio::steady_timer>(rt.pool().executor(0));
    rt.log().info("rooms shared through redis", {{"address", c.redis->address.host + ":" + std::to_string(c.redis->address.port)}});
    return true;
  }

  /// Connects (each worker on its own thread) and starts the heartbeat.
  void start() {
    if (!the_bridge) return;
    bans->start();
    links->start();
    asio::post(beat->get_executor(), [this] { heartbeat(); });
  }

  /// Stops the heartbeat (shutdown; from any thread).
  void stop() {
    if (beat) asio::post(beat->get_executor(), [t = beat.get()] { t->cancel(); });
  }

  bridge* get() const noexcept { return the_bridge.get(); }

  std::unique_ptr<rproxy::cluster::shared_bans> bans;  ///< POST /bans (admin/bans_api.hpp), shared with a redis block

private:
  void heartbeat() {
    beat->expires_after(the_bridge->heartbeat_interval());
    beat->async_wait([this](std::error_code ec) {
      if (ec) return;
      the_bridge->heartbeat();
      heartbeat();
    });
  }

  std::unique_ptr<rproxy::cluster::worker_links> links;
  std::unique_ptr<rproxy::rooms::redis_link> link;
  std::unique_ptr<bridge> the_bridge;
  std::unique_ptr<asio::steady_timer> beat;
};

}  // namespace ws_server
