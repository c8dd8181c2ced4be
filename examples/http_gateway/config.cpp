// examples/http_gateway/config.cpp: the one unit that instantiates the YAML decoder and the
// starter config for the gateway's config (main.cpp declares them extern).
#include <filesystem>
#include <string>
#include <string_view>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/starter_config.hpp>

#include "http_gateway.hpp"

template rproxy::result<http_gateway::config, rproxy::config::diagnostics>
rproxy::config::load_file<http_gateway::config>(const std::filesystem::path&, rproxy::config::positions*);
template std::string rproxy::config::starter_config<http_gateway::config>(std::string_view);
