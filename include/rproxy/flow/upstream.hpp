// rproxy/flow/upstream.hpp: how an HTTP flow reaches the backend a balancer picked: plain TCP,
// or TLS over it (verified, SNI), as the backend's group says. A stage sets ctx.upstream with
// ctx.backend (the gateway: per group); none means plain TCP.
//
//     rproxy::flow::upstream_settings tls_group{.tls = &client_ctx, .sni = "api.internal"};
//     ctx.upstream = &tls_group;                                      // in on_route
//     auto [ec, s] = co_await rproxy::flow::connect_upstream(ex, *ctx.backend, ctx.upstream, 2s);
//
// The connect timeout bounds the TCP connect and, again, the TLS handshake. The errors are the
// connector's (net::error::connect_*: retry-safe) and net::error::tls_verify_failed /
// tls_handshake_failed (retry-safe too: nothing of the request was sent).
// A backend's protocol (HTTP/1.1 today) is the one switch here: another protocol adds a field,
// not a second path through the flows.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <chrono>
#include <string>
#include <system_error>
#include <utility>

#include <rproxy/net/connector.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/net/upstream_stream.hpp>

namespace rproxy::flow {

/// How to speak to a group of backends (config-owned; flows point at it).
struct upstream_settings {
  const net::tls_client_context* tls = nullptr;  ///< TLS with this context (none: plain TCP)
  std::string sni{};  ///< the name sent (SNI) and verified; empty: no SNI, the backend's IP address verified
  /// Whether connections made with these settings may carry the flows of those made with `o`.
  bool same_transport(const upstream_settings* o) const noexcept {
    return o != nullptr && tls == o->tls && sni == o->sni;
  }
};

/// Whether two flows' settings reach a backend the same way (nullptr: plain TCP).
inline bool same_transport(const upstream_settings* a, const upstream_settings* b) noexcept {
  const bool plain_a = a == nullptr || a->tls == nullptr;
  const bool plain_b = b == nullptr || b->tls == nullptr;
  if (plain_a || plain_b) return plain_a == plain_b;
  return a->same_transport(b);
}

/// A connection to `ep`, plain or as `settings` say, within `timeout` for the connect and again
/// for the TLS handshake. On failure the stream is closed.
inline asio::awaitable<std::pair<std::error_code, net::upstream_stream>> connect_upstream(
    const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep, const upstream_settings* settings,
    std::chrono::milliseconds timeout) {
  auto [ec, sock] = co_await net::async_connect(ex, ep, timeout, asio::experimental::as_tuple(asio::use_awaitable));
  net::upstream_stream s(std::move(sock));
  if (ec || settings == nullptr || settings->tls == nullptr) co_return std::pair{ec, std::move(s)};
  s.start_tls(settings->tls->context());
  auto hec = co_await net::async_client_handshake(s.tls(), *settings->tls, settings->sni, ep, timeout);  // (resumes a kept session)
  if (hec) {
    std::error_code ignored;
    s.close(ignored);
  }
  co_return std::pair{hec, std::move(s)};
}

}  // namespace rproxy::flow
