// ws-server: a WebSocket room server made of rproxy parts (server.hpp, serve.cpp); the protocol
// is in docs/ws-server.md.
//   ws-server [run] --config ws-server.yaml | validate FILE | init | --version
#include <rproxy/app/run_main.hpp>

#include "config.hpp"

// The config is decoded in config.cpp only (the YAML decoder is the heavy instantiation).
extern template struct rproxy::app::config_unit<ws_server::config>;

int main(int argc, char** argv) {
  return rproxy::app::run_main<ws_server::config>(
      argc, argv, {"ws-server", "0.1.0", "ws-server.yaml", "rproxy ws-server: a WebSocket room server"},
      [](rproxy::app::runtime<ws_server::config>& rt) { return ws_server::serve(rt); });
}
