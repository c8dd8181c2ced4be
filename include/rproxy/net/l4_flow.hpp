// rproxy/net/l4_flow.hpp: one TCP flow through a pipeline, from accept to close: the L4 proxy
// path shared by examples/tcp_proxy and any app that relays bytes untouched.
//
//     asio::co_spawn(ex, rproxy::net::serve_l4_flow(pipeline, std::move(socket), options,
//                                                   [&](const asio::ip::address& a) { return trusted(a); }),
//                    asio::detached);
//
// Steps, each bounded in time:
//   1. PROXY protocol in (if enabled and the peer is trusted): read the header within
//      header_timeout; the real client goes into ctx.client. A required header that is missing or
//      malformed ends the flow; an untrusted peer's header is never believed.
//   2. on_accept, then on_route (a balancer sets ctx.backend). A rejection closes the client.
//   3. connect within connect_timeout; a retry-safe failure (nothing reached the backend) is
//      put in ctx.connect_error and on_route runs again: the balance stage reports the failed
//      pick (outlier detection and the breaker learn of it) and picks another backend, up to
//      max_connect_attempts in all.
//   4. PROXY protocol out (v1 or v2) and any client bytes already read, then the relay
//      (half-close, idle timeout, bounded buffers, splice(2) where possible).
//   5. on_close for every stage, always, with the error that ended the flow (none: clean end).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <utility>

#include <rproxy/core/result.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/proxy_protocol.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

namespace rproxy::net {

enum class proxy_accept { none, optional, required };
enum class proxy_send { none, v1, v2 };

struct l4_options {
  proxy_accept accept = proxy_accept::none;
  proxy_send send = proxy_send::none;
  std::chrono::milliseconds header_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  unsigned max_connect_attempts = 3;
  relay_options relay{};
};

namespace detail {

/// Runs a pipeline phase whether its hooks are synchronous or not.
template <phase Ph, class Pipeline, class Ctx>
asio::awaitable<verdict> run_phase(Pipeline& p, Ctx& ctx) {
  if constexpr (Ph == phase::accept) {
    if constexpr (Pipeline::is_async(phase::accept)) co_return co_await p.accept(ctx);
    else co_return p.accept(ctx);
  } else {
    if constexpr (Pipeline::is_async(phase::route)) co_return co_await p.route(ctx);
    else co_return p.route(ctx);
  }
}

/// Reads a PROXY header. Returns the client bytes read past it (payload) or an error.
inline asio::awaitable<std::error_code> read_proxy_header(asio::ip::tcp::socket& s, bool optional,
                                                          std::chrono::milliseconds timeout,
                                                          proxy_protocol::header& out, std::string& payload) {
  using asio::experimental::as_tuple;
  proxy_protocol::parser parser({.optional = optional});
  asio::steady_timer timer(s.get_executor());
  bool timed_out = false;
  timer.expires_after(timeout);
  timer.async_wait([&](std::error_code ec) {
    if (!ec) {
      timed_out = true;
      s.cancel(ec);
    }
  });
  char buf[512];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), as_tuple(asio::use_awaitable));
    if (ec) {
      timer.cancel();
      co_return timed_out ? make_error_code(error::idle_timeout) : classify(ec, side::downstream);
    }
    auto r = parser.parse(std::string_view(buf, n));
    switch (r.status) {
      case proxy_protocol::parse_status::need_more:
        continue;
      case proxy_protocol::parse_status::done:
        timer.cancel();
        out = parser.take();
        payload.assign(buf + r.consumed, n - r.consumed);
        co_return std::error_code{};
      case proxy_protocol::parse_status::not_proxy: {
        timer.cancel();
        auto b = parser.buffered();
        payload.assign(reinterpret_cast<const char*>(b.data()), b.size());
        payload.append(buf, n);
        co_return std::error_code{};
      }
      case proxy_protocol::parse_status::error:
        timer.cancel();
        co_return r.error;
    }
  }
}

/// The first bytes of a peer that may not send a PROXY header, into `payload`, until they
/// show whether they start one (proxy_protocol::match_signature). True: they do.
inline asio::awaitable<result<bool>> starts_with_proxy_header(asio::ip::tcp::socket& s,
                                                              std::chrono::milliseconds timeout, std::string& payload) {
  using asio::experimental::as_tuple;
  asio::steady_timer timer(s.get_executor());
  bool timed_out = false;
  timer.expires_after(timeout);
  timer.async_wait([&](std::error_code ec) {
    if (!ec) {
      timed_out = true;
      s.cancel(ec);
    }
  });
  char buf[512];
  for (;;) {
    const auto m = proxy_protocol::match_signature(payload);
    if (m != proxy_protocol::signature_match::partial) {
      timer.cancel();
      co_return m != proxy_protocol::signature_match::none;
    }
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), as_tuple(asio::use_awaitable));
    if (ec) {
      timer.cancel();
      co_return failure(timed_out ? make_error_code(error::idle_timeout) : classify(ec, side::downstream));
    }
    payload.append(buf, n);
  }
}

/// Step 1 of a flow: the PROXY header, if `accept` wants one and the peer may send it. The real
/// client goes into ctx.client / ctx.local; client bytes read past the header go to `early`.
/// An untrusted peer is refused when the header is required (its header is never believed),
/// and, when it is optional, if it sends one anyway (a backend that trusts this proxy would).
template <class Ctx, class Trusted>
asio::awaitable<std::error_code> accept_proxy_header(asio::ip::tcp::socket& client, Ctx& ctx, proxy_accept accept,
                                                     std::chrono::milliseconds timeout, Trusted& is_trusted,
                                                     std::string& early) {
  if (accept == proxy_accept::none) co_return std::error_code{};
  if (!is_trusted(ctx.client.address())) {
    if (accept != proxy_accept::required) {
      auto sent = co_await starts_with_proxy_header(client, timeout, early);
      if (!sent) co_return sent.error();
      if (!*sent) co_return std::error_code{};
    }
    ctx.rejected = reject_reason{reject_code::forbidden, "PROXY header from an untrusted peer"};
    co_return make_error_code(proxy_error::bad_signature);
  }
  proxy_protocol::header h;
  if (auto ec = co_await read_proxy_header(client, accept == proxy_accept::optional, timeout, h, early)) co_return ec;
  if (h.command == proxy_protocol::command::proxy && h.has_addresses()) {
    ctx.client = h.source;
    ctx.local = h.destination;
  }
  co_return std::error_code{};
}

inline std::string proxy_header_out(proxy_send send, const asio::ip::tcp::endpoint& client,
                                    const asio::ip::tcp::endpoint& local) {
  auto h = proxy_protocol::make_header(client, local);
  if (send == proxy_send::v1) return proxy_protocol::write_v1(h);
  auto bin = proxy_protocol::write_v2(h);
  return std::string(reinterpret_cast<const char*>(bin.data()), bin.size());
}

}  // namespace detail

/// Serves one accepted client socket through `p`. `is_trusted(address)` says whether a peer
/// may send a PROXY header. Completes with the error that ended the flow (none: clean end).
template <class Pipeline, class Trusted>
asio::awaitable<std::error_code> serve_l4_flow(Pipeline& p, asio::ip::tcp::socket client, l4_options o,
                                               Trusted is_trusted) {
  auto ctx = p.make_context();
  std::error_code ec;
  ctx.started = std::chrono::steady_clock::now();
  ctx.client = client.remote_endpoint(ec);
  ctx.local = client.local_endpoint(ec);
  ec = co_await serve_l4_flow(p, ctx, client, std::move(o), std::move(is_trusted));
  std::error_code ignored;
  client.close(ignored);
  p.close(ctx, ec);
  co_return ec;
}

/// The same with a context the caller made (and closes: the caller runs p.close(ctx, ec)).
template <class Pipeline, class Trusted>
asio::awaitable<std::error_code> serve_l4_flow(Pipeline& p, typename Pipeline::context_type& ctx,
                                               asio::ip::tcp::socket& client, l4_options o, Trusted is_trusted) {
  using asio::experimental::as_tuple;
  std::string early;  // client bytes read with the PROXY header: relayed first
  if (auto ec = co_await detail::accept_proxy_header(client, ctx, o.accept, o.header_timeout, is_trusted, early)) co_return ec;

  if (auto v = co_await detail::run_phase<phase::accept>(p, ctx); !v.is_next()) {
    if (v.is_reject()) ctx.rejected = v.reason();
    co_return std::error_code{};
  }

  asio::ip::tcp::socket backend(client.get_executor());
  std::error_code ec;
  for (unsigned attempt = 0; attempt < std::max(1u, o.max_connect_attempts); ++attempt) {
    auto v = co_await detail::run_phase<phase::route>(p, ctx);
    if (!v.is_next()) {
      if (v.is_reject()) ctx.rejected = v.reason();
      co_return ec;  // the last connect error, if any
    }
    if (!ctx.backend) co_return make_error_code(error::no_endpoints);
    auto [cec, sock] = co_await async_connect(client.get_executor(), *ctx.backend, o.connect_timeout,
                                              as_tuple(asio::use_awaitable));
    ec = cec;
    if (!ec) {
      ctx.connect_error = {};
      backend = std::move(sock);
      break;
    }
    ctx.connect_error = ec;  // the next on_route reports it against this pick
    if (ec != condition::retry_safe) co_return ec;
  }
  if (ec) co_return ec;
  std::error_code nd;
  backend.set_option(asio::ip::tcp::no_delay(true), nd);

  o.relay.initial_to_backend.clear();
  if (o.send != proxy_send::none) o.relay.initial_to_backend = detail::proxy_header_out(o.send, ctx.client, ctx.local);
  o.relay.initial_to_backend += early;
  auto [rec, stats] = co_await async_relay(client, backend, std::move(o.relay), as_tuple(asio::use_awaitable));
  ctx.bytes_from_client += stats.bytes_client_to_backend + early.size();
  ctx.bytes_to_client += stats.bytes_backend_to_client;
  backend.close(nd);
  co_return rec;
}

}  // namespace rproxy::net
