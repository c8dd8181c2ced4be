// apps/mc-proxy/flows.cpp: the one unit of mc-proxy that instantiates its flows: the flow driver
// with the Minecraft adapter over mc-proxy's pipeline (mc_proxy.hpp).
#include "mc_proxy.hpp"

template bool mc_proxy::listen_players(rproxy::app::runtime<mc_proxy::config>&, const mc_proxy::config&,
                                       rproxy::app::versions<mc_proxy::world<mc_proxy::default_pipeline>>&);
