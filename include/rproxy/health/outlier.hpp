// rproxy/health/outlier.hpp: passive outlier detection (ejection on consecutive failures).
//
// One `outlier_detector` per backend counts failures in a row. When the count reaches
// `consecutive_failures`, the backend may be ejected: taken out of rotation for
// `base_ejection * n` (capped at `max_ejection`), where n is how many times it was ejected
// recently; n goes back to zero once the backend has stayed in for `max_ejection`.
// A pool-wide guard, `ejection_allowed`, keeps at most `max_ejected_percent` of a pool out
// (at least one backend may always be ejected), so a shared failure cannot empty the pool.
//
//     rproxy::health::outlier_detector od{{.consecutive_failures = 5}};
//     od.on_success();                                       // resets the run of failures
//     if (od.on_failure(now) && rproxy::health::ejection_allowed(ejected, total, pct))
//       od.eject(now);                                       // out until od.ejected_until()
//     if (od.ejected(now)) skip it;
//
// The pool (rproxy/balance/pool.hpp) does this for each backend, serialising the
// guard-then-eject step. Thread safety: all members may be called from several threads;
// `ejected()` is a lock-free read, `eject()` takes a small mutex.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>

namespace rproxy::health {

struct outlier_config {
  std::uint32_t consecutive_failures = 5;  ///< failures in a row that eject (0: off)
  std::chrono::nanoseconds base_ejection = std::chrono::seconds(30);
  std::chrono::nanoseconds max_ejection = std::chrono::seconds(300);
  std::uint32_t max_ejected_percent = 10;  ///< of the pool; at least one may always be ejected

  constexpr bool enabled() const noexcept { return consecutive_failures > 0 && max_ejected_percent > 0; }
  friend bool operator==(const outlier_config&, const outlier_config&) = default;
};

/// The pool-wide guard: may one more backend be ejected while `ejected` of `total` are out?
constexpr bool ejection_allowed(std::size_t ejected, std::size_t total, std::uint32_t max_percent) noexcept {
  if (max_percent == 0 || total == 0) return false;
  std::size_t cap = total * std::min<std::uint32_t>(max_percent, 100) / 100;
  return ejected < std::max<std::size_t>(cap, 1);
}

template <class Clock = std::chrono::steady_clock>
class basic_outlier_detector {
public:
  using clock_type = Clock;
  using time_point = typename Clock::time_point;
  using duration = std::chrono::nanoseconds;

  explicit basic_outlier_detector(const outlier_config& cfg = {}) : cfg_(cfg) {}
  basic_outlier_detector(const basic_outlier_detector&) = delete;
  basic_outlier_detector& operator=(const basic_outlier_detector&) = delete;

  const outlier_config& config() const noexcept { return cfg_; }

  /// A success ends the run of failures.
  void on_success() noexcept { consecutive_.store(0, std::memory_order_relaxed); }

  /// Counts a failure. True when the run has reached the threshold and the backend is not
  /// ejected: the caller should eject() it if the pool-wide guard allows.
  bool on_failure(time_point now = Clock::now()) noexcept {
    std::uint32_t n = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
    return cfg_.enabled() && n >= cfg_.consecutive_failures && !ejected(now);
  }

  /// Ejects from `now` for the back-off duration; returns when the ejection ends.
  time_point eject(time_point now = Clock::now()) noexcept {
    std::lock_guard lk(m_);
    std::int64_t t = ns(now);
    std::int64_t until = until_.load(std::memory_order_relaxed);
    // The back-off multiplier decays once the backend has stayed in for max_ejection.
    if (count_ > 0 && t - until >= cfg_.max_ejection.count()) count_ = 0;
    count_ = std::min<std::uint32_t>(count_ + 1, std::numeric_limits<std::uint32_t>::max() - 1);
    std::int64_t d = backoff(count_).count();
    until_.store(t + d, std::memory_order_release);
    ejections_.fetch_add(1, std::memory_order_relaxed);
    consecutive_.store(0, std::memory_order_relaxed);
    return time_point{std::chrono::duration_cast<typename Clock::duration>(duration{t + d})};
  }

  /// Ends an ejection in progress at `now` (an active health check saw the backend recover).
  /// The back-off multiplier is kept. Returns whether it was ejected.
  bool uneject(time_point now = Clock::now()) noexcept {
    std::lock_guard lk(m_);
    const std::int64_t t = ns(now);
    if (t >= until_.load(std::memory_order_relaxed)) return false;
    until_.store(t, std::memory_order_release);
    consecutive_.store(0, std::memory_order_relaxed);
    return true;
  }

  /// Whether the backend is ejected at `now` (lock-free).
  bool ejected(time_point now = Clock::now()) const noexcept {
    return ns(now) < until_.load(std::memory_order_acquire);
  }

  time_point ejected_until() const noexcept {
    return time_point{std::chrono::duration_cast<typename Clock::duration>(
        duration{until_.load(std::memory_order_acquire)})};
  }

  /// The ejection duration for the n-th recent ejection: base * n, capped at max.
  duration backoff(std::uint32_t n) const noexcept {
    if (n == 0) return duration::zero();
    auto base = cfg_.base_ejection.count();
    if (base > 0 && static_cast<std::int64_t>(n) > cfg_.max_ejection.count() / base) return cfg_.max_ejection;
    return std::min(duration{base * static_cast<std::int64_t>(n)}, cfg_.max_ejection);
  }

  /// Failures in the current run.
  std::uint32_t consecutive_failures() const noexcept { return consecutive_.load(std::memory_order_relaxed); }
  /// Total ejections so far (a metric).
  std::uint64_t ejections() const noexcept { return ejections_.load(std::memory_order_relaxed); }

private:
  static std::int64_t ns(time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  outlier_config cfg_;
  std::atomic<std::uint32_t> consecutive_{0};
  std::atomic<std::int64_t> until_{std::numeric_limits<std::int64_t>::min()};
  std::atomic<std::uint64_t> ejections_{0};
  std::mutex m_;
  std::uint32_t count_ = 0;  ///< recent ejections (back-off multiplier); guarded by m_
};

using outlier_detector = basic_outlier_detector<>;

}  // namespace rproxy::health
