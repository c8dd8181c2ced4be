// examples/tcp_proxy/flows.cpp: the one unit of tcp_proxy that instantiates its flows: the flow
// driver with the L4 adapter over a route's pipeline (world.hpp).
#include <rproxy/app/listen.hpp>
#include <rproxy/flow/l4.hpp>

#include "world.hpp"

namespace tcp_proxy {

bool listen_route(runtime& rt, const route_config& rc, std::size_t i, rproxy::app::versions<world>& worlds) {
  auto part = [i](const world& w) { return w.routes[i] ? &*w.routes[i] : nullptr; };
  return rproxy::app::listen(rt, rc.listen, rc.name, rc.proxy_protocol, worlds.handler(rt.drain(), rproxy::flow::l4_adapter{}, part));
}

}  // namespace tcp_proxy
