// rproxy/health/probe.hpp: active health probes, one check of one backend endpoint each.
//
//     rproxy::health::tcp_probe tcp;                               // connect, then close
//     rproxy::health::http_probe http{.path = "/healthz", .expect_status = 200,
//                                     .body_contains = "ok"};      // HTTP/1.1 GET
//     auto r = co_await http.check(ex, endpoint, std::chrono::seconds(2));
//     if (!r.error) ...;          // healthy; r.latency is the time the check took
//     else log(r.error.message(), r.detail);
//
// A probe is any type with `asio::awaitable<probe_result> check(executor, endpoint, timeout)`
// (the `probe` concept): a checker (health/checker.hpp) takes its probe type as a template
// parameter, so an app adds its own (mc-proxy: a Minecraft status ping) without touching this
// file. A check must finish within about `timeout` and report failures in `probe_result::error`
// (empty: healthy); it should be cancellable through the coroutine's cancellation slot, which
// every asio operation awaited with use_awaitable is. The checker also guards against a probe
// that overruns its timeout.
//
// Errors: connect failures are net::error codes (connect_refused, connect_timeout, ...); a
// malformed reply is a codec::http1 code (upstream); the rest are health::error codes
// (probe_timeout, bad_status, body_mismatch, response_too_large, closed_early). `detail` is a
// short text for logs (the status seen, never the body).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <string>
#include <system_error>

#include <rproxy/health/detail/http_get.hpp>
#include <rproxy/health/error.hpp>
#include <rproxy/net/connector.hpp>

namespace rproxy::health {

/// The outcome of one check. `error` empty: healthy.
struct probe_result {
  std::error_code error{};
  std::chrono::nanoseconds latency{};  ///< how long the check took (connect, or whole reply)
  std::string detail{};                ///< short, for logs; never secrets or response bodies

  bool healthy() const noexcept { return !error; }
};

template <class P>
concept probe = requires(P& p, asio::any_io_executor ex, const asio::ip::tcp::endpoint& ep,
                         std::chrono::milliseconds t) {
  { p.check(ex, ep, t) } -> std::same_as<asio::awaitable<probe_result>>;
};

/// Healthy when a TCP connection opens within the timeout; the connection is closed at once.
struct tcp_probe {
  asio::awaitable<probe_result> check(asio::any_io_executor ex, const asio::ip::tcp::endpoint& ep,
                                      std::chrono::milliseconds timeout) {
    using asio::experimental::as_tuple;
    const auto start = std::chrono::steady_clock::now();
    auto [ec, s] = co_await net::async_connect(ex, ep, timeout, as_tuple(asio::use_awaitable));
    probe_result r;
    r.error = ec;
    r.latency = std::chrono::steady_clock::now() - start;
    if (!ec) {
      std::error_code ignored;
      s.close(ignored);
    }
    co_return r;
  }
};

/// Healthy when `GET path` answers `expect_status` (0: any 2xx) within the timeout and, if
/// `body_contains` is set, the body contains it. The reply is bounded by `max_response`.
struct http_probe {
  std::string path = "/";
  std::string host{};                   ///< Host field; empty: the backend's address:port
  unsigned expect_status = 200;         ///< 0: any 2xx
  std::string body_contains{};          ///< empty: not checked
  std::size_t max_response = 64 * 1024;  ///< head and body; more is response_too_large

  asio::awaitable<probe_result> check(asio::any_io_executor ex, const asio::ip::tcp::endpoint& ep,
                                      std::chrono::milliseconds timeout) {
    auto g = co_await detail::http_get(ex, ep, host, path, timeout, max_response);
    probe_result r;
    r.latency = g.latency;
    r.error = g.error;
    if (!g.error) {
      r.detail = "HTTP " + std::to_string(g.status);
      const bool status_ok = expect_status == 0 ? (g.status >= 200 && g.status < 300) : g.status == expect_status;
      if (!status_ok) r.error = make_error_code(error::bad_status);
      else if (!body_contains.empty() && g.body.find(body_contains) == std::string::npos)
        r.error = make_error_code(error::body_mismatch);
    }
    co_return r;
  }
};

static_assert(probe<tcp_probe>);
static_assert(probe<http_probe>);

}  // namespace rproxy::health
