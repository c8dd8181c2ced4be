// rproxy/flow/options.hpp: the flow driver's per-listener settings (flow/serve.hpp), in a header
// of their own so that config code (flow/config.hpp and the apps' config units) can build them
// without compiling the driver.
#pragma once

#include <asio/ip/address.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include <rproxy/core/proxy_mode.hpp>
#include <rproxy/flow/upstream_redirect.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/net/relay_options.hpp>

namespace rproxy::flow {

using namespace std::chrono_literals;

/// Per-listener settings of the driver. Held by the caller for the flow's whole life.
struct options {
  proxy_accept accept = proxy_accept::none;
  std::vector<middleware::cidr> trusted{};   ///< peers whose PROXY header is believed
  proxy_send send = proxy_send::none;        ///< PROXY header for backends when no stage set one
  std::chrono::milliseconds header_timeout = 5s;           ///< the PROXY header
  std::chrono::milliseconds hello_timeout = 5s;            ///< from accept to a whole hello
  std::chrono::milliseconds rejected_hello_timeout = 1s;   ///< the same, after on_accept refused
  std::chrono::milliseconds connect_timeout = 5s;
  unsigned max_connect_attempts = 3;
  net::relay_options relay{};
  /// Backends reached through a local stand-in (HTTP/3 backends: flow/h3_upstream.hpp).
  std::shared_ptr<const upstream_redirect> redirect{};

  bool is_trusted(const asio::ip::address& a) const {
    const auto k = middleware::to_ip_key(a);
    return std::any_of(trusted.begin(), trusted.end(), [&](const auto& c) { return c.contains(k); });
  }
};

/// The address to connect to for `backend`: itself, or this worker's stand-in for it.
inline const asio::ip::tcp::endpoint& connect_target(const options& o, const asio::ip::tcp::endpoint& backend) noexcept {
  return o.redirect ? o.redirect->target(backend) : backend;
}

}  // namespace rproxy::flow
