// mc-proxy: a Minecraft reverse proxy made of rproxy parts (see mc_proxy.hpp and serve.hpp).
//   mc-proxy [run] --config mc-proxy.yaml | validate FILE | init | --version
#include <string>
#include <string_view>

#include <rproxy/app/run_main.hpp>
#include <rproxy/config/starter_config.hpp>

#include "config.hpp"

// mc-proxy's config is decoded in config.cpp only (the YAML decoder is the heavy instantiation).
extern template std::string rproxy::config::starter_config<mc_proxy::config>(std::string_view);

int main(int argc, char** argv) {
  return rproxy::app::run_main<mc_proxy::config>(
      argc, argv, {"mc-proxy", "0.1.0", "mc-proxy.yaml", "rproxy mc-proxy: a Minecraft reverse proxy"},
      [](rproxy::app::runtime<mc_proxy::config>& rt) { return mc_proxy::serve(rt); });
}
