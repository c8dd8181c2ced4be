// rproxy/app/listen.hpp: a listener from config on every worker of an app's runtime, closed when
// shutdown starts.
//
//     if (!rproxy::app::listen(rt, cfg.listen, "players", handler)) return 1;   // logged
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

#include <rproxy/app/runtime.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/net/listener.hpp>

namespace rproxy::app {

/// Accepts on `ep` (an IP address and port) and hands each socket to `handler` on the worker
/// that accepted it. False (logged, with `what` naming the listener) when it cannot listen.
template <class Config, class Handler>
bool listen(runtime<Config>& rt, const config::endpoint& ep, std::string_view what, Handler handler) {
  std::error_code ec;
  const auto addr = asio::ip::make_address(ep.host, ec);
  auto l = ec ? result<net::listener<Handler>>(failure(ec)) : net::listen(rt.pool(), {addr, ep.port}, std::move(handler));
  if (!l) {
    rt.log().error("cannot listen", {{"listener", what}, {"address", ep.to_string()}, {"error", l.error().message()}});
    return false;
  }
  rt.log().info("listening", {{"listener", what}, {"address", ep.to_string()}});
  auto kept = std::make_shared<net::listener<Handler>>(std::move(*l));
  rt.on_stop_accepting([kept] { kept->close(); });
  return true;
}

}  // namespace rproxy::app
