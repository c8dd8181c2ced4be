// h3-gateway: an HTTP API gateway and load balancer made of rproxy parts (gateway.hpp), HTTP/1.1
// for now. Routes pick a backend group, the group's balancer a backend; see docs/h3-gateway.md.
//   h3-gateway [run] --config h3-gateway.yaml | validate FILE | init | --version
// The composition is in serve.cpp, the flows in flows*.cpp, the config decoder in config.cpp:
// main only includes what run_main and the config need.
#include <rproxy/app/run_main.hpp>
#include <rproxy/app/runtime.hpp>

#include "config.hpp"

extern template struct rproxy::app::config_unit<h3_gateway::config>;

namespace h3_gateway {

using runtime = rproxy::app::runtime<config>;  // as in gateway.hpp
int serve(runtime& rt);                        // serve.cpp

}  // namespace h3_gateway

int main(int argc, char** argv) {
  return rproxy::app::run_main<h3_gateway::config>(
      argc, argv, {"h3-gateway", "0.1.0", "h3-gateway.yaml", "rproxy h3-gateway: an HTTP API gateway and load balancer"},
      [](h3_gateway::runtime& rt) { return h3_gateway::serve(rt); });
}
