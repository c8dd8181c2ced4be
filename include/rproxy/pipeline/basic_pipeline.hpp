// rproxy/pipeline/basic_pipeline.hpp: stages assembled at compile time into one pipeline.
//
//     auto p = rproxy::make_pipeline<rproxy::byte_protocol>(ip_filter{...}, round_robin{...});
//     auto ctx = p.make_context();
//     rproxy::verdict v = p.accept(ctx);          // all on_accept hooks sync: a plain call
//     rproxy::verdict w = co_await p.route(ctx);  // some on_route hook async: an awaitable
//     p.close(ctx, ec);                           // always; reverse order
//     verdict x = co_await run_phase<phase::hello>(p, ctx, hello);   // any phase, one call
//
// Each phase calls, in order, every stage that has that hook, and stops at the first verdict
// that is not `next`. Response and close hooks run in reverse order. A phase whose hooks are
// all synchronous is a plain inlined sequence of calls; it becomes a coroutine only when one of
// its hooks returns asio::awaitable, decided at compile time (`p.is_async(phase::route)`).
//
// make_pipeline checks every stage against its contract with a static_assert that names the
// broken rule; the compiler's "in instantiation of stage_contract<YourStage, ...>" line above
// it names the stage.
#pragma once

#include <asio/awaitable.hpp>

#include <boost/hana/at.hpp>
#include <boost/hana/tuple.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rproxy/core/result.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/stage.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy {

enum class phase : std::uint8_t { accept, hello, route, connect, message, response, close };

namespace detail {

namespace hana = boost::hana;

// ---- contract checks ------------------------------------------------------------------------
// "called": the hook can be called with these arguments (whatever it returns);
// "named":  the stage has a plain (non-template) member of that name.
template <class S, class C> concept calls_accept = requires(S& s, C& c) { s.on_accept(c); };
template <class S, class C> concept calls_route = requires(S& s, C& c) { s.on_route(c); };
template <class S, class C> concept calls_connect = requires(S& s, C& c) { s.on_connect(c); };
template <class S, class C> concept calls_close = requires(S& s, C& c, std::error_code e) { s.on_close(c, e); };
template <class S, class C, class M> concept calls_hello = requires(S& s, C& c, const M& m) { s.on_hello(c, m); };
template <class S, class C, class M> concept calls_message = requires(S& s, C& c, const M& m) { s.on_message(c, m); };
template <class S, class C, class M> concept calls_response = requires(S& s, C& c, const M& m) { s.on_response(c, m); };
template <class S> concept names_accept = requires { &S::on_accept; };
template <class S> concept names_hello = requires { &S::on_hello; };
template <class S> concept names_route = requires { &S::on_route; };
template <class S> concept names_connect = requires { &S::on_connect; };
template <class S> concept names_message = requires { &S::on_message; };
template <class S> concept names_response = requires { &S::on_response; };
template <class S> concept names_close = requires { &S::on_close; };
template <class S, class C> concept calls_response_body = requires(S& s, C& c, std::string_view b, bool l) { s.on_response_body(c, b, l); };
template <class S> concept names_response_body = requires { &S::on_response_body; };

template <class S>
constexpr bool state_ok() {
  if constexpr (stage_with_state<S>) return std::is_default_constructible_v<typename S::state>;
  else return true;
}

template <class S, class P, class Ctx>
struct stage_contract {
  using H = typename P::hello;
  using M = typename P::message;
  using R = typename P::response;

  static constexpr bool has_any_hook =
      accept_stage<S, Ctx> || hello_stage<S, Ctx, H> || route_stage<S, Ctx> || connect_stage<S, Ctx> ||
      message_stage<S, Ctx, M> || response_stage<S, Ctx, R> || close_stage<S, Ctx> || response_body_stage<S, Ctx>;

  static_assert(!std::is_polymorphic_v<S>,
                "rproxy::make_pipeline: a stage is a value type; it must not be polymorphic");
  static_assert(std::is_move_constructible_v<S>,
                "rproxy::make_pipeline: a stage must be move-constructible");
  static_assert(!calls_accept<S, Ctx> || accept_stage<S, Ctx>,
                "rproxy::make_pipeline: stage's on_accept(Ctx&) must return rproxy::verdict or asio::awaitable<rproxy::verdict>");
  static_assert(!calls_hello<S, Ctx, H> || hello_stage<S, Ctx, H>,
                "rproxy::make_pipeline: stage's on_hello(Ctx&, const Hello&) must return rproxy::verdict or asio::awaitable<rproxy::verdict>");
  static_assert(!calls_route<S, Ctx> || route_stage<S, Ctx>,
                "rproxy::make_pipeline: stage's on_route(Ctx&) must return rproxy::verdict or asio::awaitable<rproxy::verdict>");
  static_assert(!calls_connect<S, Ctx> || connect_stage<S, Ctx>,
                "rproxy::make_pipeline: stage's on_connect(Ctx&) must return rproxy::verdict or asio::awaitable<rproxy::verdict>");
  static_assert(!calls_message<S, Ctx, M> || message_stage<S, Ctx, M>,
                "rproxy::make_pipeline: stage's on_message(Ctx&, const Message&) must return rproxy::verdict or asio::awaitable<rproxy::verdict>");
  static_assert(!calls_response<S, Ctx, R> || response_stage<S, Ctx, R>,
                "rproxy::make_pipeline: stage's on_response(Ctx&, const Response&) must return rproxy::verdict or asio::awaitable<rproxy::verdict>");
  static_assert(!calls_close<S, Ctx> || close_stage<S, Ctx>,
                "rproxy::make_pipeline: stage's on_close(Ctx&, std::error_code) must return void");
  static_assert(!calls_response_body<S, Ctx> || response_body_stage<S, Ctx>,
                "rproxy::make_pipeline: stage's on_response_body(Ctx&, std::string_view, bool) must return rproxy::result<std::string_view>");
  static_assert(!names_accept<S> || calls_accept<S, Ctx>,
                "rproxy::make_pipeline: stage's on_accept cannot be called as on_accept(Ctx&) with this pipeline's context");
  static_assert(!names_hello<S> || calls_hello<S, Ctx, H>,
                "rproxy::make_pipeline: stage's on_hello cannot be called as on_hello(Ctx&, const Hello&) with this pipeline's protocol");
  static_assert(!names_route<S> || calls_route<S, Ctx>,
                "rproxy::make_pipeline: stage's on_route cannot be called as on_route(Ctx&) with this pipeline's context");
  static_assert(!names_connect<S> || calls_connect<S, Ctx>,
                "rproxy::make_pipeline: stage's on_connect cannot be called as on_connect(Ctx&) with this pipeline's context");
  static_assert(!names_message<S> || calls_message<S, Ctx, M>,
                "rproxy::make_pipeline: stage's on_message cannot be called as on_message(Ctx&, const Message&) with this pipeline's protocol");
  static_assert(!names_response<S> || calls_response<S, Ctx, R>,
                "rproxy::make_pipeline: stage's on_response cannot be called as on_response(Ctx&, const Response&) with this pipeline's protocol");
  static_assert(!names_close<S> || calls_close<S, Ctx>,
                "rproxy::make_pipeline: stage's on_close cannot be called as on_close(Ctx&, std::error_code)");
  // Checked only when no hook is present in any form, so a stage breaks one rule at a time.
  static constexpr bool tries_a_hook =
      calls_accept<S, Ctx> || calls_hello<S, Ctx, H> || calls_route<S, Ctx> || calls_connect<S, Ctx> || calls_message<S, Ctx, M> ||
      calls_response<S, Ctx, R> || calls_close<S, Ctx> || calls_response_body<S, Ctx> || names_accept<S> || names_hello<S> ||
      names_route<S> || names_connect<S> || names_message<S> || names_response<S> || names_close<S>;
  static_assert(has_any_hook || tries_a_hook,
                "rproxy::make_pipeline: stage implements none of on_accept, on_hello, on_route, on_connect, on_message, on_response, on_close for this pipeline's protocol");
  static_assert(state_ok<S>(),
                "rproxy::make_pipeline: a stage's nested `state` must be default-constructible");

  static constexpr bool value = true;
};

template <class... S>
inline constexpr bool distinct_types = true;
template <class S, class... Rest>
inline constexpr bool distinct_types<S, Rest...> =
    (!std::is_same_v<S, Rest> && ...) && distinct_types<Rest...>;

// ---- per-phase dispatch ---------------------------------------------------------------------
/// Stands in for the message of phases that carry none (accept, route).
struct no_message {};

template <phase Ph, class S, class Ctx, class Msg>
constexpr bool has_hook() {
  if constexpr (Ph == phase::accept) return accept_stage<S, Ctx>;
  else if constexpr (Ph == phase::hello) return hello_stage<S, Ctx, Msg>;
  else if constexpr (Ph == phase::route) return route_stage<S, Ctx>;
  else if constexpr (Ph == phase::connect) return connect_stage<S, Ctx>;
  else if constexpr (Ph == phase::message) return message_stage<S, Ctx, Msg>;
  else if constexpr (Ph == phase::response) return response_stage<S, Ctx, Msg>;
  else return false;
}

template <phase Ph, class S, class Ctx, class Msg>
decltype(auto) call_hook(S& s, Ctx& c, const Msg& m) {
  if constexpr (Ph == phase::accept) return s.on_accept(c);
  else if constexpr (Ph == phase::hello) return s.on_hello(c, m);
  else if constexpr (Ph == phase::route) return s.on_route(c);
  else if constexpr (Ph == phase::connect) return s.on_connect(c);
  else if constexpr (Ph == phase::message) return s.on_message(c, m);
  else return s.on_response(c, m);
}

template <phase Ph, class S, class Ctx, class Msg>
constexpr bool hook_is_async() {
  if constexpr (has_hook<Ph, S, Ctx, Msg>())
    return is_async_result<decltype(call_hook<Ph>(std::declval<S&>(), std::declval<Ctx&>(),
                                                   std::declval<const Msg&>()))>;
  else
    return false;
}

}  // namespace detail

template <protocol P, class... Stages>
class basic_pipeline {
public:
  using protocol_type = P;
  using context_type = basic_context<typename P::flow, Stages...>;

private:
  template <phase Ph, class Msg>
  static constexpr bool async_phase = (detail::hook_is_async<Ph, Stages, context_type, Msg>() || ...);

public:
  using hello_type = typename P::hello;
  using message_type = typename P::message;
  using response_type = typename P::response;
  static constexpr std::size_t size = sizeof...(Stages);

  explicit basic_pipeline(Stages... stages) : stages_(std::move(stages)...) {}

  context_type make_context() const { return context_type{}; }

  /// Whether a phase runs as a coroutine (some stage's hook for it is asynchronous).
  static constexpr bool is_async(phase ph) {
    switch (ph) {
      case phase::accept: return async_phase<phase::accept, detail::no_message>;
      case phase::hello: return async_phase<phase::hello, hello_type>;
      case phase::route: return async_phase<phase::route, detail::no_message>;
      case phase::connect: return async_phase<phase::connect, detail::no_message>;
      case phase::message: return async_phase<phase::message, message_type>;
      case phase::response: return async_phase<phase::response, response_type>;
      case phase::close: return false;
    }
    return false;
  }

  /// Each returns `verdict` when the phase is synchronous, else `asio::awaitable<verdict>`.
  auto accept(context_type& ctx) { return run<phase::accept, false>(ctx, detail::no_message{}); }
  auto hello(context_type& ctx, const hello_type& m) { return run<phase::hello, false>(ctx, m); }
  auto route(context_type& ctx) { return run<phase::route, false>(ctx, detail::no_message{}); }
  auto connect(context_type& ctx) { return run<phase::connect, false>(ctx, detail::no_message{}); }
  auto message(context_type& ctx, const message_type& m) { return run<phase::message, false>(ctx, m); }
  auto response(context_type& ctx, const response_type& m) { return run<phase::response, true>(ctx, m); }

  /// Runs phase Ph (not close) with one call whatever its hooks are: a drivers' entry point.
  ///     verdict v = co_await p.template run_phase<phase::hello>(ctx, hello);
  /// A synchronous phase costs one coroutine frame here; call accept() etc. directly on a path
  /// where that matters and the phase is known to be synchronous. An asynchronous one costs the
  /// phase's own frame and one per asynchronous hook it calls.
  template <phase Ph, class Msg = detail::no_message>
    requires(!async_phase<Ph, Msg>)
  asio::awaitable<verdict> run_phase(context_type& ctx, const Msg& m = {}) {
    static_assert(Ph != phase::close, "run_phase: on_close runs through close(ctx, ec)");
    co_return run<Ph, Ph == phase::response>(ctx, m);
  }
  template <phase Ph, class Msg = detail::no_message>
    requires async_phase<Ph, Msg>
  asio::awaitable<verdict> run_phase(context_type& ctx, const Msg& m = {}) {
    return run<Ph, Ph == phase::response>(ctx, m);  // (the phase's coroutine itself: no frame more)
  }

  /// Whether some stage transforms response bodies (on_response_body). When none does, a flow
  /// keeps its plain relay path and never calls response_body().
  static constexpr bool filters_response_body = (response_body_stage<Stages, context_type> || ...);

  /// Runs every on_response_body hook, last stage first, each on the previous one's output; the
  /// first failure stops it. The result views a stage's buffer: valid until the next call.
  result<std::string_view> response_body(context_type& ctx, std::string_view piece, bool last) {
    return body_from<size>(ctx, piece, last);
  }

  /// Runs every on_close hook, last stage first. Never stops early.
  void close(context_type& ctx, std::error_code ec) noexcept {
    close_from<size>(ctx, ec);
  }

  /// The stage object of type S (for configuration and inspection).
  template <class S>
  S& stage() noexcept {
    return boost::hana::at_c<index_of<S>()>(stages_);
  }

private:
  template <class S>
  static constexpr std::size_t index_of() {
    constexpr std::array<bool, size> same{std::is_same_v<S, Stages>...};
    for (std::size_t i = 0; i < size; ++i)
      if (same[i]) return i;
    return size;
  }

  // The stage at position K of the run order (reversed for response hooks).
  template <bool Reverse, std::size_t K>
  static constexpr std::size_t at_order() { return Reverse ? size - 1 - K : K; }

  template <std::size_t I>
  using stage_at = std::remove_reference_t<decltype(boost::hana::at_c<I>(std::declval<boost::hana::tuple<Stages...>&>()))>;

  template <phase Ph, std::size_t I, class Msg>
  verdict call_sync(context_type& ctx, const Msg& m) {
    if constexpr (detail::has_hook<Ph, stage_at<I>, context_type, Msg>())
      return detail::call_hook<Ph>(boost::hana::at_c<I>(stages_), ctx, m);
    else
      return next;
  }

  // Runs the synchronous stages at run-order positions [From, From + sizeof K): a plain
  // short-circuit fold that the compiler inlines.
  template <phase Ph, bool Reverse, std::size_t From, class Msg, std::size_t... K>
  verdict run_sync_range(std::index_sequence<K...>, context_type& ctx, const Msg& m) {
    verdict v = next;
    (void)((v = call_sync<Ph, at_order<Reverse, From + K>()>(ctx, m), v.is_next()) && ...);
    return v;
  }

  template <phase Ph, bool Reverse, class Msg>
  auto run(context_type& ctx, const Msg& m) {
    if constexpr (!async_phase<Ph, Msg>)
      return run_sync_range<Ph, Reverse, 0>(std::make_index_sequence<size>{}, ctx, m);
    else
      return run_async<Ph, Reverse>(ctx, m);
  }

  // The run-order positions of the asynchronous hooks of phase Ph, in order.
  template <phase Ph, bool Reverse, class Msg>
  static constexpr auto async_positions() {
    constexpr std::array<bool, size> async = []<std::size_t... K>(std::index_sequence<K...>) {
      return std::array<bool, size>{detail::hook_is_async<Ph, stage_at<at_order<Reverse, K>()>, context_type, Msg>()...};
    }(std::make_index_sequence<size>{});
    std::array<std::size_t, std::count(async.begin(), async.end(), true)> out{};
    for (std::size_t i = 0, k = 0; i < size; ++i)
      if (async[i]) out[k++] = i;
    return out;
  }

  // The phase as one coroutine: the synchronous stages run as plain folds; each asynchronous
  // hook is awaited in turn (its own frame), unless its stage says it does nothing for this
  // flow (`skip(ctx)`, e.g. a gated stage off this route: no frame at all). `m` is copied into
  // the frame: the caller's message may not outlive a suspension.
  template <phase Ph, bool Reverse, class Msg>
  asio::awaitable<verdict> run_async(context_type& ctx, Msg m) {
    static constexpr auto pos = async_positions<Ph, Reverse, Msg>();
    verdict v = run_sync_range<Ph, Reverse, 0>(std::make_index_sequence<pos[0]>{}, ctx, m);
    if (!v.is_next()) co_return v;
    for (std::size_t i = 0; i < pos.size(); ++i) {
      if (!async_skips<Ph, Reverse, Msg>(i, ctx)) {
        v = co_await async_hook<Ph, Reverse, Msg>(i, ctx, m);
        if (!v.is_next()) co_return v;
      }
      v = sync_after<Ph, Reverse, Msg>(i, ctx, m);
      if (!v.is_next()) co_return v;
    }
    co_return v;
  }

  // The J-th asynchronous hook's awaitable (J == i: a switch unrolled at compile time).
  template <phase Ph, bool Reverse, class Msg, std::size_t J = 0>
  asio::awaitable<verdict> async_hook(std::size_t i, context_type& ctx, const Msg& m) {
    constexpr auto pos = async_positions<Ph, Reverse, Msg>();
    if constexpr (J + 1 < pos.size())
      if (i != J) return async_hook<Ph, Reverse, Msg, J + 1>(i, ctx, m);
    return detail::call_hook<Ph>(boost::hana::at_c<at_order<Reverse, pos[J]>()>(stages_), ctx, m);
  }
  template <phase Ph, bool Reverse, class Msg, std::size_t J = 0>
  bool async_skips(std::size_t i, const context_type& ctx) {
    constexpr auto pos = async_positions<Ph, Reverse, Msg>();
    if constexpr (J + 1 < pos.size())
      if (i != J) return async_skips<Ph, Reverse, Msg, J + 1>(i, ctx);
    const auto& s = boost::hana::at_c<at_order<Reverse, pos[J]>()>(stages_);
    if constexpr (requires { { s.skip(ctx) } -> std::convertible_to<bool>; }) return s.skip(ctx);
    else return false;
  }
  // The synchronous stages after the J-th asynchronous hook, up to the next one.
  template <phase Ph, bool Reverse, class Msg, std::size_t J = 0>
  verdict sync_after(std::size_t i, context_type& ctx, const Msg& m) {
    constexpr auto pos = async_positions<Ph, Reverse, Msg>();
    if constexpr (J + 1 < pos.size())
      if (i != J) return sync_after<Ph, Reverse, Msg, J + 1>(i, ctx, m);
    constexpr std::size_t from = pos[J] + 1, to = J + 1 < pos.size() ? pos[J + 1] : size;
    return run_sync_range<Ph, Reverse, from>(std::make_index_sequence<to - from>{}, ctx, m);
  }

  template <std::size_t I>
  result<std::string_view> body_from(context_type& ctx, std::string_view piece, bool last) {
    if constexpr (I == 0) {
      return piece;
    } else {
      auto& s = boost::hana::at_c<I - 1>(stages_);
      if constexpr (response_body_stage<std::remove_reference_t<decltype(s)>, context_type>) {
        auto r = s.on_response_body(ctx, piece, last);
        if (!r) return r;
        return body_from<I - 1>(ctx, *r, last);
      } else {
        return body_from<I - 1>(ctx, piece, last);
      }
    }
  }

  template <std::size_t I>
  void close_from(context_type& ctx, std::error_code ec) noexcept {
    if constexpr (I > 0) {
      auto& s = boost::hana::at_c<I - 1>(stages_);
      if constexpr (close_stage<std::remove_reference_t<decltype(s)>, context_type>) s.on_close(ctx, ec);
      close_from<I - 1>(ctx, ec);
    }
  }

  boost::hana::tuple<Stages...> stages_;
};

/// `co_await run_phase<phase::hello>(p, ctx, hello)`: p.run_phase without the `template` keyword.
template <phase Ph, class Pipeline, class Msg = detail::no_message>
asio::awaitable<verdict> run_phase(Pipeline& p, typename Pipeline::context_type& ctx, const Msg& m = {}) {
  return p.template run_phase<Ph>(ctx, m);
}

/// Assembles stages into a pipeline for protocol P, checking every stage's contract.
template <protocol P, class... Stages>
auto make_pipeline(Stages... stages) {
  static_assert(sizeof...(Stages) > 0, "rproxy::make_pipeline: a pipeline needs at least one stage");
  static_assert(detail::distinct_types<Stages...>,
                "rproxy::make_pipeline: each stage type may appear once (ctx.state<S>() is by type); "
                "give a second instance its own tag type");
  using ctx = basic_context<typename P::flow, Stages...>;
  static_assert((detail::stage_contract<Stages, P, ctx>::value && ...));
  return basic_pipeline<P, Stages...>(std::move(stages)...);
}

/// A pipeline over raw bytes (rproxy::byte_protocol).
template <class... Stages>
  requires(!protocol<Stages> && ...)
auto make_pipeline(Stages... stages) {
  return make_pipeline<byte_protocol>(std::move(stages)...);
}

}  // namespace rproxy
