// rproxy/balance/stage.hpp: any balancer as a pipeline stage (the on_route phase).
//
//     auto pool = std::make_shared<rproxy::balance::pool>();
//     pool->update({{"a", ep_a, 3}, {"b", ep_b, 1}});
//     auto p = rproxy::make_pipeline(
//         some_router{},
//         rproxy::balance::make_stage(pool, rproxy::balance::least_conn{}));
//     // consistent hashing on the Minecraft hostname instead of the client IP:
//     //   rproxy::balance::make_stage(pool, rproxy::balance::consistent_hash{},
//     //                               [](const auto& ctx) { return std::string_view{ctx.host}; });
//
// on_route picks a backend for the flow's key (by default the client's IP address) and sets
// ctx.backend; with no backend available it rejects with reject_code::unavailable. The pick's
// handle lives in the flow's state (`ctx.state<decltype(stage)>().handle`), where the connector
// may feed it (observe_latency, fail). A retry re-runs on_route: when ctx.connect_error is set
// (the transport could not reach ctx.backend), the previous pick is finished with that error
// first, so outlier detection and the breaker count it, and the new pick avoids the backends
// this flow already failed on while another is available (the balancer is asked again, and a
// hash balancer, which would give the same answer, falls back to the first other available
// backend); otherwise the previous pick is just released. on_close reports the outcome from
// the close error (no error: success; an upstream error: failure; other errors: none) and
// releases the backend.
//
// The pool is shared (std::shared_ptr) by all workers; the stage holds its balancer by value,
// so a pipeline per worker gets a balancer per worker.
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <concepts>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/balance/pool.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::balance {

/// The default key: the client's IP address (real client, after the PROXY protocol).
struct client_address_key {
  template <class Ctx>
  asio::ip::address operator()(const Ctx& ctx) const {
    return ctx.client.address();
  }
};

namespace detail {

/// A backend address as the flow's tcp endpoint: the address itself, or its .endpoint().
template <class Address>
asio::ip::tcp::endpoint endpoint_of(const Address& a) {
  if constexpr (std::convertible_to<const Address&, asio::ip::tcp::endpoint>) {
    return a;
  } else {
    static_assert(requires { { a.endpoint() } -> std::convertible_to<asio::ip::tcp::endpoint>; },
                  "rproxy::balance::stage: the pool's address type must convert to asio::ip::tcp::endpoint "
                  "or have an endpoint() member");
    return a.endpoint();
  }
}

}  // namespace detail

template <class Balancer, class Pool = pool, class KeyFn = client_address_key>
class stage {
public:
  using balancer_type = Balancer;
  using pool_type = Pool;
  using handle_type = typename Pool::handle_type;

  /// Per-flow state: the backend picked for this flow, and those it failed to reach.
  struct state {
    std::optional<handle_type> handle;
    std::vector<const void*> failed{};  ///< backends (identity only) a connect failed on
  };

  explicit stage(std::shared_ptr<Pool> pool, Balancer balancer = {}, KeyFn key = {})
      : pool_(std::move(pool)), balancer_(std::move(balancer)), key_(std::move(key)) {}

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    auto& st = ctx.template state<stage>();
    if (st.handle && ctx.connect_error) {  // a retry after a failed connect: count it
      st.failed.push_back(&st.handle->backend());
      st.handle->finish(ctx.connect_error);
    }
    st.handle.reset();  // a re-route: let the earlier pick go
    const auto& key = key_(std::as_const(ctx));
    auto h = balancer_.pick(*pool_, key);
    if (h && !st.failed.empty()) h = avoid_failed(st, std::move(h), key);
    if (!h) return rproxy::reject(rproxy::reject_code::unavailable, "no backend available");
    ctx.backend = detail::endpoint_of((*h)->address());
    st.handle = std::move(h);
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    auto& st = ctx.template state<stage>();
    if (st.handle) st.handle->finish(ec);
    st.handle.reset();
  }

  Pool& pool() noexcept { return *pool_; }
  const std::shared_ptr<Pool>& pool_ptr() const noexcept { return pool_; }
  Balancer& balancer() noexcept { return balancer_; }

private:
  static bool has_failed(const state& st, const handle_type& h) noexcept {
    return std::find(st.failed.begin(), st.failed.end(), &h.backend()) != st.failed.end();
  }

  /// `h`, or a pick of a backend this flow has not failed on, if one is available.
  template <class Key>
  std::optional<handle_type> avoid_failed(const state& st, std::optional<handle_type> h, const Key& key) {
    for (int again = 0; again < 2 && h && has_failed(st, *h); ++again) {
      h.reset();
      h = balancer_.pick(*pool_, key);
    }
    if (!h || !has_failed(st, *h)) return h;
    auto snap = pool_->current();
    for (const auto& b : snap->backends) {
      if (std::find(st.failed.begin(), st.failed.end(), b.get()) != st.failed.end()) continue;
      if (auto other = pool_->acquire(b)) return other;
    }
    return h;  // every available backend failed this flow: try the balancer's choice again
  }

  std::shared_ptr<Pool> pool_;
  Balancer balancer_;
  KeyFn key_;
};

/// make_stage(pool, least_conn{}) or make_stage(pool, consistent_hash{}, key_fn).
template <class Pool, class Balancer, class KeyFn = client_address_key>
stage<Balancer, Pool, KeyFn> make_stage(std::shared_ptr<Pool> pool, Balancer balancer, KeyFn key = {}) {
  return stage<Balancer, Pool, KeyFn>(std::move(pool), std::move(balancer), std::move(key));
}

}  // namespace rproxy::balance
