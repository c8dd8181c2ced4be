// rproxy/balance/flow_pick.hpp: one flow's pick from a pool, kept across connect retries: the
// handle it holds and the backends it could not reach. balance::stage keeps one per flow; a
// stage that picks from one of several pools (mc-proxy: one pool per server) keeps one too.
//
//     rproxy::balance::flow_pick<Pool> fp;                       // a stage's per-flow state
//     if (auto* h = fp.pick(pool, balancer, key, ctx)) ctx.backend = ...;   // ctx: connect_error, out_of_attempts
//     ...
//     fp.finish(close_error);                                    // on_close
//
// After a failed connect (connect_error set) the previous pick is finished with that error, so
// outlier detection and the breaker count it, and the new pick avoids the backends this flow
// already failed on while another is available: the balancer is asked again, and a hash
// balancer, which would give the same answer, falls back to the first other available backend.
// Without a connect error the previous pick is just released. When the flow is out of attempts
// (ctx.out_of_attempts, set by the flow driver with the last connect error) the failed pick is
// reported and nothing new is picked: the caller rejects.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

namespace rproxy::balance {

template <class Pool>
struct flow_pick {
  using handle_type = typename Pool::handle_type;

  std::optional<handle_type> handle;  ///< the backend this flow holds, if any

  /// The backends (identity only) a connect of this flow failed on.
  std::span<const void* const> failed() const noexcept {
    return failed_ ? std::span<const void* const>(*failed_) : std::span<const void* const>();
  }

  /// A pick for `key`, or nullptr when no backend is available (or attempts are spent).
  template <class Balancer, class Key>
  const handle_type* pick(const Pool& pool, Balancer& balancer, const Key& key, std::error_code connect_error,
                          bool out_of_attempts = false) {
    if (handle && connect_error) {
      if (!failed_) failed_ = std::make_unique<failed_list>();
      failed_->push_back(&handle->backend());
      handle->finish(connect_error);
    }
    handle.reset();
    if (out_of_attempts) return nullptr;
    handle = balancer.pick(pool, key);
    if (handle && failed_) avoid_failed(pool, balancer, key);
    return handle ? &*handle : nullptr;
  }

  /// The flow's outcome (no error: success; upstream: failure; others: none), then release.
  void finish(std::error_code ec) {
    if (handle) handle->finish(ec);
    handle.reset();
  }

  /// The same, reading connect_error and out_of_attempts from the flow's context.
  template <class Balancer, class Key, class Ctx>
    requires requires(const Ctx& c) { c.connect_error; c.out_of_attempts; }
  const handle_type* pick(const Pool& pool, Balancer& balancer, const Key& key, const Ctx& ctx) {
    return pick(pool, balancer, key, ctx.connect_error, ctx.out_of_attempts);
  }

private:
  using failed_list = std::vector<const void*>;
  /// Made at the first failed connect: most flows have none, and one held open by the thousand
  /// pays for each of its bytes (8 here where a vector takes 24).
  std::unique_ptr<failed_list> failed_;

  bool has_failed(const void* backend) const noexcept {
    const auto f = failed();
    return std::find(f.begin(), f.end(), backend) != f.end();
  }

  template <class Balancer, class Key>
  void avoid_failed(const Pool& pool, Balancer& balancer, const Key& key) {
    for (int again = 0; again < 2 && handle && has_failed(&handle->backend()); ++again) {
      handle.reset();
      handle = balancer.pick(pool, key);
    }
    if (!handle || !has_failed(&handle->backend())) return;
    auto snap = pool.current();
    for (const auto& b : snap->backends) {
      if (has_failed(b.get())) continue;
      if (auto other = pool.acquire(b)) {
        handle = std::move(other);
        return;
      }
    }
    // every available backend failed this flow: keep the balancer's choice
  }
};

}  // namespace rproxy::balance
