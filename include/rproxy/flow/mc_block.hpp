// rproxy/flow/mc_block.hpp: the YAML block of a Minecraft front's bounds, declared once for any
// Minecraft app: the handshake and connect timeouts, connection caps, and the per-address rate
// limits of the two things a Minecraft client does (the adapter's hello is a "status" ping or a
// "login"; codec/mc/hello.hpp).
//
//     limits: { handshake_timeout: 5s, connections_per_ip: 16, login: {limit: 10, window: 10s} }
//
//     rproxy::flow::mc_limits_block limits{};        // in the app's config struct
//     c.limits.apply(options);                       // the driver's timeouts (flow/options.hpp)
//     rate_cfg = c.limits.rate_limit();              // what the rate_limit stage points at
//     conn_cfg = c.limits.conn_limit();              // what the conn_limit stage points at
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <rproxy/config/field.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit.hpp>

namespace rproxy::flow {

/// Attempts per window per client address (IPv6: per /64).
struct mc_rate {
  std::uint32_t limit = 0;
  std::chrono::milliseconds window = std::chrono::seconds(10);
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&mc_rate::limit>("attempts allowed per window per client address; 0: no limit"),
                       cfg::doc<&mc_rate::window>("the window"));
  }
};

struct mc_limits_block {
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(5);
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(3);
  std::uint32_t connections_per_ip = 16;
  std::uint32_t max_connections = 0;
  mc_rate status{30, std::chrono::seconds(10)};
  mc_rate login{10, std::chrono::seconds(10)};
  std::string message = "You are connecting too fast. Please wait.";

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&mc_limits_block::handshake_timeout>("a client must finish its handshake (and Login Start) within this"),
                       cfg::doc<&mc_limits_block::connect_timeout>("give up on a backend after this long and try the next"),
                       cfg::doc<&mc_limits_block::connections_per_ip>("open connections per client address (IPv6: per /64); 0: no cap"),
                       cfg::doc<&mc_limits_block::max_connections>("open connections in all; 0: no cap"),
                       cfg::doc<&mc_limits_block::status>("status pings per client address"),
                       cfg::doc<&mc_limits_block::login>("logins per client address"),
                       cfg::doc<&mc_limits_block::message>("kick text when over a rate limit"));
  }

  /// The driver's hello and connect timeouts.
  void apply(options& o) const {
    o.hello_timeout = handshake_timeout;
    o.connect_timeout = connect_timeout;
  }

  /// The rate_limit stage's config: one tier, "login" and "status" per client address.
  middleware::rate_limit_config rate_limit() const {
    middleware::rate_limit_config c;
    middleware::rate_limit_config::tier t{"default", {}};
    if (login.limit) t.limits.push_back({"login", {.limit = login.limit, .window = login.window}});
    if (status.limit) t.limits.push_back({"status", {.limit = status.limit, .window = status.window}});
    c.tiers = {t};
    c.reject_message = message;
    return c;
  }

  /// The conn_limit stage's config.
  middleware::conn_limit_config conn_limit() const {
    return {.max_per_ip = connections_per_ip, .max_total = max_connections, .reject_message = "Too many connections from your address."};
  }
};

}  // namespace rproxy::flow
