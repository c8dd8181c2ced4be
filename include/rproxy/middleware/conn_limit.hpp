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
#pragma once

#include <asio/ip/address.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <system_error>
#include <unordered_map>

#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct conn_limit_config {
  std::uint32_t max_per_ip = 0;  ///< per address group; 0: no cap
  std::uint32_t max_total = 0;   ///< all clients together; 0: no cap
  unsigned ipv4_prefix = 32;
  unsigned ipv6_prefix = 64;
  std::string reject_message = "too many connections";
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

template <class Tag = void>
struct basic_conn_limit {
  struct state {
    bool counted = false;
    ip_key key{};
  };

  const conn_limit_config* cfg = nullptr;
  conn_counter* counter = nullptr;
  audit_log* audit = nullptr;

  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    auto& s = ctx.template state<basic_conn_limit>();
    if (s.counted) return rproxy::next;
    ip_key k = group(ctx.client.address(), cfg->ipv4_prefix, cfg->ipv6_prefix);
    auto r = counter->try_acquire(k, cfg->max_per_ip, cfg->max_total);
    if (r == conn_counter::outcome::ok) {
      s.counted = true;
      s.key = k;
      return rproxy::next;
    }
    const bool per_ip = r == conn_counter::outcome::per_ip_full;
    std::string key;
    if (per_ip) key = to_string(k, k.is_v4() ? std::min(cfg->ipv4_prefix, 32u) : std::min(cfg->ipv6_prefix, 128u));
    return reject_and_audit(ctx, audit, {reject_code::too_many_connections, cfg->reject_message, 0}, "conn_limit",
                            per_ip ? "per-address connection cap" : "total connection cap", key);
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    auto& s = ctx.template state<basic_conn_limit>();
    if (!s.counted) return;
    counter->release(s.key);
    s.counted = false;
  }
};

using conn_limit = basic_conn_limit<>;

}  // namespace rproxy::middleware
