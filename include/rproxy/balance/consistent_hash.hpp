// rproxy/balance/consistent_hash.hpp: consistent hashing with a Maglev lookup table.
//
//     rproxy::balance::consistent_hash ch;
//     if (auto h = ch.pick(pool, std::string_view{hostname})) ...   // or a cookie, a header, an IP
//
// Maglev (Eisenbud et al., NSDI 2016): each backend fills a prime-sized table along its own
// permutation (derived from its id, not its position), taking turns in proportion to its
// weight. A key's hash indexes the table. Removing one of N backends moves about 1/N of the
// keys (those it held, plus a little), adding one takes about 1/(N+1); shares follow weights.
// Backends that are unavailable stay in the table, so a health flap moves no other key: their
// keys go to the next available entries (up to 64 steps), then to the available backend with
// the highest rendezvous score for the key. Standby (weight 0) backends are left out.
// Slow start does not apply (the table uses configured weights, for stability).
//
// The table (M = smallest prime >= max(100 * N, 4099) entries of 4 bytes) is built by the first
// pick after a change of backends or weights (about a millisecond for hundreds of backends),
// then read lock-free. O(1) per pick.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class consistent_hash {
public:
  /// table_size: entries of the Maglev table (rounded up to a prime); default/0: from the pool size.
  consistent_hash() noexcept = default;
  explicit consistent_hash(std::size_t table_size) noexcept : table_size_(table_size) {}

  template <class Pool, class Key>
    requires hash_key_type<Key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& key) {
    const std::uint64_t h = hash_key(key);
    const std::uint64_t epoch = pool.weights_epoch();
    return detail::pick_loop(pool, [&](const auto& snap, auto now) -> std::optional<std::size_t> {
      if (snap.empty()) return std::nullopt;
      auto t = cache_.get(snap.version, epoch, [&] { return build(snap); });
      const auto& entries = t->value;
      if (!entries.empty()) {
        const std::size_t m = entries.size();
        std::size_t pos = static_cast<std::size_t>(h % m);
        for (std::size_t k = 0; k < std::min<std::size_t>(m, 64); ++k) {
          std::uint32_t i = entries[(pos + k) % m];
          if (snap.backends[i]->available(now)) return i;
        }
      }
      // Rendezvous fallback: stable per key, over whatever is available.
      std::optional<std::size_t> best;
      std::uint64_t best_score = 0;
      for (std::size_t i = 0; i < snap.size(); ++i) {
        const auto& b = *snap.backends[i];
        if (!b.available(now)) continue;
        std::uint64_t s = detail::mix64(h ^ hash_key(b.id(), 0x5bd1e995));
        if (!best || s > best_score) {
          best = i;
          best_score = s;
        }
      }
      return best;
    });
  }

  /// The Maglev table for a snapshot: entry -> backend index (empty if all weights are 0).
  template <class Snapshot>
  std::vector<std::uint32_t> build(const Snapshot& snap) const {
    struct member {
      std::uint32_t index;
      std::uint64_t weight;
      std::uint64_t offset;
      std::uint64_t skip;
      std::uint64_t next = 0;
      std::uint64_t credit = 0;
      std::uint64_t order;
    };
    std::vector<member> ms;
    std::uint64_t wmax = 0;
    for (std::size_t i = 0; i < snap.size(); ++i) {
      const auto& b = *snap.backends[i];
      std::uint64_t w = b.weight();
      if (w == 0) continue;
      ms.push_back({static_cast<std::uint32_t>(i), w, hash_key(b.id(), 1), hash_key(b.id(), 2), 0, 0,
                    hash_key(b.id(), 3)});
      wmax = std::max(wmax, w);
    }
    if (ms.empty()) return {};
    // Fill order independent of config order: a removal shifts no one else's turn.
    std::sort(ms.begin(), ms.end(), [](const member& a, const member& b) { return a.order < b.order; });
    const std::uint64_t m = table_size_ ? next_prime(std::max<std::uint64_t>(table_size_, 2))
                                         : next_prime(std::max<std::uint64_t>(100 * ms.size(), 4099));
    for (auto& x : ms) {
      x.offset %= m;
      x.skip = x.skip % (m - 1) + 1;
    }
    constexpr std::uint32_t empty = ~std::uint32_t{0};
    std::vector<std::uint32_t> entries(m, empty);
    std::uint64_t filled = 0;
    while (filled < m) {
      for (auto& x : ms) {
        x.credit += x.weight;
        while (x.credit >= wmax && filled < m) {
          x.credit -= wmax;
          std::uint64_t c;
          do {
            c = (x.offset + x.next * x.skip) % m;
            ++x.next;
          } while (entries[c] != empty);
          entries[c] = x.index;
          ++filled;
        }
        if (filled == m) break;
      }
    }
    return entries;
  }

private:
  static std::uint64_t next_prime(std::uint64_t n) noexcept {
    auto prime = [](std::uint64_t x) {
      if (x < 2) return false;
      for (std::uint64_t d = 2; d * d <= x; ++d)
        if (x % d == 0) return false;
      return true;
    };
    while (!prime(n)) ++n;
    return n;
  }

  std::size_t table_size_ = 0;
  detail::snapshot_cache<std::vector<std::uint32_t>> cache_;
};

}  // namespace rproxy::balance
