// rproxy/balance/ip_hash.hpp: client-IP affinity, as nginx's ip_hash.
//
//     rproxy::balance::ip_hash ih;                     // IPv4 grouped by /24, like nginx
//     if (auto h = ih.pick(pool, ctx.client.address())) ...
//
// hash(key) mod total configured weight selects a backend (so shares follow weights). A given
// client keeps its backend while the backend list and weights stay the same; any change of
// them may move many clients (use consistent_hash when that matters). If the chosen backend is
// unavailable the key is rehashed (up to 20 times), then the next available one is taken.
// Keys: asio::ip::address or tcp::endpoint (IPv4 reduced to its /24 unless disabled), or any
// string key. O(log n) per pick, lock-free after a table is built once per change.
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class ip_hash {
public:
  ip_hash() noexcept = default;
  /// group_ipv4_by_24: hash only the first three octets of IPv4 clients (nginx's default: true).
  explicit ip_hash(bool group_ipv4_by_24) noexcept : group24_(group_ipv4_by_24) {}

  template <class Pool, class Key>
    requires hash_key_type<Key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& key) {
    std::uint64_t h = key_hash(key);
    std::uint64_t epoch = pool.weights_epoch();
    return detail::pick_loop(pool, [&](const auto& snap, auto now) -> std::optional<std::size_t> {
      const std::size_t n = snap.size();
      if (n == 0) return std::nullopt;
      auto table = cache_.get(snap.version, epoch, [&] { return prefix_sums(snap); });
      const auto& sums = table->value;
      const std::uint64_t total = sums.empty() ? 0 : sums.back();
      if (total > 0) {
        std::uint64_t x = h;
        for (int tries = 0; tries < 20; ++tries) {
          auto i = static_cast<std::size_t>(std::upper_bound(sums.begin(), sums.end(), x % total) - sums.begin());
          if (i < n && snap.backends[i]->available(now)) return i;
          x = detail::mix64(x + 0x9e3779b97f4a7c15ull);
        }
      }
      auto start = static_cast<std::size_t>(h % n);
      for (std::size_t k = 0; k < n; ++k)
        if (snap.backends[(start + k) % n]->available(now)) return (start + k) % n;
      return std::nullopt;
    });
  }

private:
  template <class Key>
  std::uint64_t key_hash(const Key& key) const noexcept {
    if constexpr (std::is_same_v<Key, asio::ip::tcp::endpoint>) {
      return key_hash(key.address());
    } else if constexpr (std::is_same_v<Key, asio::ip::address>) {
      if (group24_ && key.is_v4()) {
        auto b = key.to_v4().to_bytes();
        b[3] = 0;
        return hash_key(asio::ip::address(asio::ip::address_v4(b)));
      }
      return hash_key(key);
    } else {
      return hash_key(key);
    }
  }

  template <class Snapshot>
  static std::vector<std::uint64_t> prefix_sums(const Snapshot& snap) {
    std::vector<std::uint64_t> sums;
    sums.reserve(snap.size());
    std::uint64_t acc = 0;
    for (const auto& b : snap.backends) sums.push_back(acc += b->weight());
    return sums;
  }

  bool group24_ = true;
  detail::snapshot_cache<std::vector<std::uint64_t>> cache_;
};

}  // namespace rproxy::balance
