// apps/h3-gateway/flows_h3.cpp: the unit of the HTTP/3 listener, QUIC endpoints and flows (flows.hpp).
#include "flows.hpp"

template struct rproxy::app::h3_listener<h3_gateway::runtime, h3_gateway::world>;
