// rproxy/balance/p2c_ewma.hpp: power of two choices on latency EWMA x load (the idea of
// Linkerd's and Finagle's p2c balancers, with a plain EWMA rather than their peak-EWMA).
//
//     rproxy::balance::p2c_ewma p2c;
//     if (auto h = p2c.pick(pool)) { ...; h->observe_latency(rtt); h->finish(ec); }
//
// Draws two distinct available backends, each with probability proportional to its effective
// weight, and keeps the one with the lower cost = latency_ewma * (in_flight + 1). A backend
// with no latency sample yet is costed at the other one's latency (so the two compare on
// in-flight flows); on equal cost the first draw wins, so with no load signal the choice
// follows the weights. O(1) expected, lock-free. Feed it: call observe_latency() (or
// finish(ec, latency)) on the handles, else it degrades to weighted least-in-flight of two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <rproxy/balance/backend.hpp>
#include <rproxy/balance/detail/select.hpp>
#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

class p2c_ewma {
public:
  p2c_ewma() noexcept : p2c_ewma(0x9e3779b97f4a7c15ull) {}
  explicit p2c_ewma(std::uint64_t seed) noexcept : rng_(seed) {}

  template <class Pool, class Key = no_key>
  std::optional<typename Pool::handle_type> pick(const Pool& pool, const Key& = {}) {
    const std::uint64_t bound = std::uint64_t{pool.max_weight()} * weight_scale;
    return detail::pick_loop(pool, [&](const auto& snap, auto now) -> std::optional<std::size_t> {
      detail::local_rng r{rng_.next()};
      auto a = detail::weighted_draw(snap, r, now, bound);
      if (!a) return std::nullopt;
      auto b = detail::weighted_draw(snap, r, now, bound, snap.backends[*a].get());
      if (!b) return a;
      return cost_less(*snap.backends[*b], *snap.backends[*a]) ? b : a;
    });
  }

private:
  template <class Backend>
  static bool cost_less(const Backend& x, const Backend& y) noexcept {
    double lx = static_cast<double>(x.latency().count());
    double ly = static_cast<double>(y.latency().count());
    if (lx == 0.0) lx = ly;
    if (ly == 0.0) ly = lx;
    if (lx == 0.0) lx = ly = 1.0;
    return lx * (x.in_flight() + 1.0) < ly * (y.in_flight() + 1.0);
  }

  detail::rng rng_;
};

}  // namespace rproxy::balance
