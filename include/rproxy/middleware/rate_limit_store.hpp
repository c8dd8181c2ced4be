// rproxy/middleware/rate_limit_store.hpp: rate-limit algorithms and the counter store behind the
// rate_limit stage.
//
// Algorithms (exact integer arithmetic on nanoseconds, no floating point drift):
//   token_bucket    capacity `burst` (default: limit), refilled at limit/window (GCRA form).
//                   Over any interval of length L it admits at most burst + floor(L*limit/window).
//   sliding_window  the window is cut into `slots` sub-windows; a request passes if the slots
//                   overlapping (now - window, now] hold fewer than `limit` admissions. Counting
//                   whole slots over-estimates, so it never admits more than `limit` in ANY window
//                   of that length (it may refuse up to one slot's worth early).
// Penalty: after `after` refusals (forgotten after `forgive_after` without one) the key is blocked
// for `block`, doubling on each further refusal up to `max_block`.
//
// Store contract (a concept, so a Redis store can replace the local one without touching the
// stage): `acquire(key, policy, now) -> rate_decision`, or an asynchronous
// `async_acquire(key, policy, now) -> asio::awaitable<rate_decision>`.
//
// local_counter_store is one table per process shared by all workers: N shards, each a mutex, a
// hash map (SipHash with a random key) and an LRU list, max_keys entries in total; the least
// recently used key is evicted when full (an evicted key starts over, as if idle). Shared rather
// than per-worker-with-limit/N because SO_REUSEPORT spreads one client's connections over workers
// unevenly, which would make limit/N both too strict and too loose; the lock is held for one
// map lookup and a few integer operations.
//
//     rproxy::middleware::local_counter_store store({.max_keys = 100'000});
//     rproxy::middleware::rate_policy p{{.limit = 10, .window = std::chrono::seconds(1)}};
//     auto d = store.acquire("login|default|203.0.113.7/32", p, std::chrono::steady_clock::now());
//     if (!d.allowed) reject(retry after d.retry_after);
#pragma once

#include <asio/awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rproxy/middleware/detail/siphash.hpp>

namespace rproxy::middleware {

using rate_clock = std::chrono::steady_clock;

enum class rate_algorithm : std::uint8_t { token_bucket, sliding_window };

/// One limit: `limit` requests per `window`.
struct rate_rule {
  rate_algorithm algorithm = rate_algorithm::token_bucket;
  std::uint32_t limit = 10;  ///< 0 refuses everything
  std::chrono::nanoseconds window = std::chrono::seconds(1);
  std::uint32_t burst = 0;   ///< token_bucket capacity; 0: same as limit
  std::uint32_t slots = 10;  ///< sliding_window precision, 1..16

  friend bool operator==(const rate_rule&, const rate_rule&) = default;
};

/// Back-off for repeat offenders.
struct penalty_rule {
  std::uint32_t after = 0;  ///< refusals before the first block; 0: no blocking
  std::chrono::nanoseconds block = std::chrono::seconds(10);
  std::chrono::nanoseconds max_block = std::chrono::hours(1);
  std::chrono::nanoseconds forgive_after = std::chrono::minutes(10);  ///< refusals older than this are forgotten
};

/// Where a limit's counters live when instances share state (cluster/redis_counter_store.hpp);
/// the local store ignores it.
enum class rate_mode : std::uint8_t {
  local,    ///< this process only
  exact,    ///< one atomic Redis script per decision: N instances together admit within the limit
  batched,  ///< local counts synced every interval: at most the limit plus what one interval lets through
};
/// What a shared limit does while Redis cannot be reached.
enum class rate_failure : std::uint8_t {
  local,   ///< count in this process (each instance limits on its own)
  open,    ///< admit
  closed,  ///< refuse (429 with Retry-After)
};
struct rate_sharing {
  rate_mode mode = rate_mode::local;
  rate_failure on_failure = rate_failure::local;
  friend bool operator==(const rate_sharing&, const rate_sharing&) = default;
};

struct rate_policy {
  rate_rule rule;
  penalty_rule penalty;
  rate_sharing sharing{};
};

/// The outcome of one acquire: enough for Retry-After and the X-RateLimit-* headers.
struct rate_decision {
  bool allowed = true;
  bool blocked = false;            ///< refused by a penalty block (not only by the limit)
  std::uint32_t limit = 0;         ///< the rule's limit (X-RateLimit-Limit)
  std::uint32_t remaining = 0;     ///< requests still allowed now (X-RateLimit-Remaining)
  std::chrono::nanoseconds reset{0};        ///< until the limiter is fully replenished
  std::chrono::nanoseconds retry_after{0};  ///< refused: until a request could pass
};

/// A store the stage can call synchronously.
template <class S>
concept counter_store = requires(S& s, std::string_view key, const rate_policy& p, rate_clock::time_point now) {
  { s.acquire(key, p, now) } -> std::same_as<rate_decision>;
};

/// A store the stage must await (a networked store such as Redis).
template <class S>
concept async_counter_store = requires(S& s, std::string_view key, const rate_policy& p, rate_clock::time_point now) {
  { s.async_acquire(key, p, now) } -> std::same_as<asio::awaitable<rate_decision>>;
};

/// An async_counter_store behind one virtual call (cluster::redis_counter_store is one). A
/// stage over it (`basic_rate_limit<shared_counter_store>`) compiles without the store's own
/// code, so the unit that runs an app's flows need not include Redis' client.
class shared_counter_store {
public:
  virtual asio::awaitable<rate_decision> async_acquire(std::string_view key, const rate_policy& p, rate_clock::time_point now) = 0;

protected:
  ~shared_counter_store() = default;
};

/// Per-key limiter state (the algorithms are pure functions on it; a Redis store would keep the
/// same fields in a hash and run the same steps in a Lua script).
struct rate_state {
  static constexpr std::size_t max_slots = 16;
  rate_rule rule{};                  ///< the rule this state was built for (a new rule resets it)
  bool init = false;
  // token bucket
  std::int64_t last_ns = 0;
  std::uint64_t debt = 0;            ///< (theoretical arrival time - last) * limit, in ns*limit
  // sliding window
  std::int64_t newest_slot = 0;
  std::array<std::uint32_t, max_slots + 1> counts{};
  // penalty
  std::uint32_t violations = 0;
  std::int64_t last_violation_ns = 0;
  std::int64_t blocked_until_ns = 0;
};

namespace detail {

inline std::int64_t ns_of(rate_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
inline std::uint64_t ceil_div_u128(unsigned __int128 a, std::uint64_t b) noexcept {
  return static_cast<std::uint64_t>((a + b - 1) / b);
}

/// The rule with defaults applied and bounds enforced (window >= 1us, burst*window < 2^62 ns).
inline rate_rule normalized(rate_rule r) noexcept {
  if (r.window < std::chrono::microseconds(1)) r.window = std::chrono::microseconds(1);
  if (r.burst == 0) r.burst = r.limit;
  r.slots = std::clamp<std::uint32_t>(r.slots, 1, rate_state::max_slots);
  const auto w = static_cast<unsigned __int128>(r.window.count());
  const unsigned __int128 cap = static_cast<unsigned __int128>(1) << 62;
  if (static_cast<unsigned __int128>(r.burst) * w >= cap) r.burst = static_cast<std::uint32_t>(cap / w - 1);
  return r;
}

inline rate_decision token_bucket(rate_state& s, const rate_rule& r, std::int64_t now) noexcept {
  rate_decision d;
  d.limit = r.limit;
  const std::uint64_t w = static_cast<std::uint64_t>(r.window.count());
  const std::uint64_t cap = static_cast<std::uint64_t>(r.burst) * w;  // capacity, in ns*limit
  if (r.limit == 0 || r.burst == 0) {
    d.allowed = false;
    d.retry_after = r.window;
    return d;
  }
  if (!s.init) {
    s.init = true;
    s.last_ns = now;
    s.debt = 0;
  }
  if (now > s.last_ns) {
    unsigned __int128 paid = static_cast<unsigned __int128>(now - s.last_ns) * r.limit;
    s.debt = paid >= s.debt ? 0 : s.debt - static_cast<std::uint64_t>(paid);
    s.last_ns = now;
  }
  // (a clock that goes backwards refills nothing: `now < last` is treated as `now == last`)
  if (s.debt + w <= cap) {
    s.debt += w;
    d.allowed = true;
    d.remaining = static_cast<std::uint32_t>((cap - s.debt) / w);
  } else {
    d.allowed = false;
    d.remaining = 0;
    d.retry_after = std::chrono::nanoseconds(ceil_div_u128(s.debt + w - cap, r.limit));
  }
  d.reset = std::chrono::nanoseconds(ceil_div_u128(s.debt, r.limit));
  return d;
}

inline rate_decision sliding_window(rate_state& s, const rate_rule& r, std::int64_t now) noexcept {
  rate_decision d;
  d.limit = r.limit;
  if (r.limit == 0) {
    d.allowed = false;
    d.retry_after = r.window;
    return d;
  }
  const std::int64_t W = r.window.count();
  const std::int64_t slot = (W + r.slots - 1) / r.slots;
  const std::int64_t ring = static_cast<std::int64_t>(r.slots) + 1;
  auto at = [&](std::int64_t i) -> std::uint32_t& {
    return s.counts[static_cast<std::size_t>(((i % ring) + ring) % ring)];
  };
  const std::int64_t hi = floor_div(now, slot);
  if (!s.init) {
    s.init = true;
    s.counts.fill(0);
    s.newest_slot = hi;
  }
  if (hi > s.newest_slot) {  // advance, clearing the slots that left the ring
    if (hi - s.newest_slot >= ring) s.counts.fill(0);
    else
      for (std::int64_t i = s.newest_slot + 1; i <= hi; ++i) at(i) = 0;
    s.newest_slot = hi;
  }
  // a clock that goes backwards counts into the newest slot
  const std::int64_t cur = std::max(hi, s.newest_slot);
  const std::int64_t lo = std::max(floor_div(now - W + 1, slot), cur - ring + 1);
  std::uint64_t total = 0;
  for (std::int64_t i = lo; i <= cur; ++i) total += at(i);
  auto leaves_at = [&](std::int64_t i) { return (i + 1) * slot + W - 1; };  // slot i out of the window
  if (total < r.limit) {
    ++at(cur);
    d.allowed = true;
    d.remaining = static_cast<std::uint32_t>(r.limit - total - 1);
    d.reset = std::chrono::nanoseconds(std::max<std::int64_t>(0, leaves_at(cur) - now));
    return d;
  }
  d.allowed = false;
  std::uint64_t left = total;
  std::int64_t newest_nonzero = lo;
  for (std::int64_t i = lo; i <= cur; ++i)
    if (at(i) != 0) newest_nonzero = i;
  for (std::int64_t i = lo; i <= cur; ++i) {
    left -= at(i);
    if (left < r.limit) {
      d.retry_after = std::chrono::nanoseconds(std::max<std::int64_t>(1, leaves_at(i) - now));
      break;
    }
  }
  d.reset = std::chrono::nanoseconds(std::max<std::int64_t>(0, leaves_at(newest_nonzero) - now));
  return d;
}

}  // namespace detail

/// One acquire against a key's state: penalty block, then the rule, then penalty bookkeeping.
inline rate_decision apply(rate_state& s, const rate_policy& policy, rate_clock::time_point t) noexcept {
  const rate_rule r = detail::normalized(policy.rule);
  const std::int64_t now = detail::ns_of(t);
  if (s.init && !(s.rule == r)) {  // the config changed: start this key over (keep its penalties)
    rate_state fresh;
    fresh.violations = s.violations;
    fresh.last_violation_ns = s.last_violation_ns;
    fresh.blocked_until_ns = s.blocked_until_ns;
    s = fresh;
  }
  s.rule = r;
  if (s.blocked_until_ns > now) {
    rate_decision d;
    d.allowed = false;
    d.blocked = true;
    d.limit = r.limit;
    d.retry_after = std::chrono::nanoseconds(s.blocked_until_ns - now);
    d.reset = d.retry_after;
    return d;
  }
  rate_decision d = r.algorithm == rate_algorithm::token_bucket ? detail::token_bucket(s, r, now)
                                                                  : detail::sliding_window(s, r, now);
  const penalty_rule& p = policy.penalty;
  if (!d.allowed && p.after > 0) {
    if (s.violations > 0 && now - s.last_violation_ns > p.forgive_after.count()) s.violations = 0;
    ++s.violations;
    s.last_violation_ns = now;
    if (s.violations >= p.after) {
      std::uint32_t level = std::min<std::uint32_t>(s.violations - p.after, 40);
      auto block = p.block.count();
      for (std::uint32_t i = 0; i < level && block < p.max_block.count(); ++i) block *= 2;
      block = std::min(block, p.max_block.count());
      s.blocked_until_ns = now + block;
      d.blocked = true;
      d.retry_after = std::max(d.retry_after, std::chrono::nanoseconds(block));
      d.reset = std::max(d.reset, d.retry_after);
    }
  }
  return d;
}

struct counter_store_config {
  std::size_t max_keys = 100'000;  ///< entries in all shards together (evicting the least recent)
  std::size_t shards = 16;         ///< lock stripes
};

/// The in-process store: sharded, mutex per shard, LRU-bounded.
class local_counter_store {
public:
  using config = counter_store_config;

  explicit local_counter_store(config cfg = {}) {
    std::size_t n = std::clamp<std::size_t>(cfg.shards, 1, 1024);
    if (cfg.max_keys < n) n = std::max<std::size_t>(cfg.max_keys, 1);
    per_shard_ = std::max<std::size_t>(cfg.max_keys / n, 1);
    shards_ = std::vector<std::unique_ptr<shard>>(n);
    for (auto& s : shards_) s = std::make_unique<shard>();
  }

  rate_decision acquire(std::string_view key, const rate_policy& policy, rate_clock::time_point now) {
    const std::size_t h = detail::keyed_string_hash{}(key);
    shard& sh = *shards_[(h >> 32) % shards_.size()];
    std::lock_guard lock(sh.mu);
    return apply(sh.touch(key, per_shard_), policy, now);
  }

  /// Entries held now (<= capacity()).
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& s : shards_) {
      std::lock_guard lock(s->mu);
      n += s->index.size();
    }
    return n;
  }
  std::size_t capacity() const noexcept { return per_shard_ * shards_.size(); }
  std::uint64_t evictions() const {
    std::uint64_t n = 0;
    for (const auto& s : shards_) {
      std::lock_guard lock(s->mu);
      n += s->evicted;
    }
    return n;
  }

  /// Forgets every key (e.g. after a config reload that changes key parts).
  void clear() {
    for (auto& s : shards_) {
      std::lock_guard lock(s->mu);
      s->index.clear();
      s->nodes.clear();
      s->head = s->tail = none;
    }
  }

private:
  static constexpr std::uint32_t none = 0xFFFFFFFFu;

  struct node {
    rate_state state;
    const std::string* key = nullptr;  // the map's copy (node-based map: stable address)
    std::uint32_t prev = none, next = none;
  };

  struct alignas(64) shard {  // own cache lines: workers on different shards do not contend
    mutable std::mutex mu;
    std::unordered_map<std::string, std::uint32_t, detail::keyed_string_hash, std::equal_to<>> index;
    std::vector<node> nodes;
    std::uint32_t head = none, tail = none;  // most / least recently used
    std::uint64_t evicted = 0;

    void unlink(std::uint32_t i) {
      node& n = nodes[i];
      (n.prev == none ? head : nodes[n.prev].next) = n.next;
      (n.next == none ? tail : nodes[n.next].prev) = n.prev;
      n.prev = n.next = none;
    }
    void push_front(std::uint32_t i) {
      node& n = nodes[i];
      n.prev = none;
      n.next = head;
      if (head != none) nodes[head].prev = i;
      head = i;
      if (tail == none) tail = i;
    }

    rate_state& touch(std::string_view key, std::size_t cap) {
      if (auto it = index.find(key); it != index.end()) {
        if (head != it->second) {
          unlink(it->second);
          push_front(it->second);
        }
        return nodes[it->second].state;
      }
      std::uint32_t i;
      if (nodes.size() < cap) {
        i = static_cast<std::uint32_t>(nodes.size());
        nodes.emplace_back();
      } else {  // evict the least recently used key and reuse its node
        i = tail;
        unlink(i);
        index.erase(index.find(*nodes[i].key));
        nodes[i] = node{};
        ++evicted;
      }
      auto [it, fresh] = index.emplace(std::string(key), i);
      (void)fresh;
      nodes[i].key = &it->first;
      push_front(i);
      return nodes[i].state;
    }
  };

  std::size_t per_shard_ = 1;
  std::vector<std::unique_ptr<shard>> shards_;
};

static_assert(counter_store<local_counter_store>);

}  // namespace rproxy::middleware
