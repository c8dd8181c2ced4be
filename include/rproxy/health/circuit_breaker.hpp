// rproxy/health/circuit_breaker.hpp: a per-backend circuit breaker, closed -> open -> half-open.
//
// Closed: every request goes through; failures are counted. The breaker opens after
// `consecutive_failures` failures in a row, or when the failure ratio over the sliding `window`
// reaches `failure_ratio` (with at least `min_requests` results in it). Open: nothing goes
// through for `cool_down`. Half-open: at most `half_open_trials` trial requests at a time go
// through; the first trial that succeeds closes the breaker, the first that fails opens it again.
//
//     rproxy::health::circuit_breaker cb{{.consecutive_failures = 5}};
//     auto t = cb.try_acquire(now);              // at pick time
//     if (t.kind == rproxy::health::admission::denied) pick another backend;
//     ...
//     ok ? cb.on_success(t, now) : cb.on_failure(t, now);   // or cb.on_cancel(t): no outcome
//
// Thread safety: every member may be called from several threads. `would_admit` and the
// closed-state `try_acquire` are lock-free reads (the pick path); recording results and the
// open/half-open transitions take a small per-breaker mutex.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

namespace rproxy::health {

enum class breaker_state : std::uint8_t { closed, open, half_open };

constexpr std::string_view to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "unknown";
}

struct breaker_config {
  std::uint32_t consecutive_failures = 5;  ///< open after this many failures in a row (0: off)
  double failure_ratio = 0.0;              ///< open when failures / results in `window` reach this (0: off)
  std::uint32_t min_requests = 20;         ///< ...and the window holds at least this many results
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  std::uint32_t window_buckets = 10;       ///< resolution of the sliding window
  std::chrono::nanoseconds cool_down = std::chrono::seconds(5);
  std::uint32_t half_open_trials = 1;      ///< trial requests in flight at once while half-open (>= 1)

  friend bool operator==(const breaker_config&, const breaker_config&) = default;

  /// A configuration that never opens (the pool's default).
  static constexpr breaker_config disabled() noexcept {
    breaker_config c;
    c.consecutive_failures = 0;
    c.failure_ratio = 0.0;
    return c;
  }
  constexpr bool enabled() const noexcept { return consecutive_failures > 0 || failure_ratio > 0.0; }
};

/// What try_acquire decided.
enum class admission : std::uint8_t {
  denied,   ///< open, or half-open with every trial slot taken
  allowed,  ///< closed: an ordinary request
  trial,    ///< half-open: a trial request; its outcome decides the next state
};

/// Returned by try_acquire and handed back with the outcome.
struct breaker_ticket {
  admission kind = admission::allowed;
  std::uint32_t generation = 0;  ///< which half-open period a trial belongs to
};

template <class Clock = std::chrono::steady_clock>
class basic_circuit_breaker {
public:
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  explicit basic_circuit_breaker(const breaker_config& cfg = {})
      : cfg_(cfg), buckets_(std::max<std::uint32_t>(cfg.window_buckets, 1)) {
    cfg_.half_open_trials = std::max<std::uint32_t>(cfg_.half_open_trials, 1);
  }

  basic_circuit_breaker(const basic_circuit_breaker&) = delete;
  basic_circuit_breaker& operator=(const basic_circuit_breaker&) = delete;

  const breaker_config& config() const noexcept { return cfg_; }

  /// The state as seen at `now` (an open breaker whose cool-down has passed reads half-open).
  breaker_state state(time_point now = Clock::now()) const noexcept {
    auto s = static_cast<breaker_state>(state_.load(std::memory_order_acquire));
    if (s == breaker_state::open && ns(now) >= open_until_.load(std::memory_order_acquire))
      return breaker_state::half_open;
    return s;
  }

  /// Whether try_acquire(now) would let a request through (no side effect; lock-free).
  bool would_admit(time_point now = Clock::now()) const noexcept {
    switch (static_cast<breaker_state>(state_.load(std::memory_order_acquire))) {
      case breaker_state::closed: return true;
      case breaker_state::open:
        return ns(now) >= open_until_.load(std::memory_order_acquire);
      case breaker_state::half_open:
        return trials_.load(std::memory_order_acquire) < cfg_.half_open_trials;
    }
    return false;
  }

  /// Admits a request or not; a half-open admission takes one trial slot.
  breaker_ticket try_acquire(time_point now = Clock::now()) noexcept {
    if (state_.load(std::memory_order_acquire) == static_cast<std::uint8_t>(breaker_state::closed))
      return {admission::allowed, 0};
    std::lock_guard lk(m_);
    auto s = static_cast<breaker_state>(state_.load(std::memory_order_relaxed));
    if (s == breaker_state::closed) return {admission::allowed, 0};
    if (s == breaker_state::open) {
      if (ns(now) < open_until_.load(std::memory_order_relaxed)) return {admission::denied, 0};
      enter_half_open();
    }
    if (trials_.load(std::memory_order_relaxed) >= cfg_.half_open_trials) return {admission::denied, 0};
    trials_.fetch_add(1, std::memory_order_acq_rel);
    return {admission::trial, generation_};
  }

  void on_success(breaker_ticket t, time_point now = Clock::now()) noexcept { record(t, true, now); }
  void on_failure(breaker_ticket t, time_point now = Clock::now()) noexcept { record(t, false, now); }

  /// The request ended with no outcome (client left, cancelled): frees its trial slot.
  void on_cancel(breaker_ticket t) noexcept {
    if (t.kind != admission::trial) return;
    std::lock_guard lk(m_);
    if (current_trial(t)) trials_.fetch_sub(1, std::memory_order_acq_rel);
  }

  /// Times the breaker has opened (a metric).
  std::uint64_t opens() const noexcept { return opens_.load(std::memory_order_relaxed); }
  /// Trial requests in flight now (half-open only).
  std::uint32_t trials_in_flight() const noexcept { return trials_.load(std::memory_order_relaxed); }

private:
  struct bucket {
    std::int64_t index = -1;  ///< which slice of time it counts (ns / bucket width)
    std::uint32_t successes = 0;
    std::uint32_t failures = 0;
  };

  static std::int64_t ns(time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  bool current_trial(breaker_ticket t) const noexcept {
    return state_.load(std::memory_order_relaxed) == static_cast<std::uint8_t>(breaker_state::half_open) &&
           t.generation == generation_;
  }

  void record(breaker_ticket t, bool ok, time_point now) noexcept {
    if (!cfg_.enabled() || t.kind == admission::denied) return;
    std::lock_guard lk(m_);
    auto s = static_cast<breaker_state>(state_.load(std::memory_order_relaxed));
    if (t.kind == admission::trial) {
      if (!current_trial(t)) return;  // a late result from an earlier half-open period
      trials_.fetch_sub(1, std::memory_order_acq_rel);
      if (ok) close();
      else open(now);
      return;
    }
    if (s != breaker_state::closed) return;  // admitted before the breaker opened: too late to count
    consecutive_ = ok ? 0 : consecutive_ + 1;
    if (cfg_.failure_ratio > 0.0) {
      auto& b = slot(now);
      (ok ? b.successes : b.failures)++;
    }
    if (should_open(now)) open(now);
  }

  bucket& slot(time_point now) noexcept {
    std::int64_t width = bucket_width();
    std::int64_t idx = ns(now) / width;
    auto& b = buckets_[static_cast<std::size_t>(idx % static_cast<std::int64_t>(buckets_.size()))];
    if (b.index != idx) b = bucket{idx, 0, 0};
    return b;
  }

  std::int64_t bucket_width() const noexcept {
    return std::max<std::int64_t>(1, cfg_.window.count() / static_cast<std::int64_t>(buckets_.size()));
  }

  bool should_open(time_point now) const noexcept {
    if (cfg_.consecutive_failures > 0 && consecutive_ >= cfg_.consecutive_failures) return true;
    if (cfg_.failure_ratio <= 0.0) return false;
    std::int64_t idx = ns(now) / bucket_width();
    std::uint64_t ok = 0, bad = 0;
    for (const auto& b : buckets_) {
      if (b.index > idx - static_cast<std::int64_t>(buckets_.size()) && b.index <= idx) {
        ok += b.successes;
        bad += b.failures;
      }
    }
    std::uint64_t total = ok + bad;
    return total > 0 && total >= cfg_.min_requests &&
           static_cast<double>(bad) >= cfg_.failure_ratio * static_cast<double>(total);
  }

  void open(time_point now) noexcept {
    open_until_.store(ns(now) + cfg_.cool_down.count(), std::memory_order_release);
    trials_.store(0, std::memory_order_release);
    state_.store(static_cast<std::uint8_t>(breaker_state::open), std::memory_order_release);
    opens_.fetch_add(1, std::memory_order_relaxed);
  }

  void enter_half_open() noexcept {
    ++generation_;
    trials_.store(0, std::memory_order_release);
    state_.store(static_cast<std::uint8_t>(breaker_state::half_open), std::memory_order_release);
  }

  void close() noexcept {
    consecutive_ = 0;
    for (auto& b : buckets_) b = bucket{};
    trials_.store(0, std::memory_order_release);
    state_.store(static_cast<std::uint8_t>(breaker_state::closed), std::memory_order_release);
  }

  breaker_config cfg_;
  std::atomic<std::uint8_t> state_{static_cast<std::uint8_t>(breaker_state::closed)};
  std::atomic<std::int64_t> open_until_{0};
  std::atomic<std::uint32_t> trials_{0};
  std::atomic<std::uint64_t> opens_{0};
  std::mutex m_;
  // Guarded by m_:
  std::uint32_t generation_ = 0;
  std::uint32_t consecutive_ = 0;
  std::vector<bucket> buckets_;
};

using circuit_breaker = basic_circuit_breaker<>;

}  // namespace rproxy::health
