// rproxy/net/mc_flow.hpp: one Minecraft client connection through a pipeline, from accept to
// close: what mc-proxy runs for every connection (the Minecraft twin of net/l4_flow.hpp).
//
//     asio::co_spawn(ex, rproxy::net::serve_mc_flow(pipeline, std::move(socket), options,
//                                                   is_trusted, hooks), asio::detached);
//
// Steps, each bounded in time:
//   1. PROXY protocol in, as in l4_flow (trusted peers only); the real client goes into ctx.client.
//   2. on_accept (IP filter, bans, connection caps). A rejection is remembered: the hello is still
//      read, for a short while, so the client is told why in its own protocol.
//   3. The hello (codec/mc/hello.hpp) within hello_timeout: a legacy ping, or the handshake and
//      then the Status Request or the Login Start. A malformed one or a slow one (slowloris)
//      closes the connection; nothing is sent to any backend.
//   4. on_hello (bans by user name, rate limits by operation "status" / "login"), on_route
//      (router, status cache, balancer). A stage may answer itself (`replied`, with ctx.reply):
//      a status reply is then followed by the pong to the client's ping.
//   5. Login: connect within connect_timeout, failing over on retry-safe errors (on_route again,
//      with ctx.connect_error set: balance/flow_pick.hpp counts and avoids the failed backend);
//      send the PROXY header if the stage asked for one, the hello bytes exactly as received
//      (the handshake re-encoded only when ctx.rewrite_host is set or client-sent forwarding
//      data is stripped: ctx.keep_forwarding_data) and anything the client sent
//      after them, then relay bytes both ways untouched (splice(2) where possible).
//   6. A rejection is rendered as the client expects it: a Login Disconnect with the message, a
//      status response with the message as MOTD, or a legacy kick.
//   7. on_close for every stage, always, with the error that ended the flow (none: clean end).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/hello.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/protocol.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/l4_flow.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/host.hpp>

namespace rproxy::net {

struct mc_options {
  proxy_accept accept = proxy_accept::none;
  std::chrono::milliseconds header_timeout{std::chrono::seconds(5)};  ///< PROXY header
  /// From accept to a whole hello (handshake + status request or Login Start), and from a
  /// status reply to the client's ping.
  std::chrono::milliseconds hello_timeout{std::chrono::seconds(5)};
  /// How long a connection already refused on accept may take to say hello (to be told why).
  std::chrono::milliseconds rejected_hello_timeout{std::chrono::seconds(1)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(3)};
  unsigned max_connect_attempts = 3;
  codec::mc::hello_options hello{};
  relay_options relay{};
};

/// What the app decides at two points the pipeline phases do not cover.
struct mc_default_hooks {
  /// No backend could be reached for a login: what the player is told.
  template <class Ctx>
  reject_reason connect_failed(Ctx&, std::error_code) {
    return {reject_code::unavailable, {}};
  }
  /// The relay to a backend is about to start (the player is joining).
  template <class Ctx>
  void joined(Ctx&) {}
};

namespace detail {

template <phase Ph, class Pipeline, class Ctx, class Msg>
asio::awaitable<verdict> run_mc_phase(Pipeline& p, Ctx& ctx, const Msg& m) {
  if constexpr (Ph == phase::accept) {
    if constexpr (Pipeline::is_async(phase::accept)) co_return co_await p.accept(ctx);
    else co_return p.accept(ctx);
  } else if constexpr (Ph == phase::hello) {
    if constexpr (Pipeline::is_async(phase::hello)) co_return co_await p.hello(ctx, m);
    else co_return p.hello(ctx, m);
  } else {
    if constexpr (Pipeline::is_async(phase::route)) co_return co_await p.route(ctx);
    else co_return p.route(ctx);
  }
}

/// Reads into the hello reader until it yields an event, fails, or the deadline passes.
/// A lone 0xFE (or 0xFE 0x01) is settled as a legacy ping once the client pauses.
inline asio::awaitable<codec::mc::decode_result<codec::mc::hello_event>> next_hello_event(
    asio::ip::tcp::socket& s, codec::mc::hello_reader& hello, std::chrono::steady_clock::time_point deadline) {
  using asio::experimental::as_tuple;
  using R = codec::mc::decode_result<codec::mc::hello_event>;
  constexpr auto legacy_pause = std::chrono::milliseconds(300);
  for (;;) {
    auto ev = hello.next();
    if (!ev.need_more()) co_return ev;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) co_return R::failure(make_error_code(error::idle_timeout));
    const auto u = hello.unread();
    const bool maybe_legacy = !u.empty() && u.size() <= 2 && u[0] == std::byte{0xFE} && !hello.handshake_packet();
    auto wait_until = maybe_legacy ? std::min(deadline, now + legacy_pause) : deadline;
    asio::steady_timer timer(s.get_executor());
    bool fired = false;
    timer.expires_at(wait_until);
    timer.async_wait([&](std::error_code ec) {
      if (ec) return;
      fired = true;
      s.cancel(ec);
    });
    auto room = hello.prepare(2048);
    auto [ec, n] = co_await s.async_read_some(asio::buffer(room.data(), room.size()), as_tuple(asio::use_awaitable));
    timer.cancel();
    if (ec) {
      if (fired && maybe_legacy) co_return hello.next(true);
      co_return R::failure(fired ? make_error_code(error::idle_timeout) : classify(ec, side::downstream));
    }
    hello.commit(n);
  }
}

/// The bytes that tell a client it was refused, in the state it reached ("" if none applies).
template <class Ctx>
codec::mc::bytes render_reject(const Ctx& ctx, const reject_reason& why) {
  namespace mc = codec::mc;
  if (ctx.legacy) {
    mc::legacy_status st;
    st.motd = why.message.empty() ? std::string(mc::default_reject_message(why.code)) : std::string(why.message);
    st.version_name = "rproxy";
    return mc::make_legacy_kick(*ctx.legacy, st);
  }
  if (ctx.at == mc::state::status || ctx.at == mc::state::login) return mc::make_disconnect(ctx.at, why);
  return {};
}

template <class Stream>
asio::awaitable<std::error_code> write_all(Stream& s, const codec::mc::bytes& b) {
  using asio::experimental::as_tuple;
  if (b.empty()) co_return std::error_code{};
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(b), as_tuple(asio::use_awaitable));
  (void)n;
  co_return ec ? classify(ec, side::downstream) : std::error_code{};
}

/// After a status answer: echo the client's ping (if it sends one in time), then close.
inline asio::awaitable<std::error_code> answer_ping(asio::ip::tcp::socket& s, codec::mc::hello_reader& hello,
                                                    std::chrono::milliseconds timeout) {
  namespace mc = codec::mc;
  auto ev = co_await next_hello_event(s, hello, std::chrono::steady_clock::now() + timeout);
  if (!ev) co_return std::error_code{};  // no ping (or not in time): the answer was given
  if (auto* ping = std::get_if<mc::ping_request>(&*ev)) {
    mc::bytes out;
    mc::append_pong(out, ping->payload);
    co_return co_await write_all(s, out);
  }
  co_return std::error_code{};
}

}  // namespace detail

/// Serves one accepted Minecraft client through `p`. `is_trusted(address)` says whether a peer
/// may send a PROXY header; `hooks` is mc_default_hooks or the app's own. Returns the error that
/// ended the flow (none: clean end).
template <class Pipeline, class Trusted, class Hooks = mc_default_hooks>
asio::awaitable<std::error_code> serve_mc_flow(Pipeline& p, asio::ip::tcp::socket client, mc_options o,
                                               Trusted is_trusted, Hooks hooks = {}) {
  auto ctx = p.make_context();
  std::error_code ec;
  ctx.started = std::chrono::steady_clock::now();
  ctx.client = client.remote_endpoint(ec);
  ctx.local = client.local_endpoint(ec);
  ec = co_await serve_mc_flow(p, ctx, client, std::move(o), std::move(is_trusted), hooks);
  std::error_code ignored;
  client.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  client.close(ignored);
  p.close(ctx, ec);
  co_return ec;
}

/// The same with a context the caller made and closes (the caller runs p.close(ctx, ec)).
template <class Pipeline, class Trusted, class Hooks = mc_default_hooks>
asio::awaitable<std::error_code> serve_mc_flow(Pipeline& p, typename Pipeline::context_type& ctx,
                                               asio::ip::tcp::socket& client, mc_options o, Trusted is_trusted,
                                               Hooks& hooks) {
  using asio::experimental::as_tuple;
  namespace mc = codec::mc;
  const mc::hello no_hello{};

  // 1. PROXY protocol in.
  std::string early;
  if (auto ec = co_await detail::accept_proxy_header(client, ctx, o.accept, o.header_timeout, is_trusted, early)) co_return ec;

  // 2. on_accept: a refusal is told to the client once its hello says how.
  std::optional<reject_reason> refused;
  if (auto v = co_await detail::run_mc_phase<phase::accept>(p, ctx, no_hello); !v.is_next()) {
    if (!v.is_reject()) co_return std::error_code{};
    refused = v.reason();
    ctx.rejected = v.reason();
  }

  // 3. The hello.
  mc::hello_reader hello(o.hello);
  hello.feed(mc::as_bytes(early));
  const auto deadline = ctx.started + (refused ? o.rejected_hello_timeout : o.hello_timeout);
  std::optional<mc::legacy_ping> legacy;
  std::optional<mc::login_start> login;
  std::size_t handshake_size = 0;
  for (;;) {
    auto ev = co_await detail::next_hello_event(client, hello, deadline);
    if (!ev) {
      if (refused) co_return co_await detail::write_all(client, detail::render_reject(ctx, *refused));
      co_return ev.error();
    }
    if (auto* l = std::get_if<mc::legacy_ping>(&*ev)) {
      ctx.legacy = l->kind;
      ctx.host = route::normalize_host(l->host);
      legacy = std::move(*l);
      break;
    }
    if (auto* hs = std::get_if<mc::handshake>(&*ev)) {
      handshake_size = ev.size();
      auto a = hs->address();
      ctx.host = std::move(a.host);
      ctx.protocol = hs->protocol_version;
      ctx.next = hs->next_state;
      ctx.at = hello.current_state();
      continue;
    }
    if (std::holds_alternative<mc::status_request>(*ev)) break;
    if (auto* ls = std::get_if<mc::login_start>(&*ev)) {
      ctx.username = ls->username;
      ctx.identity = ls->username;
      login = std::move(*ls);
      break;
    }
    // A ping before any status request: answer it (vanilla never does this) and stop.
    if (auto* ping = std::get_if<mc::ping_request>(&*ev)) {
      mc::bytes out;
      mc::append_pong(out, ping->payload);
      co_return co_await detail::write_all(client, out);
    }
  }
  ctx.hello_done = std::chrono::steady_clock::now();
  if (refused) co_return co_await detail::write_all(client, detail::render_reject(ctx, *refused));

  // 4. on_hello, on_route.
  const mc::hello view{hello.handshake_packet() ? &*hello.handshake_packet() : nullptr, login ? &*login : nullptr,
                       legacy ? &*legacy : nullptr};
  const auto stop = [&](const verdict& v) -> asio::awaitable<std::error_code> {
    if (v.is_reject()) {
      ctx.rejected = v.reason();
      co_return co_await detail::write_all(client, detail::render_reject(ctx, v.reason()));
    }
    // replied: the stage's answer, then (status) the pong.
    if (auto ec = co_await detail::write_all(client, ctx.reply)) co_return ec;
    if (!ctx.legacy && ctx.at == mc::state::status) co_return co_await detail::answer_ping(client, hello, o.hello_timeout);
    co_return std::error_code{};
  };
  if (auto v = co_await detail::run_mc_phase<phase::hello>(p, ctx, view); !v.is_next()) co_return co_await stop(v);

  // 5. Route, connect (with failover), replay, relay.
  asio::ip::tcp::socket backend(client.get_executor());
  std::error_code ec;
  for (unsigned attempt = 0; attempt < std::max(1u, o.max_connect_attempts); ++attempt) {
    auto v = co_await detail::run_mc_phase<phase::route>(p, ctx, view);
    if (!v.is_next()) {
      if (ec && v.is_reject()) break;  // no backend left after a failed connect
      co_return co_await stop(v);
    }
    if (!login || !ctx.backend) {
      // Nothing answered a status or legacy ping and no backend was picked for it.
      co_return co_await stop(reject(reject_code::unavailable));
    }
    auto [cec, sock] = co_await async_connect(client.get_executor(), *ctx.backend, o.connect_timeout,
                                              as_tuple(asio::use_awaitable));
    ec = cec;
    if (!ec) {
      ctx.connect_error = {};
      backend = std::move(sock);
      break;
    }
    ctx.connect_error = ec;  // the next on_route reports it against this pick
    if (ec != condition::retry_safe) break;
  }
  if (ec) {
    auto why = hooks.connect_failed(ctx, ec);
    ctx.rejected = why;
    (void)co_await detail::write_all(client, detail::render_reject(ctx, why));
    co_return ec;
  }
  std::error_code nd;
  backend.set_option(asio::ip::tcp::no_delay(true), nd);

  std::string first;
  if (ctx.proxy_out != proxy_send::none) first = detail::proxy_header_out(ctx.proxy_out, ctx.client, ctx.local);
  const auto replay = hello.replay();
  const auto& sent = hello.handshake_packet();  // std::optional<mc::handshake>
  const bool strip = sent && !ctx.keep_forwarding_data && mc::has_forwarding_data(*sent);
  if (sent && (!ctx.rewrite_host.empty() || strip)) {
    mc::handshake out = strip ? mc::without_forwarding_data(*sent) : *sent;
    if (!ctx.rewrite_host.empty()) out = mc::with_host(out, ctx.rewrite_host);
    mc::bytes hs;
    mc::append_handshake(hs, out);
    first.append(mc::as_chars(hs));
    first.append(mc::as_chars(replay.subspan(handshake_size)));
  } else {
    first.append(mc::as_chars(replay));
  }
  first.append(mc::as_chars(hello.unread()));
  o.relay.initial_to_backend = std::move(first);
  ctx.joined = true;
  hooks.joined(ctx);
  auto [rec, stats] = co_await async_relay(client, backend, std::move(o.relay), as_tuple(asio::use_awaitable));
  ctx.bytes_from_client += stats.bytes_client_to_backend + replay.size() + hello.unread().size();
  ctx.bytes_to_client += stats.bytes_backend_to_client;
  backend.close(nd);
  co_return rec;
}

}  // namespace rproxy::net
