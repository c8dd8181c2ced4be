// apps/mc-proxy/config_load.hpp: how mc-proxy reads its config (config::load_as): the main file
// and the servers_dir files, then the checks that span files (app/mc_config_load.hpp). It brings
// the YAML decoder, the heavy instantiation: config.cpp includes it, and a user's main.cpp whose
// config extends mc-proxy's (config/extended.hpp); the other units do not.
#pragma once

#include <filesystem>

#include <rproxy/app/mc_config_load.hpp>

#include "config.hpp"

namespace mc_proxy {

template <class Self>
rproxy::result<Self, cfg::diagnostics> config::load_as(const std::filesystem::path& path) {
  return rproxy::app::load_mc_config<Self>(path);
}

}  // namespace mc_proxy
