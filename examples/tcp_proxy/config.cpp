// examples/tcp_proxy/config.cpp: the one unit that instantiates the YAML decoder and the
// starter config for tcp_proxy's config (tcp_proxy.hpp declares them extern).
#include "tcp_proxy.hpp"

template rproxy::result<tcp_proxy::config, rproxy::config::diagnostics>
rproxy::config::load_file<tcp_proxy::config>(const std::filesystem::path&, rproxy::config::positions*);
template std::string rproxy::config::starter_config<tcp_proxy::config>(std::string_view);
