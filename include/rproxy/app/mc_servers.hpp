// rproxy/app/mc_servers.hpp: the Minecraft servers of an app (app/mc_server_block.hpp) across
// config versions: each server's pool with its health monitor (app/pools.hpp, by server name),
// its status-ping checks, and the state a server keeps besides its pool (its status answers,
// wake on join).
//
//     std::map<std::string, std::shared_ptr<rproxy::app::mc_server_state>> states;   // the app's, for life
//     // in the world's build:
//     if (!rproxy::app::update_mc_servers(*pools, cfg.servers, cfg.listen.port, states)) return nullptr;  // logged
//
// This header instantiates the pools' monitors and the status-ping checker (heavy): an app
// includes it in one translation unit.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/app/mc_server_block.hpp>
#include <rproxy/app/mc_server_state.hpp>
#include <rproxy/app/pools.hpp>
#include <rproxy/health/mc_status_probe.hpp>

namespace rproxy::app {

/// A host name to ask a server's backends with: its rewrite_host, else the first exact domain,
/// else a wildcard's parent.
inline std::string mc_probe_host(const mc_server_block& sc) {
  if (!sc.rewrite_host.empty()) return sc.rewrite_host;
  for (const auto& d : sc.domains)
    if (!d.starts_with('*')) return d;
  return sc.domains.empty() ? std::string("localhost") : sc.domains.front().substr(sc.domains.front().find('.') + 1);
}

/// Sets the pools to `servers` (by name, kept across reloads) and starts each one's status-ping
/// checks (its health_check block; the probe names `listen_port`, the port players connect to)
/// or stops them when it has none; a check that brings a backend back marks the server
/// reachable. `states` gets a state for each server that has none. False: logged, nothing changed.
inline bool update_mc_servers(pools& pools, const std::vector<mc_server_block>& servers, std::uint16_t listen_port,
                              std::map<std::string, std::shared_ptr<mc_server_state>>& states) {
  if (!pools.update(servers)) return false;
  for (const auto& sc : servers) {
    auto& st = states[sc.name];
    if (!st) st = std::make_shared<mc_server_state>();
    auto& m = *pools.monitor(sc.name);
    if (!sc.health_check) {
      m.stop_checks();
      continue;
    }
    m.on_change([st](std::string_view, bool up) {
      if (up) st->wake.reachable(std::chrono::steady_clock::now());
    });
    m.check_with(health::make_mc_status_probe(mc_probe_host(sc), listen_port, sc.backends), sc.health_check->options());
  }
  return true;
}

}  // namespace rproxy::app
