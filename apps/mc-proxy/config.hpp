// apps/mc-proxy/config.hpp: mc-proxy's configuration, declared once (rproxy/config derives the
// YAML decoder, file:line:col errors, `mc-proxy init` and docs from these declarations).
//
// One main file plus, optionally, one file per server in `servers_dir` (as Infrarust users keep
// them); `config::load` reads both, and every error names its file. The decoder is not included
// here: config_load.hpp (config.cpp, or a user's main with extra blocks) brings it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/mc_server_block.hpp>
#include <rproxy/app/restart_only.hpp>
#include <rproxy/app/runtime_fwd.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/flow/config.hpp>
#include <rproxy/flow/mc_block.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/dir_beside.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/listen_address.hpp>
#include <rproxy/config/unique.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/ban_block.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>

namespace mc_proxy {

namespace cfg = rproxy::config;

namespace bal = rproxy::balance;
// A server, its kick texts and the unknown-host policy: the library's Minecraft server blocks.
using server_config = rproxy::app::mc_server_block;
using messages_config = rproxy::app::mc_messages_block;
using unknown_action = rproxy::app::mc_unknown_action;
using unknown_domain_config = rproxy::app::mc_unknown_domain_block;

struct config {
  cfg::endpoint listen{"0.0.0.0", 25565};
  rproxy::app::admin_config admin{};
  std::string servers_dir;
  std::vector<server_config> servers;
  std::string default_server;
  unknown_domain_config unknown_domain{};
  rproxy::flow::proxy_protocol_config proxy_protocol{};
  rproxy::flow::mc_limits_block limits{};
  rproxy::middleware::ban_block bans{.file = "", .message = "You are banned from this server."};
  rproxy::flow::relay_config relay{};
  std::optional<rproxy::cluster::redis_block> redis;
  std::optional<rproxy::middleware::rate_distributed_block> shared_limits;

  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&config::listen>("address and port players connect to"),
                       cfg::doc<&config::admin>("admin HTTP endpoint (off when listen is unset)"),
                       cfg::doc<&config::servers_dir>("directory with one YAML file per server (relative to this file); empty: none"),
                       cfg::doc<&config::servers>("servers declared inline (each with a name)"),
                       cfg::doc<&config::default_server>("server for unknown host names when unknown_domain.action is default, and for legacy pings"),
                       cfg::doc<&config::unknown_domain>("what happens to a host name no server claims"),
                       cfg::doc<&config::proxy_protocol>("PROXY protocol from a load balancer in front"),
                       cfg::doc<&config::limits>("timeouts, connection caps and rate limits"),
                       cfg::doc<&config::bans>("bans by IP, CIDR and username"),
                       cfg::doc<&config::relay>("byte relay settings"),
                       cfg::doc<&config::redis>("state shared with other instances: bans and, with shared_limits, rate limits (docs/scaling.md)"),
                       cfg::doc<&config::shared_limits>("limits.rate_limit counted across instances through redis: (mode, on_failure)"));
  }

  void validate(cfg::validator& v) const {
    cfg::validate_listen_address(v.at(&config::listen), listen);
    if (shared_limits && !redis) v.at(&config::shared_limits).error("shared_limits needs a redis: block (the instances share their counters there)");
    for (std::size_t i = 0; i < servers.size(); ++i)
      if (servers[i].name.empty()) v.at(&config::servers).at(i).at(&server_config::name).error("an inline server needs a name");
    cfg::validate_unique<&server_config::name>(v.at(&config::servers), servers, "duplicate server name");
  }

  /// What a reload does not apply (app/restart_only.hpp): the player listener, the admin
  /// endpoint and the Redis link are opened once, from the config the process started with.
  rproxy::app::restart_keys restart_only() const {
    using rproxy::app::value_text;
    return {{"listen", listen.to_string()}, {"admin", value_text(admin)}, {"redis", redis ? value_text(*redis) : ""}};
  }

  /// Reads the main file, then every *.yaml of servers_dir; checks what spans files (duplicate
  /// names and domains, default_server). Used by `run`, `validate` and every reload.
  static rproxy::result<config, cfg::diagnostics> load(const std::filesystem::path& path);  // config.cpp
  /// The same into a config extended with a user's blocks (config/extended.hpp); defined in
  /// config_load.hpp, which the unit that runs run_main includes.
  template <class Self>
  static rproxy::result<Self, cfg::diagnostics> load_as(const std::filesystem::path& path);

  /// The servers directory of a config read from `path` (nullopt: none), watched for reloads.
  static std::optional<std::filesystem::path> servers_path(const std::filesystem::path& path, const config& c) {
    return cfg::dir_beside(path, c.servers_dir);
  }
};

/// mc-proxy itself: app<config> without extra stages (serve.cpp; see serve.hpp).
int serve(rproxy::app::runtime<config>& rt);

}  // namespace mc_proxy

