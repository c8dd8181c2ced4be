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

#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/flow/config.hpp>


namespace rproxy::app {

/// `admin: {listen: 127.0.0.1:9901}`: the runtime serves /metrics /healthz /readyz and
/// POST /reload there (app/runtime.hpp); no listen, no admin endpoint.
struct admin_config {
  std::optional<config::endpoint> listen;
  static constexpr auto describe() {
    return config::fields(config::doc<&admin_config::listen>("admin endpoint: /metrics /healthz /readyz, POST /reload"));
  }
};

}  // namespace rproxy::app
