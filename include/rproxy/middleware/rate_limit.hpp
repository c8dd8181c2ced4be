// rproxy/middleware/rate_limit.hpp: the rate-limit pipeline stage: multi-tier, per-operation
// limits keyed by any combination of client IP (IPv6 grouped by /64), identity, a JWT claim,
// API key name and route; penalties for repeat offenders; X-RateLimit-* / Retry-After values
// for HTTP codecs. Counters live in a store (rate_limit_store.hpp): the in-process
// local_counter_store, or any type with acquire()/async_acquire() (Redis later).
//
// Which operation a hook counts: the message's own `operation()` when it has one (request_view.hpp;
// e.g. a WebSocket codec classifying "message", "join"), else the hook's configured operation
// (accept_operation, hello_operation, message_operation; empty: that hook counts nothing).
// The tier is the principal's tier (jwt_auth / api_key_auth) when configured, else default_tier;
// a (tier, operation) without a limit falls back to (default_tier, operation), then is unlimited.
//
//     rproxy::middleware::rate_limit_config cfg;
//     cfg.key = {{rate_key_part::source::identity}};           // anonymous flows fall back to IP
//     cfg.message_operation = "message";
//     cfg.tiers = {{"default", {{"message", {.limit = 10, .window = 1s}}, {"join", {.limit = 2, .window = 10s}}}},
//                  {"premium", {{"message", {.limit = 50, .window = 1s}}}}};
//     cfg.penalty = {.after = 3, .block = 10s};
//     rproxy::middleware::local_counter_store store;
//     auto p = rproxy::make_pipeline(rproxy::middleware::rate_limit{&cfg, &store, &audit}, ...);
//     // HTTP codec: ctx.state<rate_limit>().headers.render([&](auto name, auto value) {...});
//     // a flow type with `response_fields` (flow/http_flow.hpp's http_flow) gets them set there.
//
// Two limits in one pipeline need two stage types: basic_rate_limit<local_counter_store, struct login_tag>.
#pragma once

#include <asio/awaitable.hpp>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/middleware/rate_limit_store.hpp>
#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

/// One component of a rate-limit key.
struct rate_key_part {
  enum class source : std::uint8_t {
    ip,        ///< client address group (IPv4 /ipv4_prefix, IPv6 /ipv6_prefix)
    identity,  ///< ctx.identity (JWT sub, API key name, protocol user name); anonymous: the IP
    claim,     ///< a kept claim of the principal (`name`); absent: the IP
    api_key,   ///< the API key's name; absent: the IP
    route,     ///< ctx.route
    header,    ///< a request header (`name`), first 128 bytes; absent: empty
  };
  source from = source::ip;
  std::string name;
};

struct rate_limit_config {
  struct limit {
    std::string operation;
    rate_rule rule;
  };
  struct tier {
    std::string name;
    std::vector<limit> limits;
  };

  std::vector<rate_key_part> key{rate_key_part{}};  ///< default: per client IP group
  unsigned ipv4_prefix = 32;
  unsigned ipv6_prefix = 64;
  std::vector<tier> tiers;
  std::string default_tier = "default";
  penalty_rule penalty;
  std::string accept_operation;             ///< counted on each new connection; empty: none
  std::string hello_operation = "request";  ///< counted on each hello (request head, login)
  std::string message_operation;            ///< counted on each message; empty: none
  std::string reject_message = "rate limit exceeded";
  rate_sharing sharing;  ///< across instances (an async store such as cluster::redis_counter_store)
  std::vector<std::pair<std::string, rate_sharing>> route_sharing;  ///< per route name, else `sharing`

  const rate_sharing& sharing_for(std::string_view route) const noexcept {
    for (const auto& [name, s] : route_sharing)
      if (name == route) return s;
    return sharing;
  }

  const tier* find_tier(std::string_view name) const noexcept {
    for (const auto& t : tiers)
      if (t.name == name) return &t;
    return nullptr;
  }
  /// The rule for (tier, operation), falling back to the default tier; nullptr: unlimited.
  const rate_rule* find_rule(std::string_view tier_name, std::string_view operation) const noexcept {
    for (std::string_view tn : {tier_name, std::string_view(default_tier)})
      if (const tier* t = find_tier(tn))
        for (const auto& l : t->limits)
          if (l.operation == operation) return &l.rule;
    return nullptr;
  }
};

/// Values for the HTTP rate-limit headers, for the codec to render.
struct rate_limit_headers {
  bool present = false;
  std::uint32_t limit = 0;
  std::uint32_t remaining = 0;
  std::uint32_t reset_s = 0;        ///< seconds until fully replenished (delta-seconds)
  std::uint32_t retry_after_s = 0;  ///< set when refused

  static std::uint32_t ceil_seconds(std::chrono::nanoseconds d) noexcept {
    if (d.count() <= 0) return 0;
    auto s = (d.count() + 999'999'999) / 1'000'000'000;
    return static_cast<std::uint32_t>(std::min<std::int64_t>(s, 0xFFFFFFFF));
  }
  static rate_limit_headers from(const rate_decision& d) noexcept {
    rate_limit_headers h;
    h.present = true;
    h.limit = d.limit;
    h.remaining = d.allowed ? d.remaining : 0;
    h.reset_s = ceil_seconds(d.reset);
    if (!d.allowed) h.retry_after_s = std::max<std::uint32_t>(1, ceil_seconds(d.retry_after));
    return h;
  }

  /// Calls add(name, value) for X-RateLimit-Limit, -Remaining, -Reset and, when refused, Retry-After.
  template <class F>
  void render(F&& add) const {
    if (!present) return;
    auto emit = [&](std::string_view name, std::uint32_t v) {
      char buf[16];
      auto r = std::to_chars(buf, buf + sizeof buf, v);
      add(name, std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    };
    emit("X-RateLimit-Limit", limit);
    emit("X-RateLimit-Remaining", remaining);
    emit("X-RateLimit-Reset", reset_s);
    if (retry_after_s != 0) emit("Retry-After", retry_after_s);
  }
};

namespace detail {
struct no_request {};

inline void append_part(std::string& key, std::string_view part) {
  key += std::to_string(part.size());
  key += ':';
  key += part;
}
}  // namespace detail

/// Builds the store key for one operation: length-prefixed "operation", "tier" and key parts.
template <class Ctx, class Msg>
std::string rate_key(const rate_limit_config& cfg, const Ctx& ctx, std::string_view operation, std::string_view tier,
                     const Msg* msg) {
  std::string key;
  key.reserve(64);
  detail::append_part(key, operation);
  detail::append_part(key, tier);
  const principal* who = find_principal(ctx);
  auto ip = [&] {
    ip_key g = group(ctx.client.address(), cfg.ipv4_prefix, cfg.ipv6_prefix);
    return to_string(g, g.is_v4() ? std::min(cfg.ipv4_prefix, 32u) : std::min(cfg.ipv6_prefix, 128u));
  };
  auto bounded = [](std::string_view s) { return s.substr(0, 128); };
  for (const auto& p : cfg.key) {
    using S = rate_key_part::source;
    switch (p.from) {
      case S::ip: detail::append_part(key, "ip=" + ip()); break;
      case S::identity:
        if (!ctx.identity.empty()) detail::append_part(key, "id=" + std::string(bounded(ctx.identity)));
        else detail::append_part(key, "ip=" + ip());
        break;
      case S::claim: {
        std::optional<std::string_view> c = who ? who->claim(p.name) : std::nullopt;
        if (c) detail::append_part(key, "claim=" + std::string(bounded(*c)));
        else detail::append_part(key, "ip=" + ip());
        break;
      }
      case S::api_key:
        if (who && !who->api_key.empty()) detail::append_part(key, "key=" + std::string(bounded(who->api_key)));
        else detail::append_part(key, "ip=" + ip());
        break;
      case S::route: {  // (a flow with no backend has no route: one key for all)
        std::string_view route;
        if constexpr (requires { std::string_view(ctx.route); }) route = ctx.route;
        detail::append_part(key, "route=" + std::string(bounded(route)));
        break;
      }
      case S::header: {
        std::optional<std::string_view> h;
        if (msg != nullptr) h = header_of(*msg, p.name);
        detail::append_part(key, "h=" + std::string(bounded(h.value_or(std::string_view{}))));
        break;
      }
    }
  }
  return key;
}

template <class Store = local_counter_store, class Tag = void, class Clock = rate_clock>
struct basic_rate_limit {
  static_assert(counter_store<Store> || async_counter_store<Store>,
                "rproxy::middleware::basic_rate_limit: Store needs acquire(key, policy, now) -> rate_decision "
                "or async_acquire(key, policy, now) -> asio::awaitable<rate_decision>");

  struct state {
    rate_limit_headers headers;  ///< of the last counted operation of this flow
  };

  const rate_limit_config* cfg = nullptr;
  Store* store = nullptr;
  audit_log* audit = nullptr;

  /// What one hook must count: the store key and the rule (nullopt: nothing to count).
  struct plan {
    std::string key;
    rate_policy policy;
  };

  template <class Ctx, class Msg>
  std::optional<plan> plan_for(const Ctx& ctx, std::string_view hook_operation, const Msg* msg) const {
    std::string_view op = hook_operation;
    if (msg != nullptr)
      if (auto own = operation_of(*msg); own && !own->empty()) op = *own;
    if (op.empty()) return std::nullopt;
    std::string_view tier = cfg->default_tier;
    if (const principal* who = find_principal(ctx); who && !who->tier.empty() && cfg->find_tier(who->tier))
      tier = who->tier;
    const rate_rule* rule = cfg->find_rule(tier, op);
    if (rule == nullptr) return std::nullopt;
    rate_sharing sharing = cfg->sharing;
    if constexpr (requires { std::string_view(ctx.route); }) sharing = cfg->sharing_for(ctx.route);
    return plan{rate_key(*cfg, ctx, op, tier, msg), rate_policy{*rule, cfg->penalty, sharing}};
  }

  /// Records the decision in the flow (`Record`: in this stage's state) and turns it into a verdict.
  template <bool Record = true, class Ctx>
  rproxy::verdict finish(Ctx& ctx, const rate_decision& d, std::string_view key) const {
    auto h = rate_limit_headers::from(d);
    if constexpr (Record) ctx.template state<basic_rate_limit>().headers = h;
    if constexpr (requires { ctx.response_fields.set(std::string_view(), std::string_view()); })
      h.render([&](std::string_view name, std::string_view value) { ctx.response_fields.set(name, value); });
    if (d.allowed) return rproxy::next;
    return reject_and_audit(ctx, audit, {reject_code::rate_limited, cfg->reject_message, h.retry_after_s},
                            "rate_limit", d.blocked ? "blocked (repeat offender)" : "over limit", key);
  }

  // ---- synchronous store ----
  template <class Ctx>
    requires counter_store<Store>
  rproxy::verdict on_accept(Ctx& ctx) {
    return run(ctx, cfg->accept_operation, static_cast<const detail::no_request*>(nullptr));
  }
  template <class Ctx, class Msg>
    requires counter_store<Store>
  rproxy::verdict on_hello(Ctx& ctx, const Msg& msg) {
    return run(ctx, cfg->hello_operation, &msg);
  }
  template <class Ctx, class Msg>
    requires counter_store<Store>
  rproxy::verdict on_message(Ctx& ctx, const Msg& msg) {
    return run(ctx, cfg->message_operation, &msg);
  }

  /// The same counts for a wrapper stage whose flows never render rate-limit headers (a
  /// WebSocket connection and its messages): the decision is not kept in the flow, so the
  /// wrapper declares no `state` and a held connection carries no slot for it.
  template <class Ctx>
    requires counter_store<Store>
  rproxy::verdict count_accept(Ctx& ctx) {
    return run<false>(ctx, cfg->accept_operation, static_cast<const detail::no_request*>(nullptr));
  }
  template <class Ctx, class Msg>
    requires counter_store<Store>
  rproxy::verdict count_message(Ctx& ctx, const Msg& msg) {
    return run<false>(ctx, cfg->message_operation, &msg);
  }

  // ---- asynchronous store ----
  template <class Ctx>
    requires(!counter_store<Store>)
  asio::awaitable<rproxy::verdict> on_accept(Ctx& ctx) {
    return run_async(ctx, cfg->accept_operation, static_cast<const detail::no_request*>(nullptr));
  }
  template <class Ctx, class Msg>
    requires(!counter_store<Store>)
  asio::awaitable<rproxy::verdict> on_hello(Ctx& ctx, const Msg& msg) {
    return run_async(ctx, cfg->hello_operation, &msg);
  }
  template <class Ctx, class Msg>
    requires(!counter_store<Store>)
  asio::awaitable<rproxy::verdict> on_message(Ctx& ctx, const Msg& msg) {
    return run_async(ctx, cfg->message_operation, &msg);
  }

private:
  template <bool Record = true, class Ctx, class Msg>
  rproxy::verdict run(Ctx& ctx, std::string_view op, const Msg* msg) {
    auto p = plan_for(ctx, op, msg);
    if (!p) return rproxy::next;
    return finish<Record>(ctx, store->acquire(p->key, p->policy, Clock::now()), p->key);
  }

  // `msg` is only read before the first suspension.
  template <class Ctx, class Msg>
  asio::awaitable<rproxy::verdict> run_async(Ctx& ctx, std::string_view op, const Msg* msg) {
    auto p = plan_for(ctx, op, msg);
    if (!p) co_return rproxy::next;
    rate_decision d = co_await store->async_acquire(p->key, p->policy, Clock::now());
    co_return finish(ctx, d, p->key);
  }
};

/// The everyday rate-limit stage: in-process store, steady clock.
using rate_limit = basic_rate_limit<>;

}  // namespace rproxy::middleware
