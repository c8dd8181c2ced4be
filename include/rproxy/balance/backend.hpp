// rproxy/balance/backend.hpp: one backend of a pool, its health state and its counters.
//
// A backend has an identity (id + address, fixed), a configured weight, and mutable state kept
// in atomics so any worker thread can read it on the pick path without a lock:
//   - state: healthy, unhealthy (an active probe said so), ejected (outlier detection),
//     draining (removed from config or drained by an operator: finishing its flows, no new ones);
//   - a circuit breaker (health/circuit_breaker.hpp) that may refuse new flows;
//   - in-flight flows, latency EWMA (lock-free update), and metrics counters (selections,
//     successes, failures, ejections) for an observer to export;
//   - slow start: after it (re)joins, its effective weight ramps linearly from
//     `slow_start_floor` (10%) to 100% over `slow_start`.
//
// Backends are created and changed by a basic_pool (balance/pool.hpp); balancers read them,
// and a handle (balance/handle.hpp) reports each flow's outcome back to them.
//
//     for (auto& b : pool.snapshot()->backends)
//       export(b->id(), b->stats());           // selections, failures, ejections, in flight...
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/health/circuit_breaker.hpp>
#include <rproxy/health/outlier.hpp>

namespace rproxy::balance {

enum class backend_state : std::uint8_t { healthy, unhealthy, draining, ejected };

constexpr std::string_view to_string(backend_state s) noexcept {
  switch (s) {
    case backend_state::healthy: return "healthy";
    case backend_state::unhealthy: return "unhealthy";
    case backend_state::draining: return "draining";
    case backend_state::ejected: return "ejected";
  }
  return "unknown";
}

/// One backend as configured. Identity is (id, address): an update that keeps both keeps the
/// backend and its counters; a new address under the same id is a new backend.
template <class Address>
struct backend_config {
  std::string id;
  Address address{};
  std::uint32_t weight = 1;  ///< 0: kept but never picked (standby)
};

/// Health knobs of a pool, fixed for the pool's life.
struct pool_config {
  std::chrono::nanoseconds slow_start{0};  ///< ramp window after (re)joining; 0: off
  double slow_start_floor = 0.1;           ///< the ramp starts at this fraction of the weight
  double latency_alpha = 0.3;              ///< EWMA weight of each new latency sample
  health::breaker_config breaker = health::breaker_config::disabled();
  health::outlier_config outlier{};

  friend bool operator==(const pool_config&, const pool_config&) = default;
};

/// A backend's counters and state at one instant, for metrics export.
struct backend_stats {
  backend_state state = backend_state::healthy;
  health::breaker_state breaker = health::breaker_state::closed;
  std::uint32_t weight = 0;
  std::uint32_t in_flight = 0;
  std::chrono::nanoseconds latency_ewma{0};
  std::uint64_t selections = 0;
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::uint64_t ejections = 0;
};

/// Effective weights are in 1/1024 of a configured weight unit, so slow start stays integral.
inline constexpr std::uint64_t weight_scale = 1024;

template <class Address, class Clock>
class basic_pool;
template <class Backend>
class basic_handle;

namespace detail {

inline constexpr std::int64_t no_time = std::numeric_limits<std::int64_t>::min() / 2;

template <class Clock>
std::int64_t to_ns(typename Clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

/// State a pool shares with its backends (which may outlive it while flows finish).
template <class Clock>
struct pool_shared {
  explicit pool_shared(const pool_config& c) : config(c) {}

  const pool_config config;
  std::atomic<std::uint64_t> weights_epoch{0};  ///< bumped on every weight or membership change
  std::atomic<std::uint32_t> max_weight{0};     ///< upper bound of configured weights
  std::atomic<std::size_t> total{0};            ///< backends in the current snapshot

  /// The max-ejected-percent guard, then the ejection, as one step.
  template <class Outlier>
  bool try_eject(Outlier& od, typename Clock::time_point now, std::int64_t& until_ns) {
    std::lock_guard lk(ejection_mutex_);
    std::int64_t t = to_ns<Clock>(now);
    std::erase_if(ejected_until_, [t](std::int64_t u) { return u <= t; });
    if (!health::ejection_allowed(ejected_until_.size(), total.load(std::memory_order_relaxed),
                                  config.outlier.max_ejected_percent))
      return false;
    until_ns = to_ns<Clock>(od.eject(now));
    ejected_until_.push_back(until_ns);
    return true;
  }

  /// An ejection that was to end at `until_ns` ended early (uneject).
  void end_ejection(std::int64_t until_ns, typename Clock::time_point now) {
    std::lock_guard lk(ejection_mutex_);
    auto it = std::find(ejected_until_.begin(), ejected_until_.end(), until_ns);
    if (it != ejected_until_.end()) *it = to_ns<Clock>(now);
  }

private:
  std::mutex ejection_mutex_;
  std::vector<std::int64_t> ejected_until_;  ///< ends of the ejections in progress
};

enum : std::uint8_t {
  flag_probe_down = 1,  ///< an active probe reported it down
  flag_removed = 2,     ///< no longer in the config: draining
  flag_drained = 4,     ///< drained by an operator: draining
};

}  // namespace detail

template <class Address, class Clock = std::chrono::steady_clock>
class basic_backend {
public:
  using address_type = Address;
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  basic_backend(std::string id, Address address, std::uint32_t weight,
                std::shared_ptr<detail::pool_shared<Clock>> shared, std::int64_t ramp_start_ns)
      : id_(std::move(id)),
        address_(std::move(address)),
        shared_(std::move(shared)),
        weight_(weight),
        ramp_start_(ramp_start_ns),
        breaker_(shared_->config.breaker),
        outlier_(shared_->config.outlier) {}

  basic_backend(const basic_backend&) = delete;
  basic_backend& operator=(const basic_backend&) = delete;

  const std::string& id() const noexcept { return id_; }
  const Address& address() const noexcept { return address_; }

  /// The configured weight (0: standby).
  std::uint32_t weight() const noexcept { return weight_.load(std::memory_order_acquire); }

  /// The weight after slow start, in 1/weight_scale units: weight * weight_scale once ramped.
  std::uint64_t effective_weight(time_point now = Clock::now()) const noexcept {
    std::uint64_t full = std::uint64_t{weight()} * weight_scale;
    const auto window = shared_->config.slow_start.count();
    if (full == 0 || window <= 0) return full;
    std::int64_t elapsed = detail::to_ns<Clock>(now) - ramp_start_.load(std::memory_order_acquire);
    if (elapsed >= window) return full;
    double floor = std::clamp(shared_->config.slow_start_floor, 0.0, 1.0);
    double f = elapsed <= 0 ? floor
                            : floor + (1.0 - floor) * static_cast<double>(elapsed) / static_cast<double>(window);
    return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<double>(full) * f));
  }

  backend_state state(time_point now = Clock::now()) const noexcept {
    auto f = flags_.load(std::memory_order_acquire);
    if (f & (detail::flag_removed | detail::flag_drained)) return backend_state::draining;
    if (outlier_.ejected(now)) return backend_state::ejected;
    if (f & detail::flag_probe_down) return backend_state::unhealthy;
    return backend_state::healthy;
  }

  /// What the last active probe verdict said (true until one says otherwise), whatever the
  /// other states (ejected, draining) hide. A health checker starts from it.
  bool probe_healthy() const noexcept { return !has_flag(detail::flag_probe_down); }
  /// Drained by an operator (pool::drain), until pool::undrain.
  bool drained() const noexcept { return has_flag(detail::flag_drained); }

  /// May a new flow go here: healthy, weight > 0, and its breaker admits. Lock-free.
  bool available(time_point now = Clock::now()) const noexcept {
    return flags_.load(std::memory_order_acquire) == 0 && weight() > 0 && !outlier_.ejected(now) &&
           breaker_.would_admit(now);
  }

  std::uint32_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }

  /// Latency EWMA (0 until the first sample).
  std::chrono::nanoseconds latency() const noexcept {
    return std::chrono::nanoseconds{static_cast<std::int64_t>(ewma_ns_.load(std::memory_order_relaxed))};
  }

  /// Adds a latency sample to the EWMA (lock-free).
  void observe_latency(std::chrono::nanoseconds sample) noexcept {
    if (sample.count() <= 0) return;
    const double s = static_cast<double>(sample.count());
    const double a = std::clamp(shared_->config.latency_alpha, 0.0, 1.0);
    double cur = ewma_ns_.load(std::memory_order_relaxed);
    double next;
    do {
      next = cur == 0.0 ? s : cur + a * (s - cur);
    } while (!ewma_ns_.compare_exchange_weak(cur, next, std::memory_order_relaxed));
  }

  std::uint64_t selections() const noexcept { return selections_.load(std::memory_order_relaxed); }
  std::uint64_t successes() const noexcept { return successes_.load(std::memory_order_relaxed); }
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }
  std::uint64_t ejections() const noexcept { return outlier_.ejections(); }

  backend_stats stats(time_point now = Clock::now()) const noexcept {
    backend_stats s;
    s.state = state(now);
    s.breaker = breaker_.state(now);
    s.weight = weight();
    s.in_flight = in_flight();
    s.latency_ewma = latency();
    s.selections = selections();
    s.successes = successes();
    s.failures = failures();
    s.ejections = ejections();
    return s;
  }

  const health::basic_circuit_breaker<Clock>& breaker() const noexcept { return breaker_; }
  const health::basic_outlier_detector<Clock>& outlier() const noexcept { return outlier_; }

private:
  friend class basic_pool<Address, Clock>;
  friend class basic_handle<basic_backend>;

  /// A new flow: asks the breaker, then counts it. Called by the pool's acquire().
  bool try_admit(time_point now, health::breaker_ticket& ticket) noexcept {
    ticket = breaker_.try_acquire(now);
    if (ticket.kind == health::admission::denied) return false;
    in_flight_.fetch_add(1, std::memory_order_acq_rel);
    selections_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void on_success(health::breaker_ticket t, time_point now) noexcept {
    successes_.fetch_add(1, std::memory_order_relaxed);
    breaker_.on_success(t, now);
    outlier_.on_success();
  }

  void on_failure(health::breaker_ticket t, time_point now) noexcept {
    failures_.fetch_add(1, std::memory_order_relaxed);
    breaker_.on_failure(t, now);
    if (outlier_.on_failure(now)) {
      std::int64_t until = 0;
      // Slow start begins when the ejection ends.
      if (shared_->try_eject(outlier_, now, until)) ramp_start_.store(until, std::memory_order_release);
    }
  }

  void on_cancel(health::breaker_ticket t) noexcept { breaker_.on_cancel(t); }

  void release() noexcept { in_flight_.fetch_sub(1, std::memory_order_acq_rel); }

  void set_weight(std::uint32_t w) noexcept { weight_.store(w, std::memory_order_release); }

  /// Probe result; a down -> up transition restarts slow start and ends an outlier ejection in
  /// progress (the probe saw the backend recover, as Envoy's successful_active_health_check_
  /// uneject_host). Returns whether it changed.
  bool set_probe_health(bool healthy, time_point now) noexcept {
    if (healthy) {
      auto before =
          flags_.fetch_and(static_cast<std::uint8_t>(~detail::flag_probe_down), std::memory_order_acq_rel);
      if (!(before & detail::flag_probe_down)) return false;
      const auto until = detail::to_ns<Clock>(outlier_.ejected_until());
      if (outlier_.uneject(now)) shared_->end_ejection(until, now);
      ramp_start_.store(detail::to_ns<Clock>(now), std::memory_order_release);
      return true;
    }
    auto before = flags_.fetch_or(detail::flag_probe_down, std::memory_order_acq_rel);
    return !(before & detail::flag_probe_down);
  }

  void set_flag(std::uint8_t f, bool on) noexcept {
    if (on) flags_.fetch_or(f, std::memory_order_acq_rel);
    else flags_.fetch_and(static_cast<std::uint8_t>(~f), std::memory_order_acq_rel);
  }
  bool has_flag(std::uint8_t f) const noexcept { return (flags_.load(std::memory_order_acquire) & f) != 0; }

  const std::string id_;
  const Address address_;
  const std::shared_ptr<detail::pool_shared<Clock>> shared_;
  std::atomic<std::uint32_t> weight_;
  std::atomic<std::uint8_t> flags_{0};
  std::atomic<std::int64_t> ramp_start_;
  std::atomic<std::uint32_t> in_flight_{0};
  std::atomic<double> ewma_ns_{0.0};
  std::atomic<std::uint64_t> selections_{0};
  std::atomic<std::uint64_t> successes_{0};
  std::atomic<std::uint64_t> failures_{0};
  health::basic_circuit_breaker<Clock> breaker_;
  health::basic_outlier_detector<Clock> outlier_;
};

}  // namespace rproxy::balance
