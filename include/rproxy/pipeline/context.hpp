// rproxy/pipeline/context.hpp: the per-flow context every hook receives.
//
// A flow is one client connection (mc, ws, tcp) or one request (http). Its context holds the
// common fields of `flow_info` (`flow_base` for a flow with no backend; or of a protocol's own
// flow type derived from one) plus one
// `state` object for each stage that declares a nested `state` type:
//
//     struct login_limit { struct state { int attempts = 0; }; ... };
//     ctx.state<login_limit>().attempts++;
//
// A wrapper stage that runs another stage's hooks (pipeline/gated.hpp) names it as
// `state_owner`: the two share one state slot, so the wrapped stage's own
// `ctx.state<Inner>()` finds it.
//
// A stage whose state is large and set in few flows (an auth stage's principal, set once a
// token was verified) declares `static constexpr bool state_on_demand = true;`: its slot is a
// pointer, the first ctx.state<S>() makes the state, and ctx.find_state<S>() reads it without
// making it (null: not made). A flow that never needs it (the stage not configured, no
// token sent) holds 8 bytes for it, which matters for flows held open by the thousand.
#pragma once

#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>

#include <rproxy/core/proxy_mode.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy {

/// flow_base::rejected: an optional reject_reason kept out of line, with the interface of the
/// std::optional it replaces. Most flows are never refused, and a flow held open by the
/// thousand (a WebSocket) pays for each of its bytes: 8 bytes here where the optional took 56.
/// A refused flow pays one small allocation instead.
class rejection {
public:
  rejection() noexcept = default;
  rejection(std::nullopt_t) noexcept {}
  rejection(const reject_reason& r) : p_(std::make_unique<reject_reason>(r)) {}
  rejection(const std::optional<reject_reason>& r) : p_(r ? std::make_unique<reject_reason>(*r) : nullptr) {}
  rejection(const rejection& o) : p_(o.p_ ? std::make_unique<reject_reason>(*o.p_) : nullptr) {}
  rejection(rejection&&) noexcept = default;
  rejection& operator=(const rejection& o) { return o ? *this = *o : *this = std::nullopt; }
  rejection& operator=(rejection&&) noexcept = default;
  rejection& operator=(const reject_reason& r) {
    if (p_) *p_ = r;
    else p_ = std::make_unique<reject_reason>(r);
    return *this;
  }
  rejection& operator=(const std::optional<reject_reason>& r) { return r ? *this = *r : *this = std::nullopt; }
  rejection& operator=(std::nullopt_t) noexcept {
    p_.reset();
    return *this;
  }

  bool has_value() const noexcept { return p_ != nullptr; }
  explicit operator bool() const noexcept { return has_value(); }
  const reject_reason& operator*() const noexcept { return *p_; }
  const reject_reason* operator->() const noexcept { return p_.get(); }
  reject_reason& operator*() noexcept { return *p_; }
  reject_reason* operator->() noexcept { return p_.get(); }
  const reject_reason& value() const {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  void reset() noexcept { p_.reset(); }
  /// As a std::optional (to pass where one is taken).
  std::optional<reject_reason> get() const { return p_ ? std::optional<reject_reason>(*p_) : std::nullopt; }

  friend bool operator==(const rejection& a, const rejection& b) noexcept { return a ? b && *a == *b : !b; }
  friend bool operator==(const rejection& a, const reject_reason& b) noexcept { return a && *a == b; }
  friend bool operator==(const rejection& a, std::nullopt_t) noexcept { return !a; }

private:
  std::unique_ptr<reject_reason> p_;
};

/// Fields every flow has, whatever its protocol. A flow that answers the client itself (a
/// WebSocket session: flow/ws.hpp) has only these; one that goes to a backend has flow_info's.
struct flow_base {
  std::uint64_t id = 0;                           ///< unique per process
  asio::ip::tcp::endpoint client{};               ///< peer (after PROXY protocol, the real client)
  asio::ip::tcp::endpoint local{};                ///< the listener address it arrived on
  std::chrono::steady_clock::time_point started{};
  std::chrono::steady_clock::time_point hello_done{};  ///< when the hello was complete (none: not yet)
  std::string identity{};                         ///< user name or token subject, once known
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
  rejection rejected{};                           ///< set when a stage rejected the flow
  /// The client's TCP socket descriptor (-1: none, e.g. QUIC), so a ban can end the flow from
  /// its worker (middleware/ban_kick.hpp: shutdown(2), never close).
  int client_fd = -1;
  bool tls = false;                               ///< the client connection is TLS (HTTP: X-Forwarded-Proto https)
};

/// A flow that goes to a backend: flow_base and where to (route, backend) and how it went. The
/// two one-byte fields come first, in flow_base's tail padding (208 bytes in all, as when these
/// were one struct; a flow without a backend saves 64 of them).
struct flow_info : flow_base {
  /// Set with connect_error on the last on_route of a flow whose connect attempts are spent:
  /// report the failed pick, pick nothing, and reject with the refusal the client should see.
  bool out_of_attempts = false;
  /// The PROXY header the picked backend gets (a stage sets it with ctx.backend; none: the
  /// flow driver's default for the listener).
  proxy_send proxy_out = proxy_send::none;
  std::string_view route{};                       ///< route name chosen (config-owned text)
  std::optional<asio::ip::tcp::endpoint> backend{};
  /// Why the last attempt to reach `backend` failed (empty: none failed). Set by the transport
  /// before a retry re-runs on_route, so the balancer can count the failure and pick another.
  std::error_code connect_error{};
};

template <class Stage>
concept stage_with_state = requires { typename Stage::state; };

/// A stage whose state is made on first use (see the top of this file).
template <class Stage>
concept stage_with_state_on_demand = stage_with_state<Stage> && requires { requires Stage::state_on_demand; };

namespace detail {
/// The stage whose state slot a stage uses: its `state_owner` (a wrapper's inner stage), else itself.
template <class Stage>
struct state_key {
  using type = Stage;
};
template <class Stage>
  requires requires { typename Stage::state_owner; }
struct state_key<Stage> {
  using type = typename state_key<typename Stage::state_owner>::type;
};
template <class Stage>
using state_key_t = typename state_key<Stage>::type;

/// Holds one stage's per-flow state; the wrapper makes the tuple element unique per stage type.
template <class Stage>
struct state_slot {
  typename Stage::state value{};
  typename Stage::state& get() noexcept { return value; }
  const typename Stage::state* find() const noexcept { return &value; }
};
/// The same for a state made on demand: null until the first get(); copies copy the state.
template <class Stage>
  requires stage_with_state_on_demand<Stage>
struct state_slot<Stage> {
  using state = typename Stage::state;
  std::unique_ptr<state> p;
  state_slot() = default;
  state_slot(state_slot&&) noexcept = default;
  state_slot& operator=(state_slot&&) noexcept = default;
  state_slot(const state_slot& o) : p(o.p ? std::make_unique<state>(*o.p) : nullptr) {}
  state_slot& operator=(const state_slot& o) {
    if (this != &o) p = o.p ? std::make_unique<state>(*o.p) : nullptr;
    return *this;
  }
  state& get() {
    if (!p) p = std::make_unique<state>();
    return *p;
  }
  const state* find() const noexcept { return p.get(); }
};

template <class... Stages>
struct state_tuple;
template <>
struct state_tuple<> {
  using type = std::tuple<>;
};
template <class S, class... Rest>
struct state_tuple<S, Rest...> {
  using tail = typename state_tuple<Rest...>::type;
  template <class... T>
  static std::tuple<state_slot<state_key_t<S>>, T...> cons(std::tuple<T...>*);
  using type = std::conditional_t<stage_with_state<S>,
                                  decltype(cons(static_cast<tail*>(nullptr))),
                                  tail>;
};
}  // namespace detail

/// The context type of a pipeline over `Flow` (flow_base, flow_info or a type derived from one).
template <class Flow, class... Stages>
class basic_context : public Flow {
  static_assert(std::is_base_of_v<flow_base, Flow>,
                "rproxy::basic_context: the flow type must derive from rproxy::flow_base (or flow_info)");

public:
  using flow_type = Flow;

  /// The per-flow state of `Stage` (which must declare a nested `state` and be in the pipeline);
  /// a state made on demand is made here (std::bad_alloc aside, this does not fail).
  template <class Stage>
  typename Stage::state& state() noexcept(!stage_with_state_on_demand<detail::state_key_t<Stage>>) {
    return slot<Stage>().get();
  }
  /// Read-only: a state made on demand and not made yet reads as a default one.
  template <class Stage>
  const typename Stage::state& state() const noexcept {
    if (const auto* s = find_state<Stage>()) return *s;
    static const typename Stage::state none{};
    return none;
  }
  /// The state of `Stage` if it exists, without making it: null for a state made on demand
  /// that no hook needed yet; never null for the others.
  template <class Stage>
  const typename Stage::state* find_state() const noexcept {
    return const_cast<basic_context*>(this)->template slot<Stage>().find();
  }

private:
  template <class Stage>
  auto& slot() noexcept {
    static_assert(stage_with_state<Stage>, "ctx.state<S>(): stage S declares no nested `state` type");
    using key = detail::state_key_t<Stage>;
    static_assert((std::is_same_v<key, detail::state_key_t<Stages>> || ...), "ctx.state<S>(): stage S is not in this pipeline");
    return std::get<detail::state_slot<key>>(states_);
  }

  typename detail::state_tuple<Stages...>::type states_{};
};

}  // namespace rproxy
