// examples/tcp_proxy/config.cpp: the one unit that instantiates the YAML decoder and the
// starter config for tcp_proxy's config (main.cpp declares them extern).
#include <rproxy/app/config_unit.hpp>

#include "tcp_proxy.hpp"

template struct rproxy::app::config_unit<tcp_proxy::config>;
