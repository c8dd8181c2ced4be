// custom_middleware: examples/tcp_proxy plus a user-written stage (business_hours.hpp) that has
// its own `business_hours:` block in the YAML file.
#include "../tcp_proxy/tcp_proxy.hpp"
#include "business_hours.hpp"

struct app_config {
  rproxy::app::admin_config admin{};
  std::vector<tcp_proxy::route_config> routes;
  tcp_proxy::relay_config relay{};
  ::business_hours::config business_hours{};
  static constexpr auto describe() {
    namespace c = rproxy::config;
    return c::fields(c::doc<&app_config::admin>("admin HTTP endpoint"), c::required<&app_config::routes>("as in tcp_proxy"),
                     c::doc<&app_config::relay>("as in tcp_proxy"), c::doc<&app_config::business_hours>("when clients are let in"));
  }
};

int main(int argc, char** argv) {
  return rproxy::app::run_main<app_config>(
      argc, argv, {"custom_middleware", "0.1.0", "custom_middleware.yaml", "tcp_proxy with opening hours"},
      [](rproxy::app::runtime<app_config>& rt) {
        const business_hours::config hours = rt.config().get()->business_hours;
        return tcp_proxy::serve(rt, [hours] { return business_hours{hours}; });
      });
}
