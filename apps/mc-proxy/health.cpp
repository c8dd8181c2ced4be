// apps/mc-proxy/health.cpp: the one unit of mc-proxy that instantiates the servers' pools with
// their health monitors (app::pools) and the status-ping checker a health_check block asks for.
#include <map>
#include <memory>
#include <string>

#include <rproxy/app/pools.hpp>
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

bool update_servers(rproxy::app::pools& pools, const config& c, std::map<std::string, std::shared_ptr<server_state>>& states) {
  if (!pools.update(c.servers)) return false;
  for (const auto& sc : c.servers) {
    auto& st = states[sc.name];
    if (!st) st = std::make_shared<server_state>();
    auto& m = *pools.monitor(sc.name);
    if (!sc.health_check) {
      m.stop_checks();
      continue;
    }
    m.on_change([st](std::string_view, bool up) {
      if (up) st->wake.reachable(clock::now());
    });
    const std::string host = !sc.rewrite_host.empty() ? sc.rewrite_host : first_name(sc);
    m.check_with(rproxy::health::make_mc_status_probe(host, c.listen.port, sc.backends), sc.health_check->options());
  }
  return true;
}

}  // namespace mc_proxy
