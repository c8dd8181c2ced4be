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
// (the transport could not reach ctx.backend), the previous pick is counted as failed and
// avoided (balance/flow_pick.hpp). on_close reports the outcome from the close error (no
// error: success; an upstream error: failure; other errors: none) and releases the backend.
//
// The pool is shared (std::shared_ptr) by all workers; the stage holds its balancer by value,
// so a pipeline per worker gets a balancer per worker.
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <concepts>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rproxy/balance/flow_pick.hpp>
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
  struct state : flow_pick<Pool> {};

  explicit stage(std::shared_ptr<Pool> pool, Balancer balancer = {}, KeyFn key = {})
      : pool_(std::move(pool)), balancer_(std::move(balancer)), key_(std::move(key)) {}

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    const auto* h = ctx.template state<stage>().pick(*pool_, balancer_, key_(std::as_const(ctx)), ctx);
    if (!h) return rproxy::reject(rproxy::reject_code::unavailable, "no backend available");
    ctx.backend = detail::endpoint_of((*h)->address());
    if constexpr (requires { (*h)->address().proxy; }) ctx.proxy_out = (*h)->address().proxy;
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    ctx.template state<stage>().finish(ec);
  }

  Pool& pool() noexcept { return *pool_; }
  const std::shared_ptr<Pool>& pool_ptr() const noexcept { return pool_; }
  Balancer& balancer() noexcept { return balancer_; }

private:
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
