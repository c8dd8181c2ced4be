// rproxy/rooms/redis_rooms.hpp: a registry's rooms shared with the app's other instances through
// its links to Redis (cluster::worker_links: a client per worker, made from the app's `redis:`
// block, e.g. by app::open_cluster): the rooms link over those clients, the bridge between the
// registry, the hub and Redis (rooms/cluster.hpp), and the presence heartbeat on worker 0.
//
//     auto shared = rproxy::app::open_cluster(rt, c.redis, {...});   // links, bans, kicks
//     std::optional<rproxy::rooms::redis_rooms> rooms;
//     if (c.redis) rooms.emplace(shared->links, rt.pool(), reg, hub, c.cluster.options(c.redis->key_prefix), rt.log());
//     make_pipeline(..., rooms::basic_stage<rooms::redis_rooms::bridge>{&reg, &hub, {}, rooms ? &rooms->get() : nullptr});
//     shared->start();                  // the clients connect (after the bridge is attached)
//     if (rooms) rooms->start();        // the heartbeat
//     if (rooms) rooms->stop();         // at shutdown, from any thread
//
// Without a `redis:` block an app makes none, and the rooms stay in the process.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <cstddef>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/cluster/worker_links.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/net/pool_executors.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/rooms/cluster.hpp>
#include <rproxy/rooms/cluster_link.hpp>
#include <rproxy/rooms/registry.hpp>

namespace rproxy::rooms {

class redis_rooms {
public:
  using bridge = basic_cluster<redis_link>;

  /// Attaches the bridge to `links`' clients: call before they start (cluster::instance::start).
  redis_rooms(cluster::worker_links& links, net::io_pool& pool, registry& reg, flow::ws_hub& hub, cluster_options opt,
              const observe::logger& log)
      : link_(clients(links), net::executors_of(pool)), bridge_(reg, hub, link_, std::move(opt), &log), beat_(pool.executor(0)) {
    link_.attach(bridge_);
  }
  redis_rooms(const redis_rooms&) = delete;
  redis_rooms& operator=(const redis_rooms&) = delete;

  /// Starts the presence heartbeat (on worker 0).
  void start() {
    asio::post(beat_.get_executor(), [this] { heartbeat(); });
  }
  /// Stops the heartbeat (shutdown; from any thread).
  void stop() {
    asio::post(beat_.get_executor(), [this] { beat_.cancel(); });
  }

  bridge& get() noexcept { return bridge_; }

private:
  static std::vector<cluster::redis_client*> clients(cluster::worker_links& links) {
    std::vector<cluster::redis_client*> out;
    for (std::size_t i = 0; i < links.size(); ++i) out.push_back(links.client(i));
    return out;
  }

  void heartbeat() {
    beat_.expires_after(bridge_.heartbeat_interval());
    beat_.async_wait([this](std::error_code ec) {
      if (ec) return;
      bridge_.heartbeat();
      heartbeat();
    });
  }

  redis_link link_;
  bridge bridge_;
  asio::steady_timer beat_;
};

}  // namespace rproxy::rooms
