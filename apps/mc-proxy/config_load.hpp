// apps/mc-proxy/config_load.hpp: how mc-proxy reads its config (config::load_as): the main file
// and the servers_dir files, then the checks that span files. It brings the YAML decoder, the
// heavy instantiation: config.cpp includes it, and a user's main.cpp whose config extends
// mc-proxy's (config/extended.hpp); the other units do not.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/load_dir.hpp>
#include <rproxy/route/host.hpp>

#include "config.hpp"

namespace mc_proxy {

template <class Self>
rproxy::result<Self, cfg::diagnostics> config::load_as(const std::filesystem::path& path) {
  auto r = cfg::load_with_dir<Self, &config::servers, &config::servers_dir, &server_config::name>(path);
  if (!r) return rproxy::failure(std::move(r).error());
  const Self& c = r->value;
  cfg::diagnostics d;
  std::map<std::string, std::string> domains;  // normalized domain -> server
  bool has_default = c.default_server.empty();
  for (std::size_t i = 0; i < c.servers.size(); ++i) {
    const auto& s = c.servers[i];
    if (s.name == c.default_server) has_default = true;
    for (std::size_t j = 0; j < s.domains.size(); ++j) {
      auto [it, fresh] = domains.emplace(rproxy::route::normalize_host(s.domains[j]), s.name);
      if (!fresh)
        r->add(d, i, "domains[" + std::to_string(j) + "]", "domain '" + s.domains[j] + "' is already claimed by server '" + it->second + "'");
    }
  }
  if (!has_default)
    d.add(path.string(), r->main.find("default_server"), cfg::error::invalid, "default_server '" + c.default_server + "' is not a server");
  if (c.unknown_domain.action == unknown_action::default_server && c.default_server.empty())
    d.add(path.string(), r->main.find("unknown_domain.action"), cfg::error::invalid,
          "unknown_domain.action is default but default_server is not set");
  if (!d.empty()) return rproxy::failure(std::move(d));
  return std::move(r->value);
}

}  // namespace mc_proxy
