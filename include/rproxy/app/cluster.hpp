// rproxy/app/cluster.hpp: an app's cluster::instance (what it shares with its other instances:
// rate-limit counters, bans) made from its `redis:` block, or in-process without one.
//
//     auto shared = rproxy::app::open_cluster(rt, cfg.redis, rproxy::app::sharing(limits_block, {.kicks_metric = "app_ban_kicks"}));
//     if (!shared) return 1;            // logged: the block cannot be used (a password file that cannot be read)
//     ... the app's own setup, then shared->start();
//
// The block is read once: a change needs a restart (list it in the config's restart_only()).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <rproxy/cluster/instance.hpp>
#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>

namespace rproxy::app {

/// The settings of an instance that shares bans and, when `limits` is set (an app's
/// rate_distributed_block), counts rate limits across instances: its sync interval, and what
/// the instance does without Redis for the log ("rate limits on_failure=local, bans made here
/// stay here"). `s` brings the rest (ban matching, the kicks metric).
inline cluster::instance::settings sharing(const middleware::rate_distributed_block* limits, cluster::instance::settings s = {}) {
  s.policy = "bans made here stay here";
  if (limits) {
    s.sync_interval = limits->sync_interval;
    s.policy = limits->failure_policy() + ", " + std::move(s.policy);
  }
  return s;
}

/// The instance of `redis` (none: everything in-process) on `rt`'s workers, metrics and log.
/// Null when the block cannot be used: logged, naming the file or variable, never the secret.
template <class Runtime>
std::unique_ptr<cluster::instance> open_cluster(Runtime& rt, const std::optional<cluster::redis_block>& redis,
                                                cluster::instance::settings s = {}) {
  auto o = cluster::instance::options_of(redis);
  if (!o) {
    rt.log().error("cannot use the redis: block", {{"error", o.error()}});
    return nullptr;
  }
  return std::make_unique<cluster::instance>(rt.pool(), *o, rt.metrics(), rt.log(), std::move(s));
}

}  // namespace rproxy::app
