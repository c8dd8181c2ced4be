// rproxy/middleware/conn_limit.hpp: caps on concurrent connections, per client address group
// (IPv4 /32, IPv6 /64 by default) and in total. on_accept takes a slot, on_close (which always
// runs) gives it back; a key whose count drops to zero is erased, so memory follows the number of
// live connections.
//
// The counter is shared by all workers (one per process): a few shards, each a mutex and a hash
// map; the total is an atomic.
//
//     rproxy::middleware::conn_limit_config cfg{.max_per_ip = 8, .max_total = 10'000};
//     rproxy::middleware::conn_counter counter;
//     auto p = rproxy::make_pipeline(rproxy::middleware::conn_limit{&cfg, &counter, &audit}, ...);
//
// Decision logic without a pipeline: counter.try_acquire(key, per_ip, total) / release(key).
//
// Across instances: basic_conn_limit<Tag, Slots> with an async_conn_slots store (the Redis one
// is cluster/redis_conn_slots.hpp) asks the store on accept, which awaits one round trip; the
// per-address cap then holds for every instance together, max_total still for this process
// (it guards this instance's own sockets and memory). on_failure says what happens while the
// store cannot reach Redis.
//
//     mw::basic_conn_limit<void, rproxy::cluster::redis_conn_slots>{&cfg, &slots_of_this_worker, &audit};
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/middleware/rate_limit_store.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct conn_limit_config {
  std::uint32_t max_per_ip = 0;  ///< per address group; 0: no cap
  std::uint32_t max_total = 0;   ///< all clients together; 0: no cap
  unsigned ipv4_prefix = 32;
  unsigned ipv6_prefix = 64;
  std::string reject_message = "too many connections";
  /// Shared caps (an async_conn_slots store) while Redis is unreachable: local (cap this
  /// instance's connections alone), open (cap none per address) or closed (refuse).
  rate_failure on_failure = rate_failure::local;
  /// A shared slot lapses this long after its instance last refreshed it (every third of it):
  /// what a crashed instance's connections keep counting.
  std::chrono::milliseconds shared_ttl = std::chrono::seconds(30);
};

/// Live connection counts per address group, shared by all workers.
class conn_counter {
public:
  enum class outcome : std::uint8_t { ok, per_ip_full, total_full };

  /// Takes a slot for `k` if both caps allow it (0: no cap).
  outcome try_acquire(const ip_key& k, std::uint32_t max_per_ip, std::uint32_t max_total) {
    if (max_total != 0) {
      auto t = total_.load(std::memory_order_relaxed);
      do {
        if (t >= max_total) return outcome::total_full;
      } while (!total_.compare_exchange_weak(t, t + 1, std::memory_order_relaxed));
    } else {
      total_.fetch_add(1, std::memory_order_relaxed);
    }
    shard& s = shard_of(k);
    std::lock_guard lock(s.mu);
    auto& n = s.counts[k];
    if (max_per_ip != 0 && n >= max_per_ip) {
      if (n == 0) s.counts.erase(k);
      total_.fetch_sub(1, std::memory_order_relaxed);
      return outcome::per_ip_full;
    }
    ++n;
    return outcome::ok;
  }

  /// Gives back a slot taken by try_acquire.
  void release(const ip_key& k) {
    shard& s = shard_of(k);
    {
      std::lock_guard lock(s.mu);
      auto it = s.counts.find(k);
      if (it == s.counts.end()) return;  // not ours: never underflow
      if (--it->second == 0) s.counts.erase(it);
    }
    total_.fetch_sub(1, std::memory_order_relaxed);
  }

  std::uint32_t count(const ip_key& k) const {
    const shard& s = shard_of(k);
    std::lock_guard lock(s.mu);
    auto it = s.counts.find(k);
    return it == s.counts.end() ? 0 : it->second;
  }
  std::uint64_t total() const noexcept { return total_.load(std::memory_order_relaxed); }
  /// Address groups with at least one live connection.
  std::size_t keys() const {
    std::size_t n = 0;
    for (const auto& s : shards_) {
      std::lock_guard lock(s.mu);
      n += s.counts.size();
    }
    return n;
  }

private:
  struct shard {
    mutable std::mutex mu;
    std::unordered_map<ip_key, std::uint32_t, ip_key_hash> counts;
  };
  shard& shard_of(const ip_key& k) { return shards_[ip_key_hash{}(k) % shards_.size()]; }
  const shard& shard_of(const ip_key& k) const { return shards_[ip_key_hash{}(k) % shards_.size()]; }

  std::array<shard, 16> shards_;
  std::atomic<std::uint64_t> total_{0};
};

/// What an async_conn_slots store answers: the outcome, and the slot to give back (0: the
/// connection is counted in this process only).
struct conn_grant {
  conn_counter::outcome outcome = conn_counter::outcome::ok;
  std::uint64_t slot = 0;
};

/// A store of connection slots shared with other instances: acquire awaits the decision
/// (`text` is the address group as text, e.g. "203.0.113.7/32", the shared key), release
/// gives the slot back without waiting.
template <class S>
concept async_conn_slots = requires(S& s, const ip_key& k, std::string_view text, const conn_limit_config& cfg, std::uint64_t slot) {
  { s.async_acquire(k, text, cfg) } -> std::same_as<asio::awaitable<conn_grant>>;
  { s.release(k, slot) };
};

/// An async_conn_slots store behind virtual calls (cluster::redis_conn_slots is one): a stage
/// over it (`shared_conn_limit`) compiles without the store's own code.
class shared_conn_slots {
public:
  /// (`k` by value: a coroutine keeps its parameters, and a caller may pass a temporary.)
  virtual asio::awaitable<conn_grant> async_acquire(ip_key k, std::string_view text, const conn_limit_config& cfg) = 0;
  virtual void release(const ip_key& k, std::uint64_t slot) = 0;

protected:
  ~shared_conn_slots() = default;
};

template <class Tag = void, class Slots = conn_counter>
struct basic_conn_limit {
  static_assert(std::same_as<Slots, conn_counter> || async_conn_slots<Slots>,
                "rproxy::middleware::basic_conn_limit: Slots is conn_counter or has async_acquire(key, text, cfg) -> "
                "asio::awaitable<conn_grant> and release(key, slot)");

  struct state {
    bool counted = false;
    ip_key key{};
    std::uint64_t slot = 0;  ///< the shared store's slot (0: none)
  };

  const conn_limit_config* cfg = nullptr;
  Slots* counter = nullptr;
  audit_log* audit = nullptr;

  template <class Ctx>
    requires std::same_as<Slots, conn_counter>
  rproxy::verdict on_accept(Ctx& ctx) {
    auto& s = ctx.template state<basic_conn_limit>();
    if (s.counted) return rproxy::next;
    ip_key k = group(ctx.client.address(), cfg->ipv4_prefix, cfg->ipv6_prefix);
    return finish(ctx, k, {counter->try_acquire(k, cfg->max_per_ip, cfg->max_total), 0});
  }

  template <class Ctx>
    requires(!std::same_as<Slots, conn_counter>)
  asio::awaitable<rproxy::verdict> on_accept(Ctx& ctx) {
    auto& s = ctx.template state<basic_conn_limit>();
    if (s.counted) co_return rproxy::next;
    const ip_key k = group(ctx.client.address(), cfg->ipv4_prefix, cfg->ipv6_prefix);
    const conn_grant g = co_await counter->async_acquire(k, group_text(k), *cfg);
    co_return finish(ctx, k, g);
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    auto& s = ctx.template state<basic_conn_limit>();
    if (!s.counted) return;
    if constexpr (std::same_as<Slots, conn_counter>) counter->release(s.key);
    else counter->release(s.key, s.slot);
    s.counted = false;
  }

private:
  std::string group_text(const ip_key& k) const {
    return to_string(k, k.is_v4() ? std::min(cfg->ipv4_prefix, 32u) : std::min(cfg->ipv6_prefix, 128u));
  }

  template <class Ctx>
  rproxy::verdict finish(Ctx& ctx, const ip_key& k, conn_grant g) {
    if (g.outcome == conn_counter::outcome::ok) {
      auto& s = ctx.template state<basic_conn_limit>();
      s.counted = true;
      s.key = k;
      s.slot = g.slot;
      return rproxy::next;
    }
    const bool per_ip = g.outcome == conn_counter::outcome::per_ip_full;
    return reject_and_audit(ctx, audit, {reject_code::too_many_connections, cfg->reject_message, 0}, "conn_limit",
                            per_ip ? "per-address connection cap" : "total connection cap", per_ip ? group_text(k) : std::string());
  }
};

using conn_limit = basic_conn_limit<>;
/// The connection cap held with other instances (the store: cluster::redis_conn_slots).
using shared_conn_limit = basic_conn_limit<void, shared_conn_slots>;

}  // namespace rproxy::middleware
