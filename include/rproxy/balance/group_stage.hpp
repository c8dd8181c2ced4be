// rproxy/balance/group_stage.hpp: a balancer stage over several pools, one per backend group,
// that picks from the group an earlier stage chose for the flow (an HTTP route's weighted
// split, a host's server): the route -> pool -> backend step of a gateway.
//
//     std::vector<std::shared_ptr<rproxy::balance::upstream_pool>> pools = ...;    // per config version
//     std::vector<rproxy::balance::any_balancer> balancers = ...;                  // one per pool, per worker
//     auto pick_group = [t = &table](const auto& ctx) -> std::size_t { ... };      // index into pools
//     rproxy::balance::group_stage stage{pools, std::move(balancers), pick_group,
//                                        {.retry_after_s = 1}};
//
// on_route asks `select(ctx)` for the group (an index; one past the end: none, the flow is
// refused as unavailable with "no backend group"), picks with that group's balancer (connect
// failures are reported and avoided across retries, as balance/flow_pick.hpp does) and sets
// ctx.backend and, when the pool's addresses carry one, ctx.proxy_out. With no backend up in
// the group: reject unavailable with the options' message and Retry-After hint (HTTP: 503 +
// Retry-After); when what keeps every otherwise usable backend out is its circuit breaker, the
// refusal says so (cause "breaker_open", options' breaker_open text, the same hint). on_close
// reports the outcome and releases the backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/balance/backend.hpp>
#include <rproxy/balance/flow_pick.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::balance {

struct group_stage_options {
  std::string_view no_backend = "no backend available";  ///< the refusal's text (config-owned)
  std::uint32_t retry_after_s = 0;                       ///< the refusal's Retry-After (0: none)
  std::string_view breaker_open = "circuit breaker open";  ///< the refusal's text when breakers are what is open
};

namespace detail {
/// Whether the pool has backends that are up, weighted and drained of nothing but their
/// circuit breaker's consent, and no backend a new flow could go to: the breakers refuse.
template <class Pool>
bool breakers_refuse(const Pool& pool) {
  if constexpr (requires(const typename Pool::backend_type& b) { b.breaker().would_admit(); }) {
    const auto now = Pool::clock_type::now();
    bool any = false;
    for (const auto& b : pool.current()->backends) {
      if (b->available(now)) return false;
      any = any || (b->state(now) == backend_state::healthy && b->weight() > 0 && !b->breaker().would_admit(now));
    }
    return any;
  } else {
    return false;
  }
}
}  // namespace detail

template <class Pool, class Balancer, class Select, class KeyFn = client_address_key>
class group_stage {
public:
  /// Per-flow state: the pick from the flow's group.
  struct state : flow_pick<Pool> {};

  /// `balancers[i]` picks from `pools[i]` (as many of each).
  group_stage(std::vector<std::shared_ptr<Pool>> pools, std::vector<Balancer> balancers, Select select,
              group_stage_options o = {}, KeyFn key = {})
      : pools_(std::move(pools)), balancers_(std::move(balancers)), select_(std::move(select)), o_(o), key_(std::move(key)) {
    balancers_.resize(pools_.size());
  }

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    const std::size_t g = select_(std::as_const(ctx));
    auto& fp = ctx.template state<group_stage>();
    if (g >= pools_.size()) {
      fp.finish({});
      return rproxy::reject(rproxy::reject_code::unavailable, "no backend group");
    }
    const auto* h = fp.pick(*pools_[g], balancers_[g], key_(std::as_const(ctx)), ctx);
    if (!h) {
      if (!ctx.out_of_attempts && detail::breakers_refuse(*pools_[g]))
        return rproxy::reject({rproxy::reject_code::unavailable, o_.breaker_open, o_.retry_after_s, "breaker_open"});
      return rproxy::reject(rproxy::reject_code::unavailable, o_.no_backend, o_.retry_after_s);
    }
    ctx.backend = detail::endpoint_of((*h)->address());
    if constexpr (requires { (*h)->address().proxy; }) ctx.proxy_out = (*h)->address().proxy;
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    ctx.template state<group_stage>().finish(ec);
  }

  const std::vector<std::shared_ptr<Pool>>& pools() const noexcept { return pools_; }

private:
  std::vector<std::shared_ptr<Pool>> pools_;
  std::vector<Balancer> balancers_;
  Select select_;
  group_stage_options o_;
  KeyFn key_;
};

template <class Pool, class Balancer, class Select>
group_stage(std::vector<std::shared_ptr<Pool>>, std::vector<Balancer>, Select, group_stage_options = {})
    -> group_stage<Pool, Balancer, Select>;

}  // namespace rproxy::balance
