// rproxy/app/mc_config_load.hpp: how a Minecraft app reads a config of servers (app/mc_server_block.hpp)
// from one main file plus, optionally, one file per server in a directory (as Infrarust users keep
// them; config/load_dir.hpp), then the checks that span files, each error naming its file:line:col:
//   - a host name (normalized: case, trailing dot) is claimed by one server only;
//   - default_server, when set, names a server;
//   - unknown_domain.action default needs a default_server.
//
//     struct config {                                 // the app's (members named so)
//       std::string servers_dir;                      // relative to the main file; empty: none
//       std::vector<rproxy::app::mc_server_block> servers;
//       std::string default_server;
//       rproxy::app::mc_unknown_domain_block unknown_domain{};
//       ...
//     };
//     auto c = rproxy::app::load_mc_config<config>(path);   // result<config, config::diagnostics>
//
// It brings the YAML decoder (the heavy instantiation): include it in one unit of the app.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include <rproxy/app/mc_server_block.hpp>
#include <rproxy/config/decode.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/load_dir.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/route/host.hpp>

namespace rproxy::app {

template <class Config>
result<Config, config::diagnostics> load_mc_config(const std::filesystem::path& path) {
  auto r = config::load_with_dir<Config, &Config::servers, &Config::servers_dir, &mc_server_block::name>(path);
  if (!r) return failure(std::move(r).error());
  const Config& c = r->value;
  config::diagnostics d;
  std::map<std::string, std::string> domains;  // normalized host name -> server
  bool has_default = c.default_server.empty();
  for (std::size_t i = 0; i < c.servers.size(); ++i) {
    const auto& s = c.servers[i];
    has_default = has_default || s.name == c.default_server;
    for (std::size_t j = 0; j < s.domains.size(); ++j) {
      auto [it, fresh] = domains.emplace(route::normalize_host(s.domains[j]), s.name);
      if (!fresh)
        r->add(d, i, "domains[" + std::to_string(j) + "]", "domain '" + s.domains[j] + "' is already claimed by server '" + it->second + "'");
    }
  }
  if (!has_default)
    d.add(path.string(), r->main.find("default_server"), config::error::invalid, "default_server '" + c.default_server + "' is not a server");
  if (c.unknown_domain.action == mc_unknown_action::default_server && c.default_server.empty())
    d.add(path.string(), r->main.find("unknown_domain.action"), config::error::invalid,
          "unknown_domain.action is default but default_server is not set");
  if (!d.empty()) return failure(std::move(d));
  return std::move(r->value);
}

}  // namespace rproxy::app
