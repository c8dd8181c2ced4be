// rproxy/app/mc_server_block.hpp: the YAML block of one Minecraft server behind a proxy, declared
// once: the host names players type, its backend pool and balancer, the handshake it gets (host
// rewrite, forwarding data), its server-list entry (flow/mc_server_list.hpp), kick texts, status-ping
// health checks (health/mc_check_config.hpp) and wake on join (app/wake.hpp); and the block of
// what happens to a host name no server claims. Any Minecraft app that routes players by host
// name to servers lists these (apps/mc-proxy does, inline and one file per server).
//
//     struct config {
//       std::vector<rproxy::app::mc_server_block> servers;
//       rproxy::app::mc_unknown_domain_block unknown_domain{};
//       static constexpr auto describe() { ... }
//     };
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <rproxy/app/wake.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/mc_status_block.hpp>
#include <rproxy/health/mc_check_config.hpp>
#include <rproxy/route/host.hpp>

namespace rproxy::app {

/// kick: disconnect with the message; default_server: send to the default server.
enum class mc_unknown_action { kick, default_server };
constexpr auto config_enum_names(mc_unknown_action) {
  return std::array{config::enum_name{"kick", mc_unknown_action::kick}, config::enum_name{"default", mc_unknown_action::default_server}};
}

/// A server's kick texts.
struct mc_messages_block {
  std::string offline = "The server is offline. Please try again later.";
  std::string starting = "The server is starting. Please reconnect in a few seconds.";
  static constexpr auto describe() {
    return config::fields(config::doc<&mc_messages_block::offline>("kick text when no backend can be reached"),
                          config::doc<&mc_messages_block::starting>("kick text while the server is being woken up"));
  }
};

/// One Minecraft server behind the proxy.
struct mc_server_block {
  std::string name;  ///< from the file name for servers_dir files
  std::vector<std::string> domains;
  std::vector<balance::backend_settings> backends;
  balance::algorithm balancer = balance::algorithm::round_robin;
  std::string rewrite_host;
  bool keep_forwarding_data = false;
  flow::mc_status_config status{};
  mc_messages_block messages{};
  std::optional<health::mc_check_config> health_check;
  std::optional<wake_config> wake;

  static constexpr auto describe() {
    return config::fields(config::doc<&mc_server_block::name>("server name (metrics label); a servers_dir file is named by its file name"),
                          config::required<&mc_server_block::domains>("host names players type: exact, or *.example.com for any subdomain"),
                          config::required<&mc_server_block::backends>("the server pool"),
                          config::doc<&mc_server_block::balancer>("round_robin, weighted_round_robin, least_conn, random, lowest_latency, ip_hash or consistent_hash (both by the client's address)"),
                          config::doc<&mc_server_block::rewrite_host>("host name written into the handshake sent to the backend; empty: as typed"),
                          config::doc<&mc_server_block::keep_forwarding_data>("pass on forwarding data a client put in the handshake (BungeeCord \\0ip\\0uuid); "
                                                                          "only behind a proxy you run: false strips it (Forge markers stay)"),
                          config::doc<&mc_server_block::status>("server list entry: cache and per-state texts"),
                          config::doc<&mc_server_block::messages>("kick texts"),
                          config::doc<&mc_server_block::health_check>("active Minecraft status-ping probes; off when absent"),
                          config::doc<&mc_server_block::wake>("wake on join: start the backend on the first login, stop it when idle"));
  }
  void validate(config::validator& v) const {
    balance::validate_backends(v.at(&mc_server_block::backends), backends);
    for (std::size_t i = 0; i < domains.size(); ++i)
      if (!route::is_valid_host_pattern(domains[i]))
        v.at(&mc_server_block::domains).at(i).error("not a host name or *.wildcard: '" + domains[i] + "'");
  }
};

/// What happens to a host name no server claims (route::by_host's unknown policy).
struct mc_unknown_domain_block {
  mc_unknown_action action = mc_unknown_action::kick;
  std::string message = "Unknown server address. Check the address you typed.";
  static constexpr auto describe() {
    return config::fields(config::doc<&mc_unknown_domain_block::action>("kick: disconnect with the message; default: send to default_server"),
                          config::doc<&mc_unknown_domain_block::message>("kick text for an unknown host name"));
  }
};

}  // namespace rproxy::app
