// examples/http_gateway/http_gateway.hpp: the gateway's YAML (the stages and the HTTP/1.1 adapter
// bring their own blocks; the gateway adds its listener and backends), and what each translation
// unit defines: config.cpp decodes the YAML, serve.cpp builds the gateway (see there).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <asio/ip/address.hpp>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/runtime_fwd.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/http1_block.hpp>
#include <rproxy/middleware/api_key_block.hpp>
#include <rproxy/middleware/audit_block.hpp>
#include <rproxy/middleware/ban_block.hpp>
#include <rproxy/middleware/conn_limit_block.hpp>
#include <rproxy/middleware/cors_block.hpp>
#include <rproxy/middleware/ip_filter_block.hpp>
#include <rproxy/middleware/jwt_block.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>
#include <rproxy/middleware/request_id_block.hpp>

namespace http_gateway {

namespace cfg = rproxy::config;
namespace mw = rproxy::middleware;

struct config {
  rproxy::app::admin_config admin{};
  std::string name = "gateway";
  cfg::endpoint listen{"127.0.0.1", 8080};
  std::vector<rproxy::balance::backend_settings> backends;
  rproxy::flow::http1_block limits{};
  mw::ip_filter_block ip_filter{};
  mw::conn_limit_block conn_limit{};
  mw::ban_block bans{};
  std::optional<mw::jwt_block> jwt;
  std::optional<mw::api_key_block> api_keys;
  bool require_auth = true;
  std::optional<mw::rate_limit_block> rate_limit;
  mw::audit_block audit{};
  rproxy::flow::http1_forwarding_block forwarding{};
  mw::request_id_block request_id{};
  std::optional<mw::cors_block> cors;
  bool access_log = true;

  static constexpr auto describe() {
    return cfg::fields(
        cfg::doc<&config::admin>("admin HTTP endpoint (off when listen is unset)"),
        cfg::doc<&config::name>("route label in metrics"),
        cfg::doc<&config::listen>("address and port clients connect to"),
        cfg::required<&config::backends>("HTTP/1.1 backends, round robin"),
        cfg::doc<&config::limits>("timeouts and sizes"),
        cfg::doc<&config::ip_filter>("allow/deny lists, per connection"),
        cfg::doc<&config::conn_limit>("connection caps"),
        cfg::doc<&config::bans>("bans by address or identity"),
        cfg::doc<&config::jwt>("JWT bearer tokens (Authorization: Bearer, optional cookie/query)"),
        cfg::doc<&config::api_keys>("API keys"),
        cfg::doc<&config::require_auth>("with jwt or api_keys set: a request needs a valid token or key (else 401)"),
        cfg::doc<&config::rate_limit>("request rate limits"),
        cfg::doc<&config::audit>("security audit log: one line per rejection, no secrets"),
        cfg::doc<&config::forwarding>("which request headers and trailers reach the backends"),
        cfg::doc<&config::request_id>("request ids and W3C trace context"),
        cfg::doc<&config::cors>("cross-origin requests from browsers (off when unset)"),
        cfg::doc<&config::access_log>("one log line per request"));
  }

  void validate(cfg::validator& v) const {
    std::error_code ec;
    (void)asio::ip::make_address(listen.host, ec);
    if (ec) v.at(&config::listen).error("listen address must be an IP address: '" + listen.host + "'");
    if (backends.empty()) v.at(&config::backends).error("at least one backend");
  }
};

using runtime = rproxy::app::runtime<config>;

/// Builds the gateway and opens its listener (serve.cpp).
int serve(runtime& rt);

}  // namespace http_gateway
