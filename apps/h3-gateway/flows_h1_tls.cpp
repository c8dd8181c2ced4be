// apps/h3-gateway/flows_h1_tls.cpp: the unit of HTTP/1.1 over TLS (flows.hpp).
#include "flows.hpp"

template struct rproxy::app::h1_tls_flow<h3_gateway::world>;
