// http_gateway: an HTTP/1.1 reverse proxy with the security middleware, from a YAML file
// (see http_gateway.hpp and docs/security.md).
//   http_gateway [run] --config http_gateway.yaml | validate FILE | init | --version
#include <filesystem>
#include <string>
#include <string_view>

#include <rproxy/app/run_main.hpp>
#include <rproxy/config/decode.hpp>
#include <rproxy/config/starter_config.hpp>

#include "http_gateway.hpp"

// Decoded in config.cpp only (the YAML decoder is the heavy instantiation; serve.cpp never uses it).
extern template rproxy::result<http_gateway::config, rproxy::config::diagnostics>
rproxy::config::load_file<http_gateway::config>(const std::filesystem::path&, rproxy::config::positions*);
extern template std::string rproxy::config::starter_config<http_gateway::config>(std::string_view);

int main(int argc, char** argv) {
  return rproxy::app::run_main<http_gateway::config>(
      argc, argv,
      {"http_gateway", "0.1.0", "http_gateway.yaml", "rproxy example: an HTTP/1.1 gateway with JWT, API keys, rate limits and bans"},
      [](http_gateway::runtime& rt) { return http_gateway::serve(rt); });
}
