// rproxy/balance/least_conn.hpp: weighted least connections.
//
//     rproxy::balance::least_conn lc;
//     if (auto h = lc.pick(pool)) ...
//
// Picks the available backend with the lowest in_flight / effective_weight (as nginx's
// least_conn); ties are broken at random in proportion to weight, so idle backends share new
// flows by weight. Best for long flows of uneven length (Minecraft sessions, WebSockets).
// O(n) per pick, lock-free; the tie-break stream is one shared atomic counter, advanced once
// per pick.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class least_conn {
public:
  least_conn() noexcept : least_conn(0x2545f4914f6cdd1dull) {}
  explicit least_conn(std::uint64_t seed) noexcept : rng_(seed) {}

  template <class Pool, class Key = no_key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& = {}) {
    return detail::pick_loop(pool, [&](const auto& snap, auto now) -> std::optional<std::size_t> {
      detail::local_rng r{rng_.next()};
      std::optional<std::size_t> best;
      std::uint64_t best_conns = 0, best_w = 1, tie_total = 0;
      for (std::size_t i = 0; i < snap.size(); ++i) {
        const auto& b = *snap.backends[i];
        if (!b.available(now)) continue;
        std::uint64_t w = b.effective_weight(now);
        std::uint64_t c = b.in_flight();
        // c / w  vs  best_conns / best_w, without division.
        auto lhs = static_cast<unsigned __int128>(c) * best_w;
        auto rhs = static_cast<unsigned __int128>(best_conns) * w;
        if (!best || lhs < rhs) {
          best = i;
          best_conns = c;
          best_w = w;
          tie_total = w;
        } else if (lhs == rhs) {
          tie_total += w;  // weighted reservoir sampling among equals
          if (detail::uniform(r.next(), tie_total) < w) {
            best = i;
            best_conns = c;
            best_w = w;
          }
        }
      }
      return best;
    });
  }

private:
  detail::rng rng_;
};

}  // namespace rproxy::balance
