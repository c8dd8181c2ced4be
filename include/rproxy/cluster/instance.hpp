// rproxy/cluster/instance.hpp: what an app shares with its other instances, made once from its
// `redis:` block: a link to Redis per worker (worker_links, with the degraded gauges and the
// log of its transitions), the counter store of its rate limits (in-process, or shared through
// Redis per route), its connection counts (per-address caps held by every instance together:
// redis_conn_slots.hpp), the bans shared through Redis, with the roster of open flows a new ban
// ends (middleware/ban_kick.hpp), the client counts of its woken backend groups (so that no
// instance stops a group others still use: shared_players.hpp), and its random id (what names
// its members in Redis). Without
// the block, everything is in-process and nothing connects.
//
//     auto o = rproxy::cluster::instance::options_of(c.redis);      // reads the password
//     if (!o) return log.error("cannot use the redis: block", {{"error", o.error()}}), 1;
//     rproxy::cluster::instance shared(rt.pool(), *o, rt.metrics(), rt.log(),
//                                      {.sync_interval = 100ms, .policy = "rate limits on_failure=local"});
//     shared.start();                                                // after the app's own setup
//     mw::basic_rate_limit<mw::shared_counter_store>{&cfg, &shared.links.limits(worker), audit};
//     mw::ban_check{&file_list, audit, &ban_cfg, &shared.bans.list()};
//     mw::ban_kick{&shared.kicks, &file_list, &shared.bans.list(), &ban_cfg, audit};
//     rproxy::middleware::shared_conn_limit{&conn_cfg, &shared.conn_slots(worker), audit};
//     shared.shares_of(worker);                                      // the same four, for a flows unit (cluster/shares.hpp)
//     shared.bans.publish(file_list);                                // after each ban file load
//     shared.players.share("survival", wake_state);                  // each second, before stop_if_idle
//
// h3-gateway, ws-server and mc-proxy use it (docs/scaling.md).
#pragma once

#include <asio/any_io_executor.hpp>

#include <asio/post.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/cluster/redis_conn_slots.hpp>
#include <rproxy/cluster/redis_counter_store.hpp>
#include <rproxy/cluster/redis_options.hpp>
#include <rproxy/cluster/shared_bans.hpp>
#include <rproxy/cluster/shares.hpp>
#include <rproxy/cluster/shared_players.hpp>
#include <rproxy/cluster/worker_links.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit_store.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/net/pool_executors.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::cluster {

struct instance_settings {
  std::chrono::milliseconds sync_interval{100};  ///< batched limits
  std::string policy = "local state";            ///< what the instance does without Redis, for the log
  middleware::ban_list_options bans{};           ///< how the shared list matches (e.g. names folded)
  std::string kicks_metric{};                    ///< the counter of flows a new ban ended (the app's prefix); empty: none
};

class instance {
public:
  using settings = instance_settings;

  /// The client options of an app's `redis:` block (nullopt without one), the password read.
  /// The error names the file or variable, never the secret.
  static result<std::optional<redis_options>, std::string> options_of(const std::optional<redis_block>& block) {
    if (!block) return std::optional<redis_options>{};
    auto o = block->options();
    if (!o) return rproxy::failure(std::move(o.error()));
    return std::optional<redis_options>(std::move(*o));
  }

  instance(net::io_pool& pool, const std::optional<redis_options>& redis, observe::registry& metrics, const observe::logger& log,
           settings s = {})
      : pool_(&pool), id_(random_id()), links(pool, redis, metrics, log, counters, {.sync_interval = s.sync_interval}), bans(links.client(0), &log, s.bans),
        kicks(net::executors_of(pool), s.kicks_metric.empty() ? nullptr
                                                      : &metrics.add_counter(s.kicks_metric, "Open flows ended because a new ban covers their peer.")),
        players(links.client(0), id_, &log) {
    links.policy(std::move(s.policy));
    bans.on_change([this](std::shared_ptr<const middleware::ban_list> file) { kicks.sweep(std::move(file)); });
    for (std::size_t i = 0; i < links.size(); ++i)
      slots_.push_back(std::make_unique<redis_conn_slots>(links.client(i), conns, id_ + "-" + std::to_string(i)));
  }
  instance(const instance&) = delete;
  instance& operator=(const instance&) = delete;

  /// Each worker connects on its own thread; the bans subscribe and load on worker 0's.
  void start() {
    links.start();
    bans.start();
    for (std::size_t i = 0; i < slots_.size(); ++i) asio::post(pool_->executor(i), [s = slots_[i].get()] { s->start(); });
    asio::post(pool_->executor(0), [this] { players.start(); });
  }

  /// This instance among the others: random, new at each start (a restarted instance's old
  /// members lapse on their own).
  const std::string& id() const noexcept { return id_; }
  /// The connection slots of worker `i` (the conn_limit stage's store there).
  redis_conn_slots& conn_slots(std::size_t worker) { return *slots_.at(worker); }
  /// What worker `i`'s flows use, through interfaces (cluster/shares.hpp).
  shares shares_of(std::size_t worker) {
    return {slots_.at(worker).get(), links.has_limits() ? &links.limits(worker) : nullptr, &bans.list(), &kicks};
  }
  /// shares_of(i) for every worker i, in order (what an app hands its pipelines).
  std::vector<shares> shares_by_worker() {
    std::vector<shares> out;
    for (std::size_t i = 0; i < slots_.size(); ++i) out.push_back(shares_of(i));
    return out;
  }

private:
  static std::string random_id() {
    std::random_device rd;
    const std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 0; i < 16; ++i) out[static_cast<std::size_t>(i)] = hex[(v >> (4 * i)) & 15];
    return out;
  }
  net::io_pool* pool_;
  std::string id_;

public:
  middleware::local_counter_store counters{{.max_keys = 1u << 20}};  ///< the local store (also Redis' fallback)
  middleware::conn_counter conns;                                     ///< this process' open connections (max_total; the fallback)
  worker_links links;                                                 ///< a client and a counter store per worker
  shared_bans bans;                                                   ///< bans made on any instance
  middleware::ban_roster kicks;                                       ///< open flows, ended by a new ban (ban_kick)
  shared_players players;                                             ///< clients of woken groups on every instance (worker 0)

private:
  std::vector<std::unique_ptr<redis_conn_slots>> slots_;  ///< one per worker, over links.client(i)
};

}  // namespace rproxy::cluster
