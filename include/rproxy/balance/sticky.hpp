// rproxy/balance/sticky.hpp: session affinity: key -> backend table with expiry, over any
// other balancer.
//
//     rproxy::balance::sticky<rproxy::balance::least_conn> s{{}, {.ttl = std::chrono::minutes(30)}};
//     if (auto h = s.pick(pool, std::string_view{session_cookie})) ...
//
// A key seen before goes to the same backend while that backend is available and the entry
// has not expired (each use extends it by `ttl`). Otherwise the inner balancer picks and the
// table remembers its choice. The table holds at most `max_entries` keys: when full, the
// least recently used entry goes. Entries point at backends weakly: a removed backend's
// entries lapse by themselves. One instance may serve several pools (entries remember theirs).
//
// Thread-safe: the table is split in 16 shards, each behind its own mutex (held only for the
// lookup or the insert, never during the inner pick). For affinity shared between proxy
// instances, a Redis-backed table belongs in cluster/.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <rproxy/balance/backend.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

struct sticky_config {
  std::chrono::nanoseconds ttl = std::chrono::minutes(30);  ///< idle time before an entry lapses
  std::size_t max_entries = 100000;                         ///< bound on the table
};

template <class Inner>
class sticky {
public:
  explicit sticky(Inner inner = {}, sticky_config cfg = {}) : inner_(std::move(inner)), cfg_(cfg) {}
  sticky(const sticky& o) : inner_(o.inner_), cfg_(o.cfg_) {}  // a copy starts with an empty table
  sticky& operator=(const sticky& o) {
    if (this != &o) {
      inner_ = o.inner_;
      cfg_ = o.cfg_;
      clear();
    }
    return *this;
  }

  template <class Pool, class Key>
    requires string_key_type<Key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& key) {
    using backend_type = typename Pool::backend_type;
    using clock = typename Pool::clock_type;
    std::string owned;  // only for keys that are not text already
    std::string_view k;
    if constexpr (std::is_convertible_v<const Key&, std::string_view>) {
      k = key;
    } else {
      owned = key_string(key);
      k = owned;
    }
    auto& sh = shards_[hash_key(k) % shard_count];
    const auto now = clock::now();
    const std::int64_t t = detail::to_ns<clock>(now);

    // A live entry is refreshed on the spot; if its backend then refuses the flow, the
    // inner balancer's choice overwrites it below.
    std::shared_ptr<backend_type> known;
    {
      std::lock_guard lk(sh.m);
      if (auto it = sh.map.find(k); it != sh.map.end()) {
        auto n = it->second;
        if (n->owner == &pool && n->expires > t)
          known = std::static_pointer_cast<backend_type>(n->backend.lock());
        if (known) {
          n->expires = t + cfg_.ttl.count();
          sh.lru.splice(sh.lru.begin(), sh.lru, n);
        } else {
          erase(sh, it);
        }
      }
    }
    if (known) {
      if (auto hd = pool.acquire(known, now)) {
        hits_.fetch_add(1, std::memory_order_relaxed);
        return hd;
      }
    }
    auto hd = inner_.pick(pool, key);
    if (hd) remember(sh, &pool, k, hd->backend_ptr(), t);
    return hd;
  }

  /// Entries in the table (expired ones included until they are met or pushed out).
  std::size_t size() const {
    std::size_t n = 0;
    for (auto& sh : shards_) {
      std::lock_guard lk(sh.m);
      n += sh.map.size();
    }
    return n;
  }
  /// Picks answered from the table.
  std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }

  void clear() {
    for (auto& sh : shards_) {
      std::lock_guard lk(sh.m);
      sh.map.clear();
      sh.lru.clear();
    }
  }

  Inner& inner() noexcept { return inner_; }
  const sticky_config& config() const noexcept { return cfg_; }

private:
  static constexpr std::size_t shard_count = 16;

  struct node {
    std::string key;
    const void* owner = nullptr;  ///< the pool the backend belongs to
    std::weak_ptr<void> backend;
    std::int64_t expires = 0;
  };
  struct string_hash {
    std::size_t operator()(std::string_view s) const noexcept { return static_cast<std::size_t>(hash_key(s)); }
  };
  struct shard {
    mutable std::mutex m;
    std::list<node> lru;  ///< most recently used first
    /// Keys are views of the nodes' own strings (list nodes never move).
    std::unordered_map<std::string_view, typename std::list<node>::iterator, string_hash> map;
  };

  // The map's key views the node's string: drop the map entry first.
  static void erase(shard& sh, typename decltype(shard::map)::iterator it) {
    auto node = it->second;
    sh.map.erase(it);
    sh.lru.erase(node);
  }

  void remember(shard& sh, const void* owner, std::string_view k, const std::shared_ptr<void>& b,
                std::int64_t t) {
    const std::size_t cap = std::max<std::size_t>(1, cfg_.max_entries / shard_count);
    std::lock_guard lk(sh.m);
    if (auto it = sh.map.find(k); it != sh.map.end()) {
      auto n = it->second;
      n->owner = owner;
      n->backend = b;
      n->expires = t + cfg_.ttl.count();
      sh.lru.splice(sh.lru.begin(), sh.lru, n);
      return;
    }
    while (sh.map.size() >= cap && !sh.lru.empty()) {
      sh.map.erase(std::string_view{sh.lru.back().key});
      sh.lru.pop_back();
    }
    sh.lru.push_front(node{std::string(k), owner, b, t + cfg_.ttl.count()});
    sh.map.emplace(sh.lru.front().key, sh.lru.begin());
  }

  Inner inner_;
  sticky_config cfg_;
  mutable std::array<shard, shard_count> shards_;
  std::atomic<std::uint64_t> hits_{0};
};

}  // namespace rproxy::balance
