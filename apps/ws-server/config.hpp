// apps/ws-server/config.hpp: the WebSocket room server's YAML, declared once. The library
// brings every block (the WebSocket bounds, the rooms limits, the security stages); the server
// adds its listener, the Origin allow-list and the chat page switch.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <asio/ip/address.hpp>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/restart_only.hpp>
#include <rproxy/app/runtime_fwd.hpp>
#include <rproxy/app/tls_block.hpp>
#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/ws_block.hpp>
#include <rproxy/middleware/audit_block.hpp>
#include <rproxy/middleware/conn_limit_block.hpp>
#include <rproxy/middleware/ip_filter_block.hpp>
#include <rproxy/middleware/jwt_block.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>
#include <rproxy/rooms/cluster_block.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace ws_server {

namespace cfg = rproxy::config;
namespace mw = rproxy::middleware;

/// `rate_limits:` one limit per operation; each is a rate_limit block (key, tiers, penalty).
struct rate_limits_block {
  std::optional<mw::rate_limit_block> connect;          ///< new connections (on accept: key by ip)
  std::optional<mw::rate_limit_block> message;          ///< room messages
  std::optional<mw::rate_limit_block> join;             ///< joins (each may cost a password hash)
  std::optional<mw::rate_limit_block> private_message;  ///< private messages
  std::optional<mw::rate_limit_block> invalid;          ///< unreadable requests (error replies)

  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&rate_limits_block::connect>("new connections, counted at accept (key: ip)"),
                       cfg::doc<&rate_limits_block::message>("room messages"),
                       cfg::doc<&rate_limits_block::join>("joins"),
                       cfg::doc<&rate_limits_block::private_message>("private messages"),
                       cfg::doc<&rate_limits_block::invalid>("unreadable requests (each gets an error reply)"));
  }
};

struct config {
  rproxy::app::admin_config admin{};
  std::optional<cfg::endpoint> listen;  ///< ws://; see plain_listen()
  std::optional<rproxy::app::tls_listener_block> tls;
  rproxy::flow::ws_block websocket{};
  rproxy::rooms::rooms_block rooms{};
  std::optional<mw::jwt_block> jwt;
  bool anonymous = false;
  std::vector<std::string> allowed_origins;
  mw::ip_filter_block ip_filter{};
  mw::conn_limit_block conn_limit{};
  rate_limits_block rate_limits{};
  mw::audit_block audit{};
  bool chat_page = true;
  std::optional<rproxy::cluster::redis_block> redis;
  rproxy::rooms::cluster_block cluster{};

  static constexpr auto describe() {
    return cfg::fields(
        cfg::doc<&config::admin>("admin HTTP endpoint: /metrics /healthz /readyz, POST /reload (off when listen is unset)"),
        cfg::doc<&config::listen>("address and port clients connect to (ws://); absent: 127.0.0.1:8095, or none with a tls block (wss only)"),
        cfg::doc<&config::tls>("a TLS listener besides it (wss://), certificates chosen by SNI, read again on reload (off when absent)"),
        cfg::doc<&config::websocket>("message size, idle timeout, send queue and slow-consumer policy"),
        cfg::doc<&config::rooms>("rooms, members, history and input limits"),
        cfg::doc<&config::jwt>("JWT at the upgrade (Authorization: Bearer, cookie or ?token=); sub names the user, role its site role"),
        cfg::doc<&config::anonymous>("without a token, a client names itself with ?user=NAME (demos only: anyone may claim any name)"),
        cfg::doc<&config::allowed_origins>("Origin values browsers may connect from (exact, or scheme://*.domain); "
                                           "empty: any. Clients without Origin (not browsers) are not affected"),
        cfg::doc<&config::ip_filter>("allow/deny lists"),
        cfg::doc<&config::conn_limit>("connection caps, per IP and in total"),
        cfg::doc<&config::rate_limits>("rate limits per operation"),
        cfg::doc<&config::audit>("security audit log: one line per refusal, no secrets"),
        cfg::doc<&config::chat_page>("serve a small chat page at GET /"),
        cfg::doc<&config::redis>("share rooms with other instances through this Redis (off when absent: rooms stay in this process)"),
        cfg::doc<&config::cluster>("how rooms are shared when redis is set"));
  }

  /// The ws:// listener: `listen`; absent, 127.0.0.1:8095, or none when a tls block is given.
  std::optional<cfg::endpoint> plain_listen() const {
    if (listen) return listen;
    if (tls) return std::nullopt;
    return cfg::endpoint{"127.0.0.1", 8095};
  }

  /// What a reload does not apply (app/restart_only.hpp: `validate` prints it, a reload that
  /// changes it logs "restart required"): the listeners, the admin endpoint, the audit log and
  /// the Redis link are made once, from the config the process started with.
  rproxy::app::restart_keys restart_only() const {
    using rproxy::app::value_text;
    return {{"listen", plain_listen() ? plain_listen()->to_string() : ""},
            {"tls", tls ? "on" : "off"},
            {"tls.listen", tls ? tls->listen.to_string() : ""},
            {"admin", value_text(admin)},
            {"audit", value_text(audit)},
            {"redis", redis ? value_text(*redis) : ""},
            {"cluster", value_text(cluster)}};
  }

  void validate(cfg::validator& v) const {
    if (listen) {
      std::error_code ec;
      (void)asio::ip::make_address(listen->host, ec);
      if (ec) v.at(&config::listen).error("listen address must be an IP address: '" + listen->host + "'");
    }
    if (!jwt && !anonymous) v.at(&config::anonymous).error("set a jwt block, or anonymous: true (nobody could connect)");
  }
};

/// The server (serve.cpp): listeners, worlds, reloads; 0 once it serves, else 1 (logged).
int serve(rproxy::app::runtime<config>& rt);

}  // namespace ws_server
