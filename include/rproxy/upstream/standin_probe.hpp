// rproxy/upstream/standin_probe.hpp: the active check of a backend reached through a loopback
// stand-in (HTTP/3 over QUIC, HTTP/2 over TCP or TLS: upstream/h3_backends.hpp,
// upstream/h2_backends.hpp). `GET path` goes to this process's stand-in for the backend, which
// carries it over the backend's pooled connections, so the check tests that path and the
// backend's answer in its own protocol. A backend down answers nothing: the stand-in's 502 or
// 504, or the check's timeout, counts as a failure. Both check types do this (a TCP connect to
// the local stand-in would prove nothing); Host is the backend's address unless the block names one.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/flow/upstream_redirect.hpp>
#include <rproxy/health/check_config.hpp>
#include <rproxy/health/probe.hpp>

namespace rproxy::upstream {

struct standin_probe {
  health::http_probe http;
  std::shared_ptr<const flow::upstream_redirect> redirect;  ///< the config's stand-ins

  asio::awaitable<health::probe_result> check(asio::any_io_executor ex, const asio::ip::tcp::endpoint& ep, std::chrono::milliseconds timeout) {
    health::http_probe p = http;
    if (p.host.empty()) p.host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                                                      : ep.address().to_string() + ":" + std::to_string(ep.port());
    const asio::ip::tcp::endpoint target = redirect ? redirect->target(ep) : ep;
    co_return co_await p.check(std::move(ex), target, timeout);
  }

  static standin_probe of(const health::check_config& c, std::shared_ptr<const flow::upstream_redirect> r) {
    return {{.path = c.path, .host = c.host, .expect_status = c.expect_status, .body_contains = c.body_contains}, std::move(r)};
  }
};
static_assert(health::probe<standin_probe>);

}  // namespace rproxy::upstream
