// rproxy/balance/weighted_round_robin.hpp: smooth weighted round robin, as nginx does it.
//
//     rproxy::balance::weighted_round_robin wrr;
//     if (auto h = wrr.pick(pool)) ...
//
// Each pick adds every available backend's effective weight to its running score, takes the
// highest score (first on ties) and subtracts the total from it. Weights {5, 1, 1} give
// a a b a c a a: each backend's share is exact over every period of sum(weights) picks, and a
// heavy backend's turns are spread out instead of coming in bursts. Unavailable backends are
// left out of the round (their share goes to the others); slow start lowers the weight.
// Scores restart when the pool's backend list changes.
//
// O(n) per pick under a short mutex of this instance: one instance shared by all workers gives
// the exact global sequence; an instance per worker avoids the lock contention.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class weighted_round_robin {
public:
  weighted_round_robin() = default;
  weighted_round_robin(const weighted_round_robin& o) : version_(), current_() {
    std::lock_guard lk(o.m_);
    version_ = o.version_;
    current_ = o.current_;
  }
  weighted_round_robin& operator=(const weighted_round_robin& o) {
    if (this != &o) {
      std::scoped_lock lk(m_, o.m_);
      version_ = o.version_;
      current_ = o.current_;
    }
    return *this;
  }

  template <class Pool, class Key = no_key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& = {}) {
    return detail::pick_loop(pool, [&](const auto& snap, auto now) -> std::optional<std::size_t> {
      const std::size_t n = snap.size();
      std::lock_guard lk(m_);
      if (version_ != snap.version || current_.size() != n) {
        version_ = snap.version;
        current_.assign(n, 0);
      }
      std::int64_t total = 0;
      std::optional<std::size_t> best;
      for (std::size_t i = 0; i < n; ++i) {
        const auto& b = *snap.backends[i];
        if (!b.available(now)) continue;
        auto w = static_cast<std::int64_t>(b.effective_weight(now));
        current_[i] += w;
        total += w;
        if (!best || current_[i] > current_[*best]) best = i;
      }
      if (best) current_[*best] -= total;
      return best;
    });
  }

private:
  mutable std::mutex m_;
  std::uint64_t version_ = ~std::uint64_t{0};
  std::vector<std::int64_t> current_;
};

}  // namespace rproxy::balance
