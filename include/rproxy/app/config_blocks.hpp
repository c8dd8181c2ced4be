// rproxy/app/config_blocks.hpp: config pieces every app declares the same way, written once:
// the admin block. (The PROXY protocol and relay blocks are the flow driver's: flow/config.hpp.)
//
//     struct my_config {
//       rproxy::app::admin_config admin{};                       // admin: {listen: 127.0.0.1:9901}
//       rproxy::proxy_accept accept = rproxy::proxy_accept::none;  // none|optional|required
//       rproxy::proxy_send send = rproxy::proxy_send::none;        // none|v1|v2
//       ...
//     };
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/flow/config.hpp>

namespace rproxy::app {

/// `admin: {listen: 127.0.0.1:9901}`: the runtime serves /metrics /healthz /readyz and
/// POST /reload there (app/runtime.hpp); no listen, no admin endpoint.
/// `token_file` holds a bearer token every POST must carry; `allowed_hosts` are the names the
/// endpoint answers to besides its address (a Host check against DNS rebinding).
struct admin_config {
  std::optional<config::endpoint> listen;
  std::string token_file;
  std::vector<std::string> allowed_hosts;
  static constexpr auto describe() {
    return config::fields(
        config::doc<&admin_config::listen>("admin endpoint: /metrics /healthz /readyz, POST /reload"),
        config::doc<&admin_config::token_file>("file holding the bearer token every request but a GET, and every /api request, needs; empty: no token"),
        config::doc<&admin_config::allowed_hosts>("Host names accepted besides the listen address (others get 403: DNS rebinding)"));
  }
};

}  // namespace rproxy::app

