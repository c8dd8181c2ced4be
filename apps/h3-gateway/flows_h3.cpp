// apps/h3-gateway/flows_h3.cpp: the one unit that instantiates the HTTP/3 listener
// (app/quic_listen.hpp) over the gateway's worlds: on `quic.listen`, else the TLS listener's
// address (UDP).
#include <rproxy/app/quic_listen.hpp>

#include "flows.hpp"

namespace h3_gateway {

bool open_quic(runtime& rt, rproxy::app::versions<world>& worlds, const config& c, const rproxy::net::quic::endpoint_settings& s,
               const rproxy::flow::h3_adapter& a) {
  return rproxy::app::open_quic(rt, worlds, c.quic->listen ? *c.quic->listen : c.tls->listen, s, a, "h3gw");
}

}  // namespace h3_gateway
