// apps/h3-gateway/config.cpp: the one unit that instantiates the YAML decoder and the starter
// config for the gateway's config (main.cpp declares them extern).
#include <filesystem>
#include <string>
#include <string_view>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/starter_config.hpp>

#include "config.hpp"

template rproxy::result<h3_gateway::config, rproxy::config::diagnostics>
rproxy::config::load_file<h3_gateway::config>(const std::filesystem::path&, rproxy::config::positions*);
template std::string rproxy::config::starter_config<h3_gateway::config>(std::string_view);
