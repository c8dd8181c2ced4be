// apps/mc-proxy/config.cpp: the one unit of mc-proxy that instantiates the YAML decoder (the
// main file and the servers_dir files) and the starter config (main.cpp declares it extern).
#include <filesystem>

#include <rproxy/app/config_unit.hpp>

#include "config_load.hpp"

namespace mc_proxy {

rproxy::result<config, cfg::diagnostics> config::load(const std::filesystem::path& path) { return load_as<config>(path); }

}  // namespace mc_proxy

template struct rproxy::app::config_unit<mc_proxy::config>;
