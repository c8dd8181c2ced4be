// rproxy/route/http_route_table.hpp: what an HTTP app keeps per route of its router
// (route/by_http_route.hpp) besides the route itself: which of its middleware run (a bit mask
// over the app's own list of names), the groups its backends' shares name (indices into the
// config's groups), and its retry rule; and the small functors and stages that look them up
// for the matched route of a flow.
//
//     auto t = rproxy::route::http_route_table::of(router, cfg.groups, [&](const auto& r) { return mask_of(r.middleware); });
//     rproxy::gated{some_stage, rproxy::route::route_uses{&t.masks, bit}}
//     rproxy::health::retry_stage{rproxy::route::route_retry{&t.retry_rules}}
//     rproxy::route::group_transport{&transports_by_group, rproxy::route::route_group{&t.groups}}
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <rproxy/balance/key.hpp>
#include <rproxy/flow/upstream.hpp>
#include <rproxy/health/retry_block.hpp>
#include <rproxy/health/retry_stage.hpp>
#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/route/by_http_route.hpp>
#include <rproxy/route/http_router.hpp>

namespace rproxy::route {

/// A route's retry rule from its `retry:` block; without one, failed connects are retried twice
/// with no budget (the driver's default).
inline health::retry_rule make_retry_rule(const std::optional<health::retry_block>& b) {
  health::retry_rule r;
  if (!b) {
    r.max_retries = 2;
    r.on = health::retry_on::connect_error;
    return r;
  }
  r.max_retries = b->count;
  r.on = b->mask();
  r.retry_after_s = b->retry_after;
  r.budget = std::make_unique<health::retry_budget>(b->budget.config());
  return r;
}

/// Per route index of a router.
struct http_route_table {
  std::vector<std::uint32_t> masks;               ///< the middleware that run on it
  std::vector<health::retry_rule> retry_rules;
  std::vector<std::vector<std::size_t>> groups;  ///< per split entry, an index into the config's groups

  /// `mask_of(route_config)`: the route's middleware bits. A group named by no entry of
  /// `groups` (each with a `name`) is left out (the config's validation refuses it).
  template <class Groups, class MaskOf>
  static http_route_table of(const http_router& router, const Groups& groups, MaskOf mask_of) {
    http_route_table t;
    for (const auto& r : router.routes()) {
      t.masks.push_back(mask_of(r.config()));
      t.retry_rules.push_back(make_retry_rule(r.config().retry));
      auto& g = t.groups.emplace_back();
      for (const auto& share : r.config().backends)
        for (std::size_t i = 0; i < groups.size(); ++i)
          if (groups[i].name == share.group) g.push_back(i);
    }
    return t;
  }

  /// The connect attempts a flow needs for the route with the most retries (at least 3).
  unsigned max_connect_attempts() const noexcept {
    unsigned most = 2;
    for (const auto& r : retry_rules) most = std::max(most, r.max_retries);
    return most + 1;
  }
};

/// Whether the matched route's middleware mask has bit `bit` (for rproxy::gated).
struct route_uses {
  const std::vector<std::uint32_t>* masks;
  std::uint32_t bit;
  template <class Ctx>
  bool operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return m && ((*masks)[m.route()->index()] & bit) != 0;
  }
};

/// The matched route's chosen group, as an index into the config's groups (none: ~0).
struct route_group {
  const std::vector<std::vector<std::size_t>>* groups;  ///< per route index, per split entry
  template <class Ctx>
  std::size_t operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return m ? (*groups)[m.route()->index()][m.group_index()] : ~std::size_t{0};
  }
};

/// The balancing key of a group_stage: the hash of the matched route's sticky header or cookie
/// when the request has it, else of the client's address (so `balancer: consistent_hash` keeps
/// a session, or else a client, on one backend of the group).
struct route_sticky_key {
  template <class Ctx>
  std::uint64_t operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    if (auto k = m ? m.sticky_key() : std::nullopt) return *k;
    return balance::hash_key(ctx.client.address());
  }
};

/// The matched route's retry rule (none without a route), for health::retry_stage.
struct route_retry {
  const std::vector<health::retry_rule>* rules;
  template <class Ctx>
  const health::retry_rule* operator()(const Ctx& ctx) const {
    const auto& m = ctx.template state<by_http_route>().match;
    return m ? &(*rules)[m.route()->index()] : nullptr;
  }
};

/// How the picked backend is reached (TLS, SNI): its group's settings (after the balance stage).
struct group_transport {
  const std::vector<flow::upstream_settings>* by_group;  ///< per config group
  route_group select;
  template <class Ctx>
  verdict on_route(Ctx& ctx) {
    const std::size_t g = select(ctx);
    ctx.upstream = g < by_group->size() ? &(*by_group)[g] : nullptr;
    return next;
  }
};

}  // namespace rproxy::route
