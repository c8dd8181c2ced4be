// examples/tcp_proxy/flows.cpp: the one unit of tcp_proxy that instantiates its flows: the flow
// driver with the L4 adapter over a route's pipeline (world.hpp).
#include <rproxy/flow/l4.hpp>

#include "world.hpp"

bool tcp_proxy::listen_routes(runtime& rt, const std::vector<route_config>& routes, rproxy::app::versions<world>& worlds) {
  return rproxy::app::listen_each(rt, routes, worlds, rproxy::flow::l4_adapter{});
}
