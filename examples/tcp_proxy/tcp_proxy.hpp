// examples/tcp_proxy/tcp_proxy.hpp: an L4 proxy made of rproxy parts: its config, and what
// each translation unit defines (config.cpp decodes the YAML, serve.cpp runs the routes).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/runtime_fwd.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/listen_address.hpp>
#include <rproxy/config/unique.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/config.hpp>
#include <rproxy/health/check_config.hpp>

namespace tcp_proxy {

using namespace std::chrono_literals;
namespace cfg = rproxy::config;
namespace bal = rproxy::balance;

struct route_config {
  std::string name;
  cfg::endpoint listen;
  std::vector<bal::backend_settings> backends;
  bal::algorithm balancer = bal::algorithm::round_robin;
  std::chrono::milliseconds connect_timeout = 5s;
  std::chrono::milliseconds idle_timeout = 5min;
  rproxy::flow::proxy_protocol_config proxy_protocol{};
  std::optional<rproxy::health::check_config> health_check{};
  std::optional<rproxy::health::weights_config> dynamic_weights{};

  static constexpr auto describe() {
    return cfg::fields(cfg::required<&route_config::name>("route name (metrics label)"),
                       cfg::required<&route_config::listen>("address and port to accept clients on"),
                       cfg::required<&route_config::backends>("where flows go"),
                       cfg::doc<&route_config::balancer>("round_robin, weighted_round_robin, least_conn, random, lowest_latency, ip_hash or consistent_hash (both by the client's address)"),
                       cfg::doc<&route_config::connect_timeout>("give up on a backend after this long, try the next"),
                       cfg::doc<&route_config::idle_timeout>("close flows with no bytes either way for this long"),
                       cfg::doc<&route_config::proxy_protocol>("PROXY protocol in and out"),
                       cfg::doc<&route_config::health_check>("active health checks of the backends (off when absent)"),
                       cfg::doc<&route_config::dynamic_weights>("weights from the backends' load reports (off when absent)"));
  }
  void validate(cfg::validator& v) const {
    bal::validate_backends(v.at(&route_config::backends), backends);
    cfg::validate_listen_address(v.at(&route_config::listen), listen);
  }
};

struct config {
  rproxy::app::admin_config admin{};
  std::vector<route_config> routes;
  rproxy::flow::relay_config relay{};
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&config::admin>("admin HTTP endpoint (off when listen is unset)"),
                       cfg::required<&config::routes>("one listener and backend pool each"),
                       cfg::doc<&config::relay>("byte relay settings (a route's idle_timeout wins)"));
  }
  void validate(cfg::validator& v) const {
    cfg::validate_unique<&route_config::name>(v.at(&config::routes), routes, "duplicate route name");
    cfg::validate_unique<&route_config::listen>(v.at(&config::routes), routes, "two routes listen on");
  }
};

using runtime = rproxy::app::runtime<config>;

/// Opens the routes' listeners and keeps their pools and checks up to date (serve.cpp).
int serve(runtime& rt);

}  // namespace tcp_proxy
