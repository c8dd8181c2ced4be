// http_gateway: an HTTP/1.1 reverse proxy with the security middleware, from a YAML file
// (see http_gateway.hpp and docs/security.md).
//   http_gateway [run] --config http_gateway.yaml | validate FILE | init | --version
#include <rproxy/app/runtime.hpp>

#include "http_gateway.hpp"

int main(int argc, char** argv) {
  return rproxy::app::run_main<http_gateway::config>(
      argc, argv,
      {"http_gateway", "0.1.0", "http_gateway.yaml", "rproxy example: an HTTP/1.1 gateway with JWT, API keys, rate limits and bans"},
      [](http_gateway::runtime& rt) { return http_gateway::serve(rt); });
}
