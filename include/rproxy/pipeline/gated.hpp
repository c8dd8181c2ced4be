// rproxy/pipeline/gated.hpp: runs a stage only for the flows a predicate picks, e.g. only on
// the HTTP routes whose `middleware:` list names it.
//
//     auto on_api = [](const auto& ctx) { return ctx.route == "api"; };
//     auto p = rproxy::make_pipeline<proto>(router{...},
//                                          rproxy::gated{mw::jwt_auth{...}, on_api}, ...);
//
// The predicate is asked in each hook, so it may read what earlier stages of the same phase set
// (the route picked in on_hello). The wrapped stage's on_accept runs at the start of its
// on_hello, once the predicate can tell (a request's route is not known on accept); its
// on_close always runs (it sees its state as its hooks left it, untouched when they never ran).
// The wrapper shares the wrapped stage's state slot (`state_owner`), so the stage and every
// other stage find it as `ctx.state<Stage>()` (find_principal reads a gated auth stage).
// A hook stays synchronous when the wrapped one is; an asynchronous one is not even called off
// the predicate's flows (`skip`, which the pipeline asks first).
#pragma once

#include <asio/awaitable.hpp>

#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rproxy/core/result.hpp>
#include <rproxy/pipeline/stage.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy {

namespace detail {
template <class Stage>
struct gated_state {};
template <class Stage>
  requires requires { typename Stage::state; }
struct gated_state<Stage> {
  using state = typename Stage::state;
};
}  // namespace detail

template <class Stage, class Pred>
class gated : public detail::gated_state<Stage> {
public:
  using state_owner = Stage;

  gated(Stage stage, Pred pred) : stage_(std::move(stage)), pred_(std::move(pred)) {}

  Stage& stage() noexcept { return stage_; }
  const Pred& predicate() const noexcept { return pred_; }

  /// Whether the stage does nothing for this flow: a pipeline then calls none of its
  /// asynchronous hooks (no coroutine frame for a stage off the flow's route).
  template <class Ctx>
  bool skip(const Ctx& ctx) const {
    return !pred_(ctx);
  }

  template <class Ctx, class Msg>
    requires requires(Stage& s, Ctx& c, const Msg& m) { s.on_hello(c, m); } ||
             requires(Stage& s, Ctx& c) { s.on_accept(c); }
  auto on_hello(Ctx& ctx, const Msg& m) {
    constexpr bool async = async_accept<Ctx>() || async_hook<Ctx, Msg>();
    if constexpr (!async) {
      if (!pred_(std::as_const(ctx))) return verdict(next);
      if constexpr (requires { stage_.on_accept(ctx); })
        if (verdict v = stage_.on_accept(ctx); !v.is_next()) return v;
      if constexpr (requires { stage_.on_hello(ctx, m); }) return verdict(stage_.on_hello(ctx, m));
      else return verdict(next);
    } else {
      return hello_async(ctx, m);
    }
  }

  template <class Ctx>
    requires requires(Stage& s, Ctx& c) { s.on_route(c); }
  auto on_route(Ctx& ctx) {
    return forward(ctx, [&] { return stage_.on_route(ctx); });
  }
  template <class Ctx>
    requires requires(Stage& s, Ctx& c) { s.on_connect(c); }
  auto on_connect(Ctx& ctx) {
    return forward(ctx, [&] { return stage_.on_connect(ctx); });
  }
  template <class Ctx, class Msg>
    requires requires(Stage& s, Ctx& c, const Msg& m) { s.on_message(c, m); }
  auto on_message(Ctx& ctx, const Msg& m) {
    return forward(ctx, [&] { return stage_.on_message(ctx, m); });
  }
  template <class Ctx, class Msg>
    requires requires(Stage& s, Ctx& c, const Msg& m) { s.on_response(c, m); }
  auto on_response(Ctx& ctx, const Msg& m) {
    return forward(ctx, [&] { return stage_.on_response(ctx, m); });
  }
  /// A body transform: the piece passes unchanged on a flow the predicate does not pick.
  template <class Ctx>
    requires requires(Stage& s, Ctx& c, std::string_view b, bool l) { s.on_response_body(c, b, l); }
  result<std::string_view> on_response_body(Ctx& ctx, std::string_view piece, bool last) {
    if (!pred_(std::as_const(ctx))) return piece;
    return stage_.on_response_body(ctx, piece, last);
  }
  template <class Ctx>
    requires requires(Stage& s, Ctx& c, std::error_code e) { s.on_close(c, e); }
  void on_close(Ctx& ctx, std::error_code ec) {
    stage_.on_close(ctx, ec);
  }

private:
  template <class Ctx>
  static constexpr bool async_accept() {
    if constexpr (requires(Stage& s, Ctx& c) { s.on_accept(c); })
      return is_async_result<decltype(std::declval<Stage&>().on_accept(std::declval<Ctx&>()))>;
    else
      return false;
  }
  template <class Ctx, class Msg>
  static constexpr bool async_hook() {
    if constexpr (requires(Stage& s, Ctx& c, const Msg& m) { s.on_hello(c, m); })
      return is_async_result<decltype(std::declval<Stage&>().on_hello(std::declval<Ctx&>(), std::declval<const Msg&>()))>;
    else
      return false;
  }

  template <class Ctx, class Msg>
  asio::awaitable<verdict> hello_async(Ctx& ctx, const Msg& m) {
    if (!pred_(std::as_const(ctx))) co_return verdict(next);
    if constexpr (requires { stage_.on_accept(ctx); }) {
      verdict v = next;
      if constexpr (async_accept<Ctx>()) v = co_await stage_.on_accept(ctx);
      else v = stage_.on_accept(ctx);
      if (!v.is_next()) co_return v;
    }
    if constexpr (requires { stage_.on_hello(ctx, m); }) {
      if constexpr (async_hook<Ctx, Msg>()) co_return co_await stage_.on_hello(ctx, m);
      else co_return stage_.on_hello(ctx, m);
    }
    co_return verdict(next);
  }

  template <class Ctx, class Call>
  auto forward(Ctx& ctx, Call call) {
    using R = decltype(call());
    if constexpr (is_async_result<R>) {
      return [](const Pred& pred, Ctx& c, Call f) -> asio::awaitable<verdict> {
        if (!pred(std::as_const(c))) co_return verdict(next);
        co_return co_await f();
      }(pred_, ctx, std::move(call));
    } else {
      if (!pred_(std::as_const(ctx))) return verdict(next);
      return verdict(call());
    }
  }

  Stage stage_;
  Pred pred_;
};

}  // namespace rproxy
