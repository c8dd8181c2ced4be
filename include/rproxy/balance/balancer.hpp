// rproxy/balance/balancer.hpp: what a balancer is, and the list of those rproxy ships.
//
// A balancer is a value type with
//     std::optional<Pool::handle_type> pick(const Pool& pool, const Key& key);
// that chooses an available backend of `pool` (never an unhealthy, ejected or draining one,
// nor one whose breaker refuses) and returns its handle, or nothing when none is available.
// Balancers that need no key also accept pick(pool). Every shipped balancer is safe to call
// from several threads at once; an instance per worker thread avoids sharing its small state.
//
//     static_assert(rproxy::balance::balancer<rproxy::balance::least_conn, rproxy::balance::pool>);
//     static_assert(rproxy::balance::balancer<rproxy::balance::consistent_hash,
//                                             rproxy::balance::pool, std::string_view>);
//
// To write your own: choose a backend of pool.current() and return pool.acquire(backend);
// it gets health checks, the breaker and counting for free.
#pragma once

#include <concepts>
#include <optional>

#include <rproxy/balance/key.hpp>

namespace rproxy::balance {

template <class B, class Pool, class Key = no_key>
concept balancer = std::copy_constructible<B> && requires(B& b, const Pool& p, const Key& k) {
  { b.pick(p, k) } -> std::same_as<std::optional<typename Pool::handle_type>>;
};

}  // namespace rproxy::balance
