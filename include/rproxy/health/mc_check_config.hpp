// rproxy/health/mc_check_config.hpp: the config block of a Minecraft server pool's active health
// checks, status pings (health/mc_status_probe.hpp), declared once for any Minecraft app.
//
//     health_check: {interval: 5s, timeout: 2s, rise: 1, fall: 2}    # off when absent
//
//     monitor.check_with(rproxy::health::make_mc_status_probe(host, port, server.backends),
//                        server.health_check->options());
#pragma once

#include <chrono>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/health/check_options.hpp>

namespace rproxy::health {

struct mc_check_config {
  std::chrono::milliseconds interval = std::chrono::seconds(5);
  std::chrono::milliseconds timeout = std::chrono::seconds(2);
  unsigned rise = 1;
  unsigned fall = 2;

  friend bool operator==(const mc_check_config&, const mc_check_config&) = default;
  static constexpr auto describe() {
    return config::fields(config::doc<&mc_check_config::interval>("time between status-ping probes of each backend"),
                          config::doc<&mc_check_config::timeout>("a probe not answered within this fails"),
                          config::doc<&mc_check_config::rise>("successes in a row that bring a backend back"),
                          config::doc<&mc_check_config::fall>("failures in a row that take a backend out"));
  }
  void validate(config::validator& v) const {
    if (rise == 0) v.at(&mc_check_config::rise).error("must be at least 1");
    if (fall == 0) v.at(&mc_check_config::fall).error("must be at least 1");
    if (interval < std::chrono::milliseconds(100)) v.at(&mc_check_config::interval).error("must be at least 100ms");
  }
  check_options options() const { return {.interval = interval, .timeout = timeout, .jitter = 0.1, .rise = rise, .fall = fall}; }
};

}  // namespace rproxy::health
