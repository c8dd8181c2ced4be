// rproxy/balance/detail/select.hpp: pieces shared by the balancers (not a public API).
//
//   rng               a thread-safe SplitMix64 stream (one atomic add per number), seedable,
//                     copyable, deterministic when used from one thread;
//   uniform(x, n)     maps 64 random bits to [0, n) without modulo bias worth noting;
//   weighted_draw     picks an available backend with probability proportional to its
//                     effective weight: rejection sampling (O(1) expected), then an exact O(n)
//                     pass if that keeps missing;
//   pick_loop         snapshot + clock once, then select -> acquire, retried a few times when
//                     the chosen backend refuses (its breaker's last trial slot went meanwhile);
//   snapshot_cache    a table derived from (snapshot version, weights epoch), built once by
//                     whichever thread needs it first, then read lock-free (published.hpp);
//   copyable_atomic   an atomic that copies its value (so balancers stay value types).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include <rproxy/balance/detail/published.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance::detail {

template <class T>
class copyable_atomic {
public:
  copyable_atomic(T v = T{}) noexcept : v_(v) {}  // NOLINT: implicit by design
  copyable_atomic(const copyable_atomic& o) noexcept : v_(o.v_.load(std::memory_order_relaxed)) {}
  copyable_atomic& operator=(const copyable_atomic& o) noexcept {
    v_.store(o.v_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }
  std::atomic<T>& get() noexcept { return v_; }
  const std::atomic<T>& get() const noexcept { return v_; }

private:
  std::atomic<T> v_;
};

/// SplitMix64 over an atomic counter: thread-safe, lock-free, reproducible from a seed.
class rng {
public:
  explicit rng(std::uint64_t seed = 0x853c49e6748fea9bull) noexcept : state_(seed) {}
  std::uint64_t next() noexcept {
    return mix64(state_.get().fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed) +
                 0x9e3779b97f4a7c15ull);
  }
  void seed(std::uint64_t s) noexcept { state_.get().store(s, std::memory_order_relaxed); }

private:
  copyable_atomic<std::uint64_t> state_;
};

/// SplitMix64 on a plain integer: a per-pick stream seeded from the shared rng (one atomic
/// operation per pick, however many numbers it draws).
class local_rng {
public:
  explicit local_rng(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept { return mix64(state_ += 0x9e3779b97f4a7c15ull); }

private:
  std::uint64_t state_;
};

/// Lemire's multiply-shift: 64 random bits to [0, n).
inline std::uint64_t uniform(std::uint64_t x, std::uint64_t n) noexcept {
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(x) * n) >> 64);
}

/// Weighted choice among the available backends of a snapshot, skipping `exclude`.
/// `bound` must be >= every effective weight (pool.max_weight() * weight_scale).
/// Returns the index, or nullopt when no backend is available.
template <class Snapshot, class Rng, class TimePoint>
std::optional<std::size_t> weighted_draw(const Snapshot& s, Rng& r, TimePoint now, std::uint64_t bound,
                                         const void* exclude = nullptr) noexcept {
  const std::size_t n = s.size();
  if (n == 0) return std::nullopt;
  if (bound > 0) {
    for (int tries = 0; tries < 16; ++tries) {
      auto i = static_cast<std::size_t>(uniform(r.next(), n));
      const auto& b = *s.backends[i];
      if (&b == exclude || !b.available(now)) continue;
      if (uniform(r.next(), bound) < b.effective_weight(now)) return i;
    }
  }
  // Exact pass: total weight, then walk to the drawn point.
  std::uint64_t total = 0;
  for (const auto& b : s.backends)
    if (b.get() != exclude && b->available(now)) total += b->effective_weight(now);
  if (total == 0) return std::nullopt;
  std::uint64_t x = uniform(r.next(), total);
  std::optional<std::size_t> last;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& b = *s.backends[i];
    if (&b == exclude || !b.available(now)) continue;
    std::uint64_t w = b.effective_weight(now);
    if (x < w) return i;
    x -= w;
    last = i;
  }
  return last;  // weights or health changed between the two passes
}

/// select(snapshot, now) -> optional index; then acquire on the pool, retried if refused.
template <class Pool, class Select>
std::optional<typename Pool::handle_type> pick_loop(const Pool& pool, Select&& select) {
  auto snap = pool.current();
  auto now = Pool::clock_type::now();
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::optional<std::size_t> i = select(*snap, now);
    if (!i) return std::nullopt;
    if (auto h = pool.acquire(snap->backends[*i], now)) return h;
  }
  return std::nullopt;
}

/// A value derived from a snapshot and the weights, rebuilt when either changes.
template <class T>
class snapshot_cache {
public:
  struct entry {
    std::uint64_t version;
    std::uint64_t epoch;
    T value;
  };
  using ref = typename published<entry>::ref;

  snapshot_cache() = default;
  snapshot_cache(const snapshot_cache&) noexcept {}  // a copy starts empty
  snapshot_cache& operator=(const snapshot_cache&) noexcept { return *this; }

  /// The entry for (version, epoch); `build()` runs once per change, on one thread.
  /// Read `epoch` before the weights that `build` reads.
  template <class Build>
  ref get(std::uint64_t version, std::uint64_t epoch, Build&& build) const {
    if (auto r = pub_.read(); r && r->version == version && r->epoch == epoch) return r;
    std::lock_guard lk(build_);
    if (auto r = pub_.read(); r && r->version == version && r->epoch == epoch) return r;
    pub_.publish(std::make_shared<const entry>(entry{version, epoch, build()}));
    return pub_.read();
  }

private:
  mutable std::mutex build_;
  mutable published<entry> pub_;
};

}  // namespace rproxy::balance::detail
