// rproxy/balance/random.hpp: weighted random choice among available backends.
//
//     rproxy::balance::random r{/*seed*/ 42};
//     if (auto h = r.pick(pool)) ...
//
// Each backend is chosen with probability effective_weight / total over the available ones.
// O(1) expected (rejection sampling against the pool's largest weight), O(n) worst case.
// Thread-safe: one instance may serve every worker (its random stream is one atomic counter,
// advanced once per pick);
// per-worker instances avoid even that shared cache line. Deterministic for one thread and seed.
#pragma once

#include <cstdint>
#include <optional>

#include <rproxy/balance/backend.hpp>
#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class random {
public:
  random() noexcept : random(0x853c49e6748fea9bull) {}
  explicit random(std::uint64_t seed) noexcept : rng_(seed) {}

  template <class Pool, class Key = no_key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& = {}) {
    const std::uint64_t bound = std::uint64_t{pool.max_weight()} * weight_scale;
    return detail::pick_loop(pool, [&](const auto& snap, auto now) {
      detail::local_rng r{rng_.next()};
      return detail::weighted_draw(snap, r, now, bound);
    });
  }

private:
  detail::rng rng_;
};

}  // namespace rproxy::balance
