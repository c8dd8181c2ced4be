// rproxy/cluster/worker_links.hpp: an app's links to Redis: one redis_client and one
// redis_counter_store per worker, each on its worker's io_context (no thread of its own), and
// the metrics that say whether the instance is cut off from the others.
//
//     rproxy::cluster::worker_links links(rt.pool(), redis_opts /* optional */, rt.metrics(), rt.log(), local_counters);
//     links.start();                                  // each worker connects on its own thread
//     mw::basic_rate_limit<rproxy::cluster::redis_counter_store>{&cfg, &links.limits(i), audit};
//     links.client(i);                                // null without a `redis:` block
//
//     rproxy::cluster::worker_links links(rt.pool(), redis_opts, rt.metrics(), rt.log());  // clients only
//     (an app without distributed limits, e.g. ws-server's rooms; limits(i) is then not there)
//
// Metrics: rproxy_cluster_degraded (1 while any worker cannot reach Redis; 0 without Redis),
// rproxy_cluster_workers_degraded (how many). The instance logs once per transition: "redis
// unavailable" when its first worker loses Redis, "redis connected" when all have it again.
#pragma once

#include <asio/post.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/cluster/redis_counter_store.hpp>
#include <rproxy/cluster/redis_options.hpp>
#include <rproxy/middleware/rate_limit_store.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::cluster {

class worker_links {
public:
  worker_links(net::io_pool& pool, const std::optional<redis_options>& opts, observe::registry& metrics, const observe::logger& log,
               middleware::local_counter_store& local, redis_counter_store::config limits_cfg = {})
      : worker_links(pool, opts, metrics, log, &local, limits_cfg) {}
  /// Clients only: no counter store (has_limits() is false).
  worker_links(net::io_pool& pool, const std::optional<redis_options>& opts, observe::registry& metrics, const observe::logger& log)
      : worker_links(pool, opts, metrics, log, nullptr, {}) {}
  worker_links(const worker_links&) = delete;
  worker_links& operator=(const worker_links&) = delete;

  /// Each worker connects and starts its batched sync, on its own thread.
  void start() {
    for (std::size_t i = 0; i < workers_.size(); ++i)
      asio::post(pool_->executor(i), [w = workers_[i].get()] {
        if (w->client) w->client->start();
        if (w->limits) w->limits->start();
      });
  }

  bool enabled() const noexcept { return !workers_.empty() && workers_[0]->client != nullptr; }
  bool has_limits() const noexcept { return !workers_.empty() && workers_[0]->limits != nullptr; }
  std::size_t size() const noexcept { return workers_.size(); }
  redis_client* client(std::size_t worker) noexcept { return workers_.at(worker)->client.get(); }
  /// Needs has_limits().
  redis_counter_store& limits(std::size_t worker) noexcept { return *workers_.at(worker)->limits; }
  /// Workers that cannot reach Redis now (0 without Redis).
  int degraded_workers() const noexcept {
    std::lock_guard lock(state_->mu);
    return state_->down;
  }

private:
  worker_links(net::io_pool& pool, const std::optional<redis_options>& opts, observe::registry& metrics, const observe::logger& log,
               middleware::local_counter_store* local, redis_counter_store::config limits_cfg)
      : pool_(&pool), state_(std::make_shared<shared>()) {
    state_->log = &log;
    if (opts) state_->where = opts->host + ":" + std::to_string(opts->port);
    state_->degraded = &metrics.add_gauge("rproxy_cluster_degraded", "1 while a worker cannot reach Redis (state is local meanwhile).");
    state_->workers = &metrics.add_gauge("rproxy_cluster_workers_degraded", "Workers that cannot reach Redis now.");
    for (std::size_t i = 0; i < pool.size(); ++i) {
      auto& w = workers_.emplace_back(std::make_unique<worker>());
      if (opts) {
        w->client = std::make_unique<redis_client>(pool.executor(i), *opts, nullptr);  // the instance logs, not each worker
        w->client->on_state([s = state_](bool up) { s->change(up ? -1 : 1); });
      }
      if (local) w->limits = std::make_unique<redis_counter_store>(w->client.get(), *local, limits_cfg);
    }
    if (opts) state_->change(static_cast<int>(pool.size()));  // down until each connects
  }

  struct worker {
    std::unique_ptr<redis_client> client;
    std::unique_ptr<redis_counter_store> limits;
  };
  struct shared {
    std::mutex mu;
    int down = 0;
    observe::gauge* degraded = nullptr;
    observe::gauge* workers = nullptr;
    const observe::logger* log = nullptr;
    std::string where;
    bool was_up = false;  // all workers were up at least once since the last "unavailable"
    void change(int by) {
      std::lock_guard lock(mu);
      const int before = down;
      down += by;
      workers->set(down);
      degraded->set(down > 0 ? 1 : 0);
      if (by < 0 && down == 0 && before > 0) {
        log->info("redis connected: state is shared", {{"redis", where}});
        was_up = true;
      } else if (by > 0 && before == 0 && was_up) {
        log->warn("redis unavailable: using local state until it returns", {{"redis", where}});
        was_up = false;
      }
    }
  };

  net::io_pool* pool_;
  std::shared_ptr<shared> state_;
  std::vector<std::unique_ptr<worker>> workers_;
};

}  // namespace rproxy::cluster
