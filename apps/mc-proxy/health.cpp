// apps/mc-proxy/health.cpp: the one unit of mc-proxy that instantiates the servers' pools with
// their health monitors and the status-ping checker a health_check block asks for (app/mc_servers.hpp).
#include <map>
#include <memory>
#include <string>

#include <rproxy/app/mc_servers.hpp>

#include "health.hpp"

namespace mc_proxy {

bool update_servers(rproxy::app::pools& pools, const config& c, std::map<std::string, std::shared_ptr<server_state>>& states) {
  return rproxy::app::update_mc_servers(pools, c.servers, c.listen.port, states);
}

}  // namespace mc_proxy
