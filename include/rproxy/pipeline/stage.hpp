// rproxy/pipeline/stage.hpp: the contracts a pipeline stage may fulfil, one concept per hook.
//
// A stage is a plain value type that implements any subset of these hooks for a protocol `P`
// (which names the flow type and the hello / message / response types its codec produces):
//
//   verdict on_accept  (Ctx&)                              new connection
//   verdict on_hello   (Ctx&, const P::hello&)             handshake / request head / upgrade
//   verdict on_route   (Ctx&)                              choose route and backend
//   verdict on_connect (Ctx&)                              a backend connection is ready
//   verdict on_message (Ctx&, const P::message&)           body chunk / WebSocket message
//   verdict on_response(Ctx&, const P::response&)          called in reverse stage order
//   void    on_close   (Ctx&, std::error_code)             always runs, reverse order
//
// and one hook that is not a decision but a transform, always synchronous:
//
//   result<std::string_view> on_response_body(Ctx&, std::string_view piece, bool last)
//       each piece of a response body, reverse order, each stage fed the previous one's output
//       (a view the stage keeps valid until its next call); `last` once, at the body's end.
//       A flow calls it only when a stage set ctx.response_body_filtered in on_response.
//
// Each verdict-returning hook may instead return asio::awaitable<verdict> when it must wait.
// A stage with such hooks may also say, per flow, that it has nothing to do:
//
//   bool    skip       (const Ctx&)                        true: none of its asynchronous hooks
//                                                          is called for this flow (no frame)
#pragma once

#include <asio/awaitable.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>

#include <rproxy/core/result.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy {

/// A codec's description of a flow: its context base and the messages it hands the pipeline.
template <class P>
concept protocol = requires {
  typename P::flow;
  typename P::hello;
  typename P::message;
  typename P::response;
} && std::is_base_of_v<flow_base, typename P::flow>;

/// The protocol of a plain byte relay (examples/tcp_proxy): hellos and messages are raw bytes.
struct byte_protocol {
  using flow = flow_info;
  using hello = std::span<const std::byte>;
  using message = std::span<const std::byte>;
  using response = std::span<const std::byte>;
};

/// A hook's return type: decided now, or after a wait.
template <class R>
concept hook_result = std::same_as<R, verdict> || std::same_as<R, asio::awaitable<verdict>>;

template <class S, class Ctx>
concept accept_stage = requires(S& s, Ctx& c) {
  { s.on_accept(c) } -> hook_result;
};
template <class S, class Ctx, class Msg>
concept hello_stage = requires(S& s, Ctx& c, const Msg& m) {
  { s.on_hello(c, m) } -> hook_result;
};
template <class S, class Ctx>
concept route_stage = requires(S& s, Ctx& c) {
  { s.on_route(c) } -> hook_result;
};
template <class S, class Ctx>
concept connect_stage = requires(S& s, Ctx& c) {
  { s.on_connect(c) } -> hook_result;
};
template <class S, class Ctx, class Msg>
concept message_stage = requires(S& s, Ctx& c, const Msg& m) {
  { s.on_message(c, m) } -> hook_result;
};
template <class S, class Ctx, class Msg>
concept response_stage = requires(S& s, Ctx& c, const Msg& m) {
  { s.on_response(c, m) } -> hook_result;
};
template <class S, class Ctx>
concept close_stage = requires(S& s, Ctx& c, std::error_code ec) {
  { s.on_close(c, ec) } -> std::same_as<void>;
};

/// A stage that transforms response bodies (compression): see the hook list above.
template <class S, class Ctx>
concept response_body_stage = requires(S& s, Ctx& c, std::string_view piece, bool last) {
  { s.on_response_body(c, piece, last) } -> std::same_as<result<std::string_view>>;
};

/// True when the hook chosen for this call must be awaited.
template <class R>
inline constexpr bool is_async_result = std::same_as<R, asio::awaitable<verdict>>;

}  // namespace rproxy
