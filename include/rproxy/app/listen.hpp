// rproxy/app/listen.hpp: a listener from config on every worker of an app's runtime, closed when
// shutdown starts.
//
//     if (!rproxy::app::listen(rt, cfg.listen, "players", handler)) return 1;   // logged
//     rproxy::app::listen(rt, cfg.listen, "players", cfg.proxy_protocol, handler);  // + the PROXY trust warning
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <rproxy/app/runtime.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/flow/config.hpp>
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

/// The same for a listener whose flows read PROXY headers as `pp` says. When they do, it warns
/// first: any host in the trusted ranges (named in the line) can claim any client address.
template <class Config, class Handler>
bool listen(runtime<Config>& rt, const config::endpoint& ep, std::string_view what, const flow::proxy_protocol_config& pp,
            Handler handler) {
  if (pp.accept != proxy_accept::none) {
    std::string trusted;
    for (const auto& r : pp.trusted) trusted += (trusted.empty() ? "" : ", ") + r;
    rt.log().warn("PROXY protocol is ON: any host in these ranges can claim any client address; only list your load balancers",
                  {{"listener", what}, {"trusted", trusted}});
  }
  return listen(rt, ep, what, std::move(handler));
}

}  // namespace rproxy::app
