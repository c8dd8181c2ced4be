// rproxy/observe/metrics.hpp: the three metric kinds, sharded per worker thread.
//
// Each metric keeps one cache-line-padded slot per worker ("shard"). An update touches only the
// calling thread's shard (chosen by observe::worker_index()) with one relaxed atomic RMW: no lock,
// no allocation, no sharing of a cache line between workers. Reading a value (a scrape) sums the
// shards; relaxed atomics make that data-race free from any thread.
//
// Metrics are normally created by observe::registry (registry.hpp), which gives out stable
// references; the classes can also be used alone:
//
//     rproxy::observe::counter requests{4};            // 4 shards = 4 workers
//     requests.inc();                                  // on any thread
//     rproxy::observe::histogram latency{4, rproxy::observe::default_buckets()};
//     latency.observe(std::chrono::milliseconds(12));  // seconds, as Prometheus wants
//     requests.value();                                // sum over shards
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include <rproxy/observe/worker_index.hpp>

namespace rproxy::observe {

/// Size the shards are padded to, so two workers never write the same cache line.
inline constexpr std::size_t cache_line_size = 64;

namespace detail {

template <class T>
struct alignas(cache_line_size) padded_atomic {
  std::atomic<T> value{};
};

/// One cache line of 64-bit words (histogram shards are a whole number of these).
struct alignas(cache_line_size) word_line {
  static constexpr std::size_t words = cache_line_size / sizeof(std::uint64_t);
  std::atomic<std::uint64_t> w[words]{};
};

/// The calling thread's shard among `shards` (worker indices past the end wrap around).
inline std::size_t shard_of(std::size_t shards) noexcept {
  const std::size_t i = worker_index();
  return i < shards ? i : i % shards;
}

inline std::size_t checked_shards(std::size_t shards) {
  if (shards == 0) throw std::invalid_argument("rproxy::observe: a metric needs at least one shard");
  return shards;
}

}  // namespace detail

/// A monotonically increasing count (requests, bytes, rejections).
class counter {
public:
  explicit counter(std::size_t shards = 1)
      : shards_(detail::checked_shards(shards)),
        slots_(std::make_unique<detail::padded_atomic<std::uint64_t>[]>(shards_)) {}
  counter(const counter&) = delete;
  counter& operator=(const counter&) = delete;

  /// Hot path: one relaxed fetch_add on this worker's own cache line.
  void inc(std::uint64_t n = 1) noexcept {
    slots_[detail::shard_of(shards_)].value.fetch_add(n, std::memory_order_relaxed);
  }

  /// The total over all shards (a scrape; safe from any thread).
  std::uint64_t value() const noexcept {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < shards_; ++i) sum += slots_[i].value.load(std::memory_order_relaxed);
    return sum;
  }

  std::size_t shards() const noexcept { return shards_; }

private:
  std::size_t shards_;
  std::unique_ptr<detail::padded_atomic<std::uint64_t>[]> slots_;
};

/// A value that goes up and down (open connections, in-flight requests). Integral: add/sub are
/// per-shard and the value is the sum, so a connection opened on worker 1 and closed on worker 2
/// still nets to zero. For values computed elsewhere (pool sizes, weights) prefer a callback
/// gauge (registry::add_callback_gauge).
class gauge {
public:
  explicit gauge(std::size_t shards = 1)
      : shards_(detail::checked_shards(shards)),
        slots_(std::make_unique<detail::padded_atomic<std::int64_t>[]>(shards_)) {}
  gauge(const gauge&) = delete;
  gauge& operator=(const gauge&) = delete;

  /// Hot path: one relaxed fetch_add on this worker's own cache line.
  void add(std::int64_t n) noexcept {
    slots_[detail::shard_of(shards_)].value.fetch_add(n, std::memory_order_relaxed);
  }
  void sub(std::int64_t n) noexcept { add(-n); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }

  /// Makes value() == v (control path, O(shards)). Concurrent add()s on any thread are never
  /// lost: each one lands either before the set (overwritten) or after it (kept). Two set()s
  /// racing each other may combine; set a gauge from one thread at a time.
  void set(std::int64_t v) noexcept {
    slots_[detail::shard_of(shards_)].value.fetch_add(v - value(), std::memory_order_relaxed);
  }

  /// The total over all shards (a scrape; safe from any thread).
  std::int64_t value() const noexcept {
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < shards_; ++i) sum += slots_[i].value.load(std::memory_order_relaxed);
    return sum;
  }

  std::size_t shards() const noexcept { return shards_; }

private:
  std::size_t shards_;
  std::unique_ptr<detail::padded_atomic<std::int64_t>[]> slots_;
};

/// Prometheus' default buckets (seconds): .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
inline std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}
/// `count` bounds: start, start*factor, start*factor^2, ... (start > 0, factor > 1).
inline std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (!(start > 0) || !(factor > 1) || count == 0)
    throw std::invalid_argument("rproxy::observe::exponential_buckets: need start > 0, factor > 1, count > 0");
  std::vector<double> b(count);
  for (std::size_t i = 0; i < count; ++i, start *= factor) b[i] = start;
  return b;
}
/// `count` bounds: start, start+width, start+2*width, ... (width > 0).
inline std::vector<double> linear_buckets(double start, double width, std::size_t count) {
  if (!(width > 0) || count == 0)
    throw std::invalid_argument("rproxy::observe::linear_buckets: need width > 0, count > 0");
  std::vector<double> b(count);
  for (std::size_t i = 0; i < count; ++i) b[i] = start + static_cast<double>(i) * width;
  return b;
}

/// A distribution over fixed buckets (latencies, sizes), with a sum and a count.
/// A value v lands in the first bucket whose upper bound b satisfies v <= b ("le"), else in +Inf.
/// NaN observations are dropped (they would poison the sum forever).
class histogram {
public:
  /// What a scrape sees. `buckets` are per bucket, not cumulative: one per bound, then +Inf.
  struct snapshot {
    std::vector<std::uint64_t> buckets;
    double sum = 0;
    std::uint64_t count = 0;  ///< sum of `buckets`
  };

  /// `bounds`: finite, strictly increasing upper bounds (the +Inf bucket is implicit).
  histogram(std::size_t shards, std::vector<double> bounds)
      : shards_(detail::checked_shards(shards)), bounds_(checked_bounds(std::move(bounds))),
        lines_per_shard_((bounds_.size() + 2 + detail::word_line::words - 1) / detail::word_line::words),
        lines_(std::make_unique<detail::word_line[]>(shards_ * lines_per_shard_)) {}
  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;

  /// Hot path: a search over the bounds, then two relaxed RMWs (bucket fetch_add, and a
  /// compare-exchange adding to the sum) on this worker's own cache lines.
  void observe(double v) noexcept {
    if (std::isnan(v)) return;
    const std::size_t base = detail::shard_of(shards_) * lines_per_shard_;
    const auto b = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    word(base, b).fetch_add(1, std::memory_order_relaxed);
    auto& sum = word(base, bounds_.size() + 1);
    std::uint64_t old = sum.load(std::memory_order_relaxed);
    while (!sum.compare_exchange_weak(old, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + v),
                                      std::memory_order_relaxed)) {
    }
  }
  /// Observes a duration in seconds.
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    observe(std::chrono::duration<double>(d).count());
  }

  /// Sums the shards (a scrape; safe from any thread).
  snapshot collect() const {
    snapshot s;
    s.buckets.assign(bounds_.size() + 1, 0);
    for (std::size_t shard = 0; shard < shards_; ++shard) {
      const std::size_t base = shard * lines_per_shard_;
      for (std::size_t b = 0; b <= bounds_.size(); ++b) s.buckets[b] += word(base, b).load(std::memory_order_relaxed);
      s.sum += std::bit_cast<double>(word(base, bounds_.size() + 1).load(std::memory_order_relaxed));
    }
    for (auto n : s.buckets) s.count += n;
    return s;
  }

  std::span<const double> bounds() const noexcept { return bounds_; }
  std::size_t shards() const noexcept { return shards_; }

private:
  static std::vector<double> checked_bounds(std::vector<double> b) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (!std::isfinite(b[i]) || (i > 0 && !(b[i - 1] < b[i])))
        throw std::invalid_argument("rproxy::observe::histogram: bucket bounds must be finite and strictly increasing");
    }
    return b;
  }
  // Word k of a shard starting at line `base` (bucket k, or the sum at k == bounds + 1).
  std::atomic<std::uint64_t>& word(std::size_t base, std::size_t k) const noexcept {
    return lines_[base + k / detail::word_line::words].w[k % detail::word_line::words];
  }

  std::size_t shards_;
  std::vector<double> bounds_;
  std::size_t lines_per_shard_;
  std::unique_ptr<detail::word_line[]> lines_;
};

}  // namespace rproxy::observe
