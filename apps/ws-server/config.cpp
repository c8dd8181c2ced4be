// apps/ws-server/config.cpp: the one unit that instantiates the YAML decoder and the starter
// config for the server's config (main.cpp declares them extern).
#include <rproxy/app/config_unit.hpp>

#include "config.hpp"

template struct rproxy::app::config_unit<ws_server::config>;
