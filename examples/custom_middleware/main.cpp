// custom_middleware: mc-proxy plus a user-written stage (business_hours.hpp) with its own
// `business_hours:` block in the same YAML file. The whole program is this file.
#include <mc-proxy/config_load.hpp>
#include <mc-proxy/serve.hpp>
#include <rproxy/app/run_main.hpp>
#include <rproxy/config/extended.hpp>

#include "business_hours.hpp"

using hours_config = business_hours::config;
struct hours_block {
  hours_config business_hours{};
  static constexpr auto describe() {
    return rproxy::config::fields(rproxy::config::doc<&hours_block::business_hours>("when players are let in"));
  }
};
using app_config = rproxy::config::extended<mc_proxy::config, hours_block>;

int main(int argc, char** argv) {
  return rproxy::app::run_main<app_config>(
      argc, argv, {"custom_middleware", "0.1.0", "custom_middleware.yaml", "mc-proxy with opening hours"},
      [](rproxy::app::runtime<app_config>& rt) {
        return mc_proxy::app<app_config>::serve(rt, [](const app_config& c) { return std::tuple{business_hours{c.business_hours}}; });
      });
}
