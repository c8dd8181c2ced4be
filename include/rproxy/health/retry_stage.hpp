// rproxy/health/retry_stage.hpp: a stage that applies a retry policy (health/retry_block.hpp)
// to each flow: how many times a failed attempt goes to another backend, after which failures,
// within a retry budget shared by every worker.
//
//     std::vector<rproxy::health::retry_rule> rules = ...;     // per route, per config version
//     auto pick = [&](const auto& ctx) -> const rproxy::health::retry_rule* { ... };   // null: no policy
//     auto p = rproxy::make_pipeline<proto>(..., rproxy::health::retry_stage{pick}, balancer_stage);
//
// List it before the balancer: its on_route runs first. The flow driver re-runs on_route with
// ctx.connect_error set after a failed attempt (a refused connect; an exchange the flow's
// ctx.retry_on let come back). This stage then either lets the balancer pick again (the retry is
// counted in the flow's state and taken from the budget) or refuses: no retries left or the
// failure is not one the policy retries (unavailable, no cause: the adapter names the last
// failure, an HTTP 502 "connect_refused" or "backend_reset"), or the budget is spent (unavailable,
// cause "shed", Retry-After: an HTTP 503). Before each attempt it sets ctx.retry_on (when the
// flow has one) to the exchange failures that may come back, only while a retry is left and the
// budget has room, so a failure the stage would refuse is answered by the exchange itself (the
// backend's own 503 goes to the client).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include <rproxy/core/error.hpp>
#include <rproxy/health/retry_budget.hpp>
#include <rproxy/health/retry_on.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::health {

/// One retry policy at run time (a route's).
struct retry_rule {
  std::uint32_t max_retries = 0;
  std::uint8_t on = 0;               ///< retry_on bits
  std::uint32_t retry_after_s = 0;   ///< Retry-After of a refusal by the budget
  std::unique_ptr<retry_budget> budget{};  ///< null: retries are not budgeted

  /// Whether the budget has room for one more retry now (no side effect).
  bool budget_room() const noexcept {
    if (!budget) return true;
    const auto now = retry_budget::clock_type::now();
    return static_cast<double>(budget->retries(now) + 1) <= budget->allowed(now);
  }
};

template <class Select>
class retry_stage {
public:
  struct state {
    std::uint32_t retries = 0;  ///< retries this flow was granted
    bool counted = false;       ///< the flow was counted as an original request in the budget
  };

  /// `select(ctx)`: the flow's rule (a `const retry_rule*`; null: no policy, the driver's own).
  explicit retry_stage(Select select) : select_(std::move(select)) {}

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    const retry_rule* r = select_(std::as_const(ctx));
    if (r == nullptr) return rproxy::next;
    auto& st = ctx.template state<retry_stage>();
    if (!st.counted) {
      st.counted = true;
      if (r->budget) r->budget->on_request();
    }
    if (ctx.connect_error) {
      if (ctx.out_of_attempts) return rproxy::next;  // the balancer reports the pick and refuses
      const bool connect = ctx.connect_error == rproxy::condition::retry_safe;
      if (st.retries >= r->max_retries || (connect && (r->on & retry_on::connect_error) == 0))
        return rproxy::reject(rproxy::reject_code::unavailable);  // the adapter names the last failure
      if (r->budget && !r->budget->try_retry())
        return rproxy::reject({rproxy::reject_code::unavailable, "retry budget exhausted", r->retry_after_s, "shed"});
      ++st.retries;
    }
    if constexpr (requires { ctx.retry_on; })
      ctx.retry_on = st.retries < r->max_retries && r->budget_room() ? static_cast<std::uint8_t>(r->on & ~retry_on::connect_error) : 0;
    return rproxy::next;
  }

private:
  Select select_;
};

}  // namespace rproxy::health
