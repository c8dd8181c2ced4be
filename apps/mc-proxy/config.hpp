// apps/mc-proxy/config.hpp: mc-proxy's configuration, declared once (rproxy/config derives the
// YAML decoder, file:line:col errors, `mc-proxy init` and docs from these declarations).
//
// One main file plus, optionally, one file per server in `servers_dir` (as Infrarust users keep
// them); `config::load` reads both, and every error names its file. The decoder is not included
// here: config_load.hpp (config.cpp, or a user's main with extra blocks) brings it.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/runtime_fwd.hpp>
#include <rproxy/app/wake.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/flow/config.hpp>
#include <rproxy/flow/mc_block.hpp>
#include <rproxy/flow/mc_status_block.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/dir_beside.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/listen_address.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/health/mc_check_config.hpp>
#include <rproxy/middleware/ban_block.hpp>
#include <rproxy/route/host.hpp>

namespace mc_proxy {

namespace cfg = rproxy::config;

namespace bal = rproxy::balance;
enum class unknown_action { kick, default_server };
constexpr auto config_enum_names(unknown_action) {
  return std::array{cfg::enum_name{"kick", unknown_action::kick}, cfg::enum_name{"default", unknown_action::default_server}};
}

struct messages_config {
  std::string offline = "The server is offline. Please try again later.";
  std::string starting = "The server is starting. Please reconnect in a few seconds.";
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&messages_config::offline>("kick text when no backend can be reached"),
                       cfg::doc<&messages_config::starting>("kick text while the server is being woken up"));
  }
};

struct server_config {
  std::string name;  ///< from the file name for servers_dir files
  std::vector<std::string> domains;
  std::vector<bal::backend_settings> backends;
  bal::algorithm balancer = bal::algorithm::round_robin;
  std::string rewrite_host;
  bool keep_forwarding_data = false;
  rproxy::flow::mc_status_config status{};
  messages_config messages{};
  std::optional<rproxy::health::mc_check_config> health_check;
  std::optional<rproxy::app::wake_config> wake;

  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&server_config::name>("server name (metrics label); a servers_dir file is named by its file name"),
                       cfg::required<&server_config::domains>("host names players type: exact, or *.example.com for any subdomain"),
                       cfg::required<&server_config::backends>("the server pool"),
                       cfg::doc<&server_config::balancer>("round_robin, weighted_round_robin, least_conn, random or lowest_latency"),
                       cfg::doc<&server_config::rewrite_host>("host name written into the handshake sent to the backend; empty: as typed"),
                       cfg::doc<&server_config::keep_forwarding_data>("pass on forwarding data a client put in the handshake (BungeeCord \\0ip\\0uuid); "
                                                                       "only behind a proxy you run: false strips it (Forge markers stay)"),
                       cfg::doc<&server_config::status>("server list entry: cache and per-state texts"),
                       cfg::doc<&server_config::messages>("kick texts"),
                       cfg::doc<&server_config::health_check>("active Minecraft status-ping probes; off when absent"),
                       cfg::doc<&server_config::wake>("wake on join: start the backend on the first login, stop it when idle"));
  }
  void validate(cfg::validator& v) const {
    bal::validate_backends(v.at(&server_config::backends), backends);
    for (std::size_t i = 0; i < domains.size(); ++i)
      if (!rproxy::route::is_valid_host_pattern(domains[i]))
        v.at(&server_config::domains).at(i).error("not a host name or *.wildcard: '" + domains[i] + "'");
  }
};

struct unknown_domain_config {
  unknown_action action = unknown_action::kick;
  std::string message = "Unknown server address. Check the address you typed.";
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&unknown_domain_config::action>("kick: disconnect with the message; default: send to default_server"),
                       cfg::doc<&unknown_domain_config::message>("kick text for an unknown host name"));
  }
};

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
                       cfg::doc<&config::relay>("byte relay settings"));
  }

  void validate(cfg::validator& v) const {
    cfg::validate_listen_address(v.at(&config::listen), listen);
    std::set<std::string> names;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      if (servers[i].name.empty()) v.at(&config::servers).at(i).at(&server_config::name).error("an inline server needs a name");
      else if (!names.insert(servers[i].name).second)
        v.at(&config::servers).at(i).at(&server_config::name).error("duplicate server name '" + servers[i].name + "'");
    }
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

