// rproxy/flow/h2.hpp: HTTP/2 clients on the HTTP/1.1 request pipeline (flow/http1.hpp).
//
//     rproxy::flow::h2_adapter h2{.http1 = &http1_adapter, .limits = {...}};
//     co_await rproxy::flow::serve_http(conn, reqs, http1_adapter, h2, std::move(socket), options);
//     // HTTP/1.1, or h2c with prior knowledge (the preface sniffed after on_accept)
//     // over TLS, after ALPN chose "h2": co_await serve_h2(conn, reqs, h2, tls_stream, options, eps);
//
// One connection runs the connection pipeline (`conn`: on_accept, on_close: IP filters,
// connection caps) once; each stream is a flow of the request pipeline (`reqs`), the very
// pipeline the HTTP/1.1 adapter runs, typed http1_protocol: on_hello sees the request as a
// codec::http1::request_view (codec/h2/request.hpp maps the pseudo-header fields), then
// on_route, on_connect, on_message per body piece, on_response with the backend's response
// head, on_close once per stream. So a stage does not know which protocol the client speaks.
//
// What HTTP/2 adds, in codec/h2/server_session.hpp (sans-I/O, nghttp2): framing, HPACK, the
// RFC 9113 §8 checks (malformed and smuggling-shaped requests are refused there and never
// become a flow), header and body bounds, streams per connection, header and idle timeouts,
// and the flood defences. This file drives it:
//   - one reader (client bytes into the session), one writer (the session's bytes out, one
//     write per turn), one ticker (the session's timeouts; drain: GOAWAY), and a coroutine per
//     stream, all on the connection's executor (one thread: no locks).
//   - each stream is forwarded to its HTTP/1.1 backend as the HTTP/1.1 adapter would
//     (http1_adapter::upstream_head: forwarding rules, the stages' fields; Content-Length or
//     chunked), concurrently with the others. Request bodies stream up with flow control as
//     the backpressure: window is given back (server_session::consume) only once the bytes are
//     written to the backend, so a stream holds at most limits.stream_window of them. Response
//     bodies stream down: the backend is read again once the stream's queue is below
//     max_queued (the client's window drains it).
//   - responses are converted: hop-by-hop and framing fields dropped (Content-Length kept unless
//     a stage transforms the body: on_response_body, e.g. compression), 1xx dropped, trailers
//     passed on. A refusal, a failed connect, a stage's `replied` answer:
//     the HTTP/1.1 adapter's bytes (same status, same JSON body, same fields), converted.
//   - a backend that dies mid-response resets that stream (RST_STREAM INTERNAL_ERROR); the
//     connection and its other streams go on. A client that resets a stream closes its backend
//     connection.
//   - backend connections are kept per client connection (at most max_kept_backends) and used
//     again only for bodiless idempotent requests (a stale one is retried once, fresh).
//   - RFC 8441 extended CONNECT (limits.enable_connect_protocol; :protocol a protocol the
//     HTTP/1.1 adapter's `upgrades` lists): forwarded as that HTTP/1.1 upgrade, answered 200
//     once the backend's 101 checks out, then bytes both ways as the stream's DATA (tunnel()).
//   - backends are reached over TCP or TLS as the flow's ctx.upstream says (flow/upstream.hpp).
// Not here: the PROXY protocol before the preface, HTTP/2 to backends.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rproxy/flow/h2_connection.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/listener.hpp>

namespace rproxy::flow {

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
inline constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain connection starts with the HTTP/2 preface (h2c with prior knowledge), looked
/// at without taking the bytes (MSG_PEEK), so either adapter reads them from the start. Decided
/// at the first byte that differs (an HTTP/1.1 request), or once all 24 are there. Errors: the
/// client closed, or sent too little within `timeout` (net::error::idle_timeout). `early`:
/// client bytes already taken (read with a PROXY header): they come first.
inline asio::awaitable<std::pair<std::error_code, bool>> sniff_h2_preface(asio::ip::tcp::socket& s, std::chrono::milliseconds timeout,
                                                                           std::string_view early = {}) {
  early = early.substr(0, std::min(early.size(), h2_preface.size()));
  if (early != h2_preface.substr(0, early.size())) co_return std::pair{std::error_code{}, false};
  if (early.size() == h2_preface.size()) co_return std::pair{std::error_code{}, true};
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::array<char, h2_preface.size()> buf;
  std::copy(early.begin(), early.end(), buf.begin());
  asio::steady_timer pause(s.get_executor());
  for (bool readable = false;;) {
    if (!readable) {
      auto [ec] = co_await net::with_deadline(s.async_wait(asio::socket_base::wait_read, asio::experimental::deferred), until);
      if (ec) co_return std::pair{ec, false};
    }
    const auto n = ::recv(s.native_handle(), buf.data() + early.size(), buf.size() - early.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) co_return std::pair{std::error_code(asio::error::eof), false};
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        readable = false;
        continue;
      }
      co_return std::pair{std::error_code(errno, std::system_category()), false};
    }
    const std::string_view got(buf.data(), early.size() + static_cast<std::size_t>(n));
    if (got != h2_preface.substr(0, got.size())) co_return std::pair{std::error_code{}, false};
    if (got.size() == h2_preface.size()) co_return std::pair{std::error_code{}, true};
    // Part of the preface: the rest is on its way. The socket stays readable (the bytes are
    // still there), so look again after a moment rather than wait for readability.
    if (std::chrono::steady_clock::now() >= until) co_return std::pair{make_error_code(net::error::idle_timeout), false};
    pause.expires_after(std::chrono::milliseconds(5));
    auto [pec] = co_await pause.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    (void)pec;
    readable = true;
  }
}
/// Serves one HTTP/2 client connection (`client`: a TCP socket after sniff_h2_preface, or a TLS
/// stream whose ALPN chose "h2"): `conn` runs on_accept and on_close once, `p` a flow per
/// stream. `early`: client bytes already read (the preface, if taken). Completes once every
/// stream's flow has ended, with the error that ended the connection (none: a clean end).
template <class ConnPipeline, class Pipeline, class Stream>
asio::awaitable<std::error_code> serve_h2(ConnPipeline& conn, Pipeline& p, const h2_adapter& a, Stream& client, const options& o,
                                          std::optional<net::accepted_endpoints> eps = std::nullopt, std::string_view early = {}) {
  auto cctx = conn.make_context();
  detail::fill(cctx, detail::tcp_of(client), eps ? &*eps : nullptr);
  cctx.tls = !std::is_same_v<Stream, asio::ip::tcp::socket>;
  auto ec = co_await detail::guarded([&]() -> asio::awaitable<std::error_code> {
    std::optional<reject_reason> refused;
    if (auto v = co_await run_phase<phase::accept>(conn, cctx); !v.is_next()) {
      if (!v.is_reject()) co_return make_error_code(std::errc::connection_aborted);  // a stage answered on accept
      cctx.rejected = refused = v.reason();  // each request is told why
    }
    h2_detail::connection<Stream, Pipeline, decltype(cctx)> c(client, p, a, o, cctx, refused);
    co_return co_await c.run(early);
  });
  std::error_code ignored;
  detail::tcp_of(client).close(ignored);
  conn.close(cctx, ec);
  co_return ec;
}

/// Serves one plain TCP client connection that speaks HTTP/1.1 or, when it starts with the
/// preface, HTTP/2 (h2c with prior knowledge). The connection's start comes first: the PROXY
/// header (trusted peers) and `conn`'s on_accept, so IP filters and connection caps count a
/// client that has not sent a byte yet; then the first bytes choose the protocol.
template <class ConnPipeline, class Pipeline>
asio::awaitable<std::error_code> serve_http(ConnPipeline& conn, Pipeline& p, const http1_adapter& h1, const h2_adapter& h2,
                                            asio::ip::tcp::socket client, const options& o,
                                            std::optional<net::accepted_endpoints> eps = std::nullopt) {
  auto cctx = conn.make_context();
  detail::fill(cctx, client, eps ? &*eps : nullptr);
  auto reader = detail::make_reader(h1);
  auto ec = co_await detail::guarded([&]() -> asio::awaitable<std::error_code> {
    auto acc = co_await detail::accept(conn, h1, cctx, client, o);
    if (acc.ec) co_return acc.ec;
    auto [sec, is_h2] = co_await sniff_h2_preface(client, acc.refused ? o.rejected_hello_timeout : o.hello_timeout, acc.early);
    if (sec) co_return sec;  // closed, or silent: nothing to answer
    if (!is_h2) co_return co_await detail::serve_flows(cctx, p, h1, client, o, reader, acc);
    h2_detail::connection<asio::ip::tcp::socket, Pipeline, decltype(cctx)> c(client, p, h2, o, cctx, acc.refused);
    co_return co_await c.run(acc.early);
  });
  detail::end(client);
  conn.close(cctx, ec);
  co_return ec;
}

}  // namespace rproxy::flow
