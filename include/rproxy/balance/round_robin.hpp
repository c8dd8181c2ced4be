// rproxy/balance/round_robin.hpp: plain round robin, ignoring weights.
//
//     rproxy::balance::round_robin rr;
//     if (auto h = rr.pick(pool)) ...
//
// Takes the available backends in turn, one flow each (weights are not used, except that a
// weight of 0 means "never"; use weighted_round_robin for weights). The turn of an unavailable
// backend goes to another one chosen by hashing the turn number, so it is spread evenly rather
// than doubling its neighbour's share. O(1) when all are available, O(n) worst case.
// Thread-safe: the turn is one shared atomic counter (per-worker instances rotate separately).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class round_robin {
public:
  round_robin() = default;

  template <class Pool, class Key = no_key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& = {}) {
    return detail::pick_loop(pool, [&](const auto& snap, auto now) -> std::optional<std::size_t> {
      const std::size_t n = snap.size();
      if (n == 0) return std::nullopt;
      const std::uint64_t turn = next_.get().fetch_add(1, std::memory_order_relaxed);
      auto i = static_cast<std::size_t>(turn % n);
      if (snap.backends[i]->available(now)) return i;
      std::uint64_t x = turn;
      for (int tries = 0; tries < 8; ++tries) {
        x = detail::mix64(x + 0x9e3779b97f4a7c15ull);
        i = static_cast<std::size_t>(detail::uniform(x, n));
        if (snap.backends[i]->available(now)) return i;
      }
      for (std::size_t k = 1; k < n; ++k) {  // mostly unavailable: scan
        i = static_cast<std::size_t>((turn + k) % n);
        if (snap.backends[i]->available(now)) return i;
      }
      return std::nullopt;
    });
  }

private:
  detail::copyable_atomic<std::uint64_t> next_{0};
};

}  // namespace rproxy::balance
