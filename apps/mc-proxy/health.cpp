// apps/mc-proxy/health.cpp: the one unit of mc-proxy that instantiates the health checker: a
// health::monitor per server with a health_check block, probing with Minecraft status pings.
#include <memory>
#include <string>
#include <utility>

#include <rproxy/health/mc_status_probe.hpp>
#include <rproxy/health/monitor.hpp>

#include "mc_proxy.hpp"

namespace mc_proxy {

namespace {

/// A host name to ask the backends with: the first exact domain, else a wildcard's parent.
std::string first_name(const server_config& sc) {
  for (const auto& d : sc.domains)
    if (!d.starts_with('*')) return d;
  return sc.domains.empty() ? std::string("localhost") : sc.domains.front().substr(sc.domains.front().find('.') + 1);
}

}  // namespace

std::shared_ptr<void> start_checks(asio::io_context& control, const server_config& sc, std::uint16_t port,
                                   std::shared_ptr<server_state> st, const obs::logger& log) {
  rproxy::health::mc_status_probe probe;
  probe.query.host = !sc.rewrite_host.empty() ? sc.rewrite_host : first_name(sc);
  probe.query.port = port;
  for (const auto& b : sc.backends)
    if (b.send_proxy_protocol != rproxy::proxy_send::none)
      probe.proxied.push_back({{asio::ip::make_address(b.address.host), b.address.port}, b.send_proxy_protocol == rproxy::proxy_send::v1 ? 1 : 2});
  auto m = std::make_shared<rproxy::health::monitor<bal::upstream_pool>>(control.get_executor(), st->pool, sc.name, log);
  m->on_change([st](std::string_view, bool up) {
    if (up) st->wake.reachable(clock::now());
  });
  const auto& hc = *sc.health_check;
  m->check_with(std::move(probe), {.interval = hc.interval, .timeout = hc.timeout, .jitter = 0.1, .rise = hc.rise, .fall = hc.fall});
  return m;
}

}  // namespace mc_proxy
