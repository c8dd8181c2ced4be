// apps/h3-gateway/flows.cpp: the unit of the plain listener's flow, HTTP/1.1 or h2c (flows.hpp).
#include "flows.hpp"

template struct rproxy::app::plain_http_flow<h3_gateway::world>;
