// apps/mc-proxy/health.hpp: the servers' pools and status-ping checks across config versions,
// compiled in health.cpp alone (the pools' monitors and the checker are heavy instantiations;
// that unit includes the config, not the flows' pipeline).
#pragma once

#include <map>
#include <memory>
#include <string>

#include <rproxy/app/mc_server_state.hpp>

#include "config.hpp"

namespace rproxy::app { class pools; }  // app/pools.hpp (health.cpp and serve.hpp include it)

namespace mc_proxy {

/// A server's state kept across reloads besides its pool: status answers, wake on join.
using server_state = rproxy::app::mc_server_state;

/// app::update_mc_servers over a config's servers (pools by name, status-ping checks).
bool update_servers(rproxy::app::pools& pools, const config& c, std::map<std::string, std::shared_ptr<server_state>>& states);

}  // namespace mc_proxy
