// mc-proxy: a Minecraft reverse proxy made of rproxy parts (see mc_proxy.hpp and serve.hpp).
//   mc-proxy [run] --config mc-proxy.yaml | validate FILE | init | --version
#include <rproxy/app/run_main.hpp>

#include "config.hpp"

// mc-proxy's config is decoded in config.cpp only (the YAML decoder is the heavy instantiation).
extern template struct rproxy::app::config_unit<mc_proxy::config>;

int main(int argc, char** argv) {
  return rproxy::app::run_main<mc_proxy::config>(
      argc, argv, {"mc-proxy", "0.1.0", "mc-proxy.yaml", "rproxy mc-proxy: a Minecraft reverse proxy"},
      [](rproxy::app::runtime<mc_proxy::config>& rt) { return mc_proxy::serve(rt); });
}
