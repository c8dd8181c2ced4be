// examples/tcp_proxy/config.cpp: the one unit that instantiates the YAML decoder and the
// starter config for tcp_proxy's config (main.cpp declares them extern).
#include <filesystem>
#include <string>
#include <string_view>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/starter_config.hpp>

#include "tcp_proxy.hpp"

template rproxy::result<tcp_proxy::config, rproxy::config::diagnostics>
rproxy::config::load_file<tcp_proxy::config>(const std::filesystem::path&, rproxy::config::positions*);
template std::string rproxy::config::starter_config<tcp_proxy::config>(std::string_view);
