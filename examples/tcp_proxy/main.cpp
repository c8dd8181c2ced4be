// tcp_proxy: an L4 proxy from a YAML file, made of rproxy parts (see tcp_proxy.hpp).
//   tcp_proxy [run] --config tcp_proxy.yaml | validate FILE | init | --version
#include <rproxy/app/run_main.hpp>

#include "tcp_proxy.hpp"

// Decoded in config.cpp only (the YAML decoder is the heavy instantiation; serve.cpp never uses it).
extern template struct rproxy::app::config_unit<tcp_proxy::config>;

int main(int argc, char** argv) {
  return rproxy::app::run_main<tcp_proxy::config>(
      argc, argv, {"tcp_proxy", "0.1.0", "tcp_proxy.yaml", "rproxy example: an L4 (TCP) proxy"},
      [](tcp_proxy::runtime& rt) { return tcp_proxy::serve(rt); });
}
