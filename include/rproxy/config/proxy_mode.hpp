// rproxy/config/proxy_mode.hpp: the YAML names of the PROXY protocol modes (core/proxy_mode.hpp):
// `accept: none | optional | required`, `send: none | v1 | v2`.
#pragma once

#include <array>

#include <rproxy/config/scalar.hpp>
#include <rproxy/core/proxy_mode.hpp>

namespace rproxy {

constexpr auto config_enum_names(proxy_accept) {
  return std::array{config::enum_name{"none", proxy_accept::none}, config::enum_name{"optional", proxy_accept::optional},
                    config::enum_name{"required", proxy_accept::required}};
}
constexpr auto config_enum_names(proxy_send) {
  return std::array{config::enum_name{"none", proxy_send::none}, config::enum_name{"v1", proxy_send::v1},
                    config::enum_name{"v2", proxy_send::v2}};
}

}  // namespace rproxy

