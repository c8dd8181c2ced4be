// apps/h3-gateway/flows.hpp: the gateway's flows, each instantiated in a unit of its own (one
// unit with all of them costs more memory than a build machine may have): the TCP listeners'
// three (app/http_flows.hpp) in flows.cpp, flows_h1_tls.cpp and flows_h2_tls.cpp, the HTTP/3
// listener (app/quic_listen.hpp) in flows_h3.cpp. Other units see them extern.
#pragma once

#include <rproxy/app/http_flows.hpp>
#include <rproxy/app/quic_listen.hpp>

#include "gateway.hpp"

extern template struct rproxy::app::plain_http_flow<h3_gateway::world>;
extern template struct rproxy::app::h1_tls_flow<h3_gateway::world>;
extern template struct rproxy::app::h2_tls_flow<h3_gateway::world>;
extern template struct rproxy::app::h3_listener<h3_gateway::runtime, h3_gateway::world>;
