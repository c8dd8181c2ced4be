// ws-server: a WebSocket room server made of rproxy parts (server.hpp); the protocol is in
// docs/ws-server.md.
//   ws-server [run] --config ws-server.yaml | validate FILE | init | --version
#include <rproxy/app/run_main.hpp>

#include "server.hpp"

int main(int argc, char** argv) {
  return rproxy::app::run_main<ws_server::config>(
      argc, argv, {"ws-server", "0.1.0", "ws-server.yaml", "rproxy ws-server: a WebSocket room server"},
      [](ws_server::runtime& rt) { return ws_server::serve(rt); });
}
