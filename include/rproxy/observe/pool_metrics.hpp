// rproxy/observe/pool_metrics.hpp: per-backend metrics of balance pools, as callback series on an
// observe::registry (read from the backends' atomics at scrape time; nothing on the pick path).
//
//     auto pm = rproxy::observe::pool_metrics::add_to(registry);   // once per registry
//     pm->track("lobby", pool);          // a series per backend of the pool, labelled by route
//     pool->update(new_backends);
//     pm->track("lobby", pool);          // again after an update: follows added/removed backends
//     pm->untrack("lobby");              // the route is gone
//
// Families (labels route, backend; `state` ones also state):
//   rproxy_backend_selections_total   flows started on the backend (picks)
//   rproxy_backend_successes_total    flows that ended well
//   rproxy_backend_failures_total     flows the backend failed (connect failures included)
//   rproxy_backend_ejections_total    outlier ejections
//   rproxy_backend_up                 1 when new flows may go there (available), else 0
//   rproxy_backend_state              1 for the current state (healthy, unhealthy, draining,
//                                     ejected), 0 for the others
//   rproxy_backend_breaker_state      1 for the breaker's state (closed, open, half_open)
//   rproxy_backend_in_flight          flows in progress
//   rproxy_backend_weight             configured (or dynamic) weight
//   rproxy_backend_latency_ewma_seconds  latency EWMA (connect times, probe latencies)
//
// A backend removed by an update loses its series at the next track(); its counters are kept
// by the pool if it comes back under the same identity. Thread-safe; track() and untrack() are
// control-path calls (they lock the families). It lives in observe/ so that balance/ does not
// depend on the metrics registry.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <rproxy/balance/backend.hpp>
#include <rproxy/health/circuit_breaker.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::observe {

class pool_metrics {
public:
  /// Registers the families (once per registry and prefix).
  static std::shared_ptr<pool_metrics> add_to(registry& reg, const std::string& prefix = "rproxy") {
    return std::shared_ptr<pool_metrics>(new pool_metrics(reg, prefix));
  }

  pool_metrics(const pool_metrics&) = delete;
  pool_metrics& operator=(const pool_metrics&) = delete;

  /// Series for every backend in `pool`'s current snapshot under `route`; drops those of
  /// backends no longer there. Call after each update of the pool.
  template <class Pool>
  void track(const std::string& route, const std::shared_ptr<Pool>& pool) {
    std::lock_guard lk(mu_);
    auto snap = pool->snapshot();
    auto& ids = routes_[route];
    std::set<std::string> now;
    for (const auto& b : snap->backends) {
      now.insert(b->id());
      add_backend(route, b);
    }
    for (const auto& id : ids)
      if (!now.contains(id)) erase_backend(route, id);
    ids = std::move(now);
  }

  /// Drops every series of `route`.
  void untrack(const std::string& route) {
    std::lock_guard lk(mu_);
    auto it = routes_.find(route);
    if (it == routes_.end()) return;
    for (const auto& id : it->second) erase_backend(route, id);
    routes_.erase(it);
  }

private:
  static constexpr std::array<balance::backend_state, 4> states{
      balance::backend_state::healthy, balance::backend_state::unhealthy, balance::backend_state::draining,
      balance::backend_state::ejected};
  static constexpr std::array<health::breaker_state, 3> breaker_states{
      health::breaker_state::closed, health::breaker_state::open, health::breaker_state::half_open};

  pool_metrics(registry& reg, const std::string& p)
      : selections_(&reg.add_callback_counter_family(p + "_backend_selections", "Flows started on the backend.",
                                                     {"route", "backend"})),
        successes_(&reg.add_callback_counter_family(p + "_backend_successes", "Flows that ended well.",
                                                    {"route", "backend"})),
        failures_(&reg.add_callback_counter_family(p + "_backend_failures",
                                                   "Flows the backend failed, connect failures included.",
                                                   {"route", "backend"})),
        ejections_(&reg.add_callback_counter_family(p + "_backend_ejections", "Outlier ejections of the backend.",
                                                    {"route", "backend"})),
        up_(&reg.add_callback_gauge_family(p + "_backend_up", "1 when new flows may go to the backend.",
                                           {"route", "backend"})),
        state_(&reg.add_callback_gauge_family(p + "_backend_state",
                                              "1 for the backend's state: healthy, unhealthy, draining, ejected.",
                                              {"route", "backend", "state"})),
        breaker_(&reg.add_callback_gauge_family(p + "_backend_breaker_state",
                                                "1 for the circuit breaker's state: closed, open, half_open.",
                                                {"route", "backend", "state"})),
        in_flight_(&reg.add_callback_gauge_family(p + "_backend_in_flight", "Flows in progress on the backend.",
                                                  {"route", "backend"})),
        weight_(&reg.add_callback_gauge_family(p + "_backend_weight", "The backend's weight (configured or dynamic).",
                                               {"route", "backend"})),
        latency_(&reg.add_callback_gauge_family(p + "_backend_latency_ewma_seconds",
                                                "Latency EWMA of the backend (connect and probe times).",
                                                {"route", "backend"})) {}

  template <class BackendPtr>
  void add_backend(const std::string& route, const BackendPtr& b) {
    const std::string_view r = route, id = b->id();
    auto num = [](auto v) { return static_cast<double>(v); };
    selections_->with({r, id}, [b, num] { return num(b->selections()); });
    successes_->with({r, id}, [b, num] { return num(b->successes()); });
    failures_->with({r, id}, [b, num] { return num(b->failures()); });
    ejections_->with({r, id}, [b, num] { return num(b->ejections()); });
    up_->with({r, id}, [b] { return b->available() ? 1.0 : 0.0; });
    for (auto s : states)
      state_->with({r, id, balance::to_string(s)}, [b, s] { return b->state() == s ? 1.0 : 0.0; });
    for (auto s : breaker_states)
      breaker_->with({r, id, health::to_string(s)}, [b, s] { return b->stats().breaker == s ? 1.0 : 0.0; });
    in_flight_->with({r, id}, [b, num] { return num(b->in_flight()); });
    weight_->with({r, id}, [b, num] { return num(b->weight()); });
    latency_->with({r, id}, [b] { return std::chrono::duration<double>(b->latency()).count(); });
  }

  void erase_backend(const std::string& route, const std::string& id) {
    const std::string_view r = route, i = id;
    for (auto* f : {selections_, successes_, failures_, ejections_, up_, in_flight_, weight_, latency_})
      f->erase({r, i});
    for (auto s : states) state_->erase({r, i, balance::to_string(s)});
    for (auto s : breaker_states) breaker_->erase({r, i, health::to_string(s)});
  }

  std::mutex mu_;
  std::map<std::string, std::set<std::string>> routes_;  // route -> backend ids with series
  callback_family* selections_;
  callback_family* successes_;
  callback_family* failures_;
  callback_family* ejections_;
  callback_family* up_;
  callback_family* state_;
  callback_family* breaker_;
  callback_family* in_flight_;
  callback_family* weight_;
  callback_family* latency_;
};

}  // namespace rproxy::observe
