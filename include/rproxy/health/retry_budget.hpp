// rproxy/health/retry_budget.hpp: a retry budget (as Envoy and Linkerd have) and a retry policy.
//
// Retries are allowed only while, over a sliding `window`,
//     retries + 1 <= ratio * requests + min_retries_per_second * window_seconds
// so a failing backend cannot turn every request into several (retry storms), while a quiet
// service still gets a few retries per second (the floor).
//
//     rproxy::health::retry_budget budget{{.ratio = 0.2, .min_retries_per_second = 10}};
//     budget.on_request();                              // each original request
//     if (rproxy::health::retry_safe(ec, "GET") && budget.try_retry()) retry...;
//
//     rproxy::health::retry_policy policy{.max_retries = 2};
//     if (policy.should_retry(ec, method, retries_so_far, budget)) retry...;
//
// retry_safe: a retry is safe when nothing reached the backend (`ec` compares equal to
// rproxy::condition::retry_safe, e.g. a refused connect), or when the request is idempotent
// (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) and the failure was not the client's.
//
// Thread safety: the budget is lock-free (one CAS per counted event), shared by all workers.
// Two threads racing for the last retry may both get it: the budget can overshoot by at most
// the number of threads.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/core/error.hpp>

namespace rproxy::health {

struct retry_budget_config {
  double ratio = 0.2;                          ///< retries allowed per original request
  std::uint32_t min_retries_per_second = 10;   ///< floor, whatever the traffic
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  std::uint32_t buckets = 10;                  ///< resolution of the sliding window (1..1024)
};

template <class Clock = std::chrono::steady_clock>
class basic_retry_budget {
public:
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  explicit basic_retry_budget(const retry_budget_config& cfg = {})
      : cfg_(cfg),
        n_(std::clamp<std::uint32_t>(cfg.buckets, 1, 1024)),
        width_(std::max<std::int64_t>(1, cfg.window.count() / n_)),
        slots_(std::make_unique<std::atomic<std::uint64_t>[]>(n_)) {
    for (std::uint32_t i = 0; i < n_; ++i) slots_[i].store(0, std::memory_order_relaxed);
  }
  basic_retry_budget(const basic_retry_budget&) = delete;
  basic_retry_budget& operator=(const basic_retry_budget&) = delete;

  const retry_budget_config& config() const noexcept { return cfg_; }

  /// Counts an original request (not a retry): it earns `ratio` retries for the window.
  void on_request(time_point now = Clock::now()) noexcept { add(now, 1, 0); }

  /// True, and counts the retry, when the budget has room for one more.
  bool try_retry(time_point now = Clock::now()) noexcept {
    auto [req, ret] = totals(now);
    if (static_cast<double>(ret + 1) > allowance(req)) return false;
    add(now, 0, 1);
    return true;
  }

  /// Original requests counted in the window ending at `now`.
  std::uint64_t requests(time_point now = Clock::now()) const noexcept { return totals(now).first; }
  /// Retries counted in the window ending at `now`.
  std::uint64_t retries(time_point now = Clock::now()) const noexcept { return totals(now).second; }
  /// Retries the window allows in total at `now` (spent or not).
  double allowed(time_point now = Clock::now()) const noexcept { return allowance(totals(now).first); }

private:
  // A slot packs: tag (16 bits: which slice of time it counts) | requests (24) | retries (24).
  static constexpr std::uint64_t count_max = (1u << 24) - 1;

  static std::int64_t ns(time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  static std::uint64_t tag_of(std::int64_t tick) noexcept { return static_cast<std::uint64_t>(tick) & 0xffff; }
  static std::uint64_t pack(std::uint64_t tag, std::uint64_t req, std::uint64_t ret) noexcept {
    return (tag << 48) | (req << 24) | ret;
  }

  std::int64_t tick(time_point now) const noexcept {
    std::int64_t t = ns(now);
    return t >= 0 ? t / width_ : (t - width_ + 1) / width_;
  }
  std::size_t index(std::int64_t tick) const noexcept {
    auto n = static_cast<std::int64_t>(n_);
    return static_cast<std::size_t>(((tick % n) + n) % n);
  }

  double allowance(std::uint64_t requests) const noexcept {
    double window_s = std::chrono::duration<double>(cfg_.window).count();
    return cfg_.ratio * static_cast<double>(requests) + cfg_.min_retries_per_second * window_s;
  }

  void add(time_point now, std::uint64_t req, std::uint64_t ret) noexcept {
    std::int64_t t = tick(now);
    std::uint64_t tag = tag_of(t);
    auto& slot = slots_[index(t)];
    std::uint64_t cur = slot.load(std::memory_order_relaxed);
    for (;;) {
      std::uint64_t r0 = 0, q0 = 0;
      if ((cur >> 48) == tag) {
        q0 = (cur >> 24) & count_max;
        r0 = cur & count_max;
      }
      std::uint64_t next = pack(tag, std::min(q0 + req, count_max), std::min(r0 + ret, count_max));
      if (slot.compare_exchange_weak(cur, next, std::memory_order_acq_rel, std::memory_order_relaxed)) return;
    }
  }

  std::pair<std::uint64_t, std::uint64_t> totals(time_point now) const noexcept {
    std::int64_t t = tick(now);
    std::uint64_t req = 0, ret = 0;
    for (std::uint32_t k = 0; k < n_; ++k) {
      std::int64_t tk = t - static_cast<std::int64_t>(k);
      std::uint64_t v = slots_[index(tk)].load(std::memory_order_acquire);
      if ((v >> 48) != tag_of(tk)) continue;  // stale: counts an older slice
      req += (v >> 24) & count_max;
      ret += v & count_max;
    }
    return {req, ret};
  }

  retry_budget_config cfg_;
  std::uint32_t n_;
  std::int64_t width_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> slots_;
};

using retry_budget = basic_retry_budget<>;

/// Methods that may be repeated without changing the result (RFC 9110 section 9.2.2).
/// Method names are case-sensitive.
constexpr bool idempotent(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

/// Whether a failed attempt may be retried on another backend: nothing reached the backend
/// (`ec == rproxy::condition::retry_safe`), or the request is idempotent and the client is not
/// the one that failed. Pass an empty method for protocols without one (then only the first).
inline bool retry_safe(const std::error_code& ec, std::string_view method = {}) noexcept {
  if (!ec) return false;
  if (ec == rproxy::condition::retry_safe) return true;
  return idempotent(method) && ec != rproxy::condition::downstream;
}

/// Retry decision: safe (retry_safe), under max_retries, and within the budget.
struct retry_policy {
  std::uint32_t max_retries = 1;  ///< retries per request, on top of the first attempt

  template <class Clock>
  bool should_retry(const std::error_code& ec, std::string_view method, std::uint32_t retries_done,
                    basic_retry_budget<Clock>& budget,
                    typename Clock::time_point now = Clock::now()) const noexcept {
    return retries_done < max_retries && retry_safe(ec, method) && budget.try_retry(now);
  }
};

}  // namespace rproxy::health
