// apps/mc-proxy/health.cpp: the one unit of mc-proxy that instantiates the health checker: the
// status-ping checks a server's health_check block asks for, on its pool's monitor.
#include <memory>
#include <string>

#include <rproxy/health/mc_status_probe.hpp>

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

void check_server(rproxy::app::pools::monitor_type& m, const server_config& sc, std::uint16_t port, std::shared_ptr<server_state> st) {
  if (!sc.health_check) return m.stop_checks();
  m.on_change([st](std::string_view, bool up) {
    if (up) st->wake.reachable(clock::now());
  });
  const std::string host = !sc.rewrite_host.empty() ? sc.rewrite_host : first_name(sc);
  m.check_with(rproxy::health::make_mc_status_probe(host, port, sc.backends), sc.health_check->options());
}

}  // namespace mc_proxy
