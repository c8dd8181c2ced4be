// apps/h3-gateway/flows_h2_tls.cpp: the unit of HTTP/2 over TLS, ALPN "h2" (flows.hpp).
#include "flows.hpp"

template struct rproxy::app::h2_tls_flow<h3_gateway::world>;
