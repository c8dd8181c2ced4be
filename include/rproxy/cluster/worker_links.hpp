// rproxy/cluster/worker_links.hpp: an app's links to Redis: one redis_client and one
// redis_counter_store per worker, each on its worker's io_context (no thread of its own), and
// the metrics that say whether the instance is cut off from the others.
//
//     rproxy::cluster::worker_links links(rt.pool(), redis_opts /* optional */, rt.metrics(), rt.log(), local_counters);
//     links.start();                                  // each worker connects on its own thread
//     mw::basic_rate_limit<mw::shared_counter_store>{&cfg, &links.limits(i), audit};
//     links.client(i);                                // null without a `redis:` block
//
//     rproxy::cluster::worker_links links(rt.pool(), redis_opts, rt.metrics(), rt.log());  // clients only
//     (an app without distributed limits, e.g. ws-server's rooms; limits(i) is then not there)
//
//     links.policy("rate limits on_failure=local");   // said in the log when Redis is unreachable
//
// Metrics: rproxy_cluster_degraded (1 while any worker cannot reach Redis; 0 without Redis),
// rproxy_cluster_workers_degraded (how many), rproxy_cluster_redis_up (1 while every worker has
// Redis; 0 otherwise and without Redis), rproxy_cluster_redis_transitions_total (times the
// instance got Redis or lost it; the first connect counts). The instance logs once per
// transition, never per request: a warning at start when Redis cannot be reached ("redis
// unreachable at start", with host:port, the reason and the policy in effect), "redis
// connected" when every worker has it, "redis unavailable" when the first one loses it.
#pragma once

#include <asio/post.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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

  /// What the instance does without Redis (e.g. "rate limits on_failure=closed"), for the log.
  /// Call before start().
  void policy(std::string text) {
    std::lock_guard lock(state_->mu);
    state_->policy = std::move(text);
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
    state_->up = &metrics.add_gauge("rproxy_cluster_redis_up", "1 while every worker has Redis (0 without a redis: block).");
    state_->transitions = &metrics.add_counter("rproxy_cluster_redis_transitions_total",
                                               "Times the instance got Redis (the first connect included) or lost it.");
    for (std::size_t i = 0; i < pool.size(); ++i) {
      auto& w = workers_.emplace_back(std::make_unique<worker>());
      if (opts) {
        w->client = std::make_unique<redis_client>(pool.executor(i), *opts, nullptr);  // the instance logs, not each worker
        w->client->on_state([s = state_](bool up) { s->change(up ? -1 : 1); });
        w->client->on_connect_failed([s = state_](std::string_view why) { s->failed(why); });
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
    observe::gauge* up = nullptr;
    observe::counter* transitions = nullptr;
    const observe::logger* log = nullptr;
    std::string where;
    std::string policy = "local state";
    bool was_up = false;      // all workers were up at least once since the last "unavailable"
    bool ever_up = false;     // ... since start
    bool said_start = false;  // "unreachable at start" logged
    void failed(std::string_view why) {
      std::lock_guard lock(mu);
      if (ever_up || said_start) return;  // after start, transitions are logged by change()
      said_start = true;
      log->warn("redis unreachable at start: using local state until it connects",
                {{"redis", where}, {"reason", why}, {"policy", policy}});
    }
    void change(int by) {
      std::lock_guard lock(mu);
      const int before = down;
      down += by;
      workers->set(down);
      degraded->set(down > 0 ? 1 : 0);
      up->set(down == 0 ? 1 : 0);
      if (by < 0 && down == 0 && before > 0) {
        log->info("redis connected: state is shared", {{"redis", where}});
        was_up = ever_up = true;
        transitions->inc();
      } else if (by > 0 && before == 0 && was_up) {
        log->warn("redis unavailable: using local state until it returns", {{"redis", where}, {"policy", policy}});
        was_up = false;
        transitions->inc();
      }
    }
  };

  net::io_pool* pool_;
  std::shared_ptr<shared> state_;
  std::vector<std::unique_ptr<worker>> workers_;
};

}  // namespace rproxy::cluster
