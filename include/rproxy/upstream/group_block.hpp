// rproxy/upstream/group_block.hpp: a named group of HTTP backends as an HTTP proxy's YAML
// declares it: one pool with its balancer, active health checks, breakers and passive ejection,
// and how the backends are spoken to (HTTP/1.1, HTTP/3, HTTP/2 over TCP or TLS) with the
// blocks each of those reads. An app lists `std::vector<group_block> groups` in its config and
// calls validate_groups() from its own validate(): the stand-in backends (h2c, h2, h3) are found
// by address, so one of those cannot be listed in two groups.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/h2_upstream_block.hpp>
#include <rproxy/flow/h3_upstream_block.hpp>
#include <rproxy/flow/upstream_tls_block.hpp>
#include <rproxy/health/breaker_block.hpp>
#include <rproxy/health/check_config.hpp>

namespace rproxy::upstream {

/// A named backend group: one pool, its balancer, health checks, breakers and passive ejection.
struct group_block {
  std::string name;
  std::vector<balance::backend_settings> backends;
  balance::algorithm balancer = balance::algorithm::round_robin;
  std::optional<health::check_config> health_check;
  std::optional<health::weights_config> dynamic_weights;
  std::optional<health::breaker_block> breaker;
  health::outlier_block outlier{};
  std::optional<flow::upstream_tls_block> tls;
  flow::upstream_proto proto = flow::upstream_proto::http;
  std::optional<flow::h3_upstream_block> h3;
  std::optional<flow::h2_upstream_block> h2;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&group_block::name>("group name (routes' backends: [{group: ...}], metrics)"),
                       cfg::required<&group_block::backends>("the group's backends"),
                       cfg::doc<&group_block::balancer>("round_robin, weighted_round_robin, least_conn, random, lowest_latency, ip_hash or consistent_hash (both by the route's sticky key, else the client's address)"),
                       cfg::doc<&group_block::health_check>("active health checks (off when absent)"),
                       cfg::doc<&group_block::dynamic_weights>("weights from each backend's load report (off when absent)"),
                       cfg::doc<&group_block::breaker>("a circuit breaker per backend (off when absent)"),
                       cfg::doc<&group_block::outlier>("passive ejection of backends that fail in a row (consecutive_failures: 0 turns it off)"),
                       cfg::doc<&group_block::tls>("TLS to the group's backends: sni, ca, verify (plain TCP when absent; proto: h2 verifies against the system's store)"),
                       cfg::doc<&group_block::proto>("how the backends are spoken to: http (HTTP/1.1), h3 (HTTP/3 over QUIC, pooled connections) h2c (HTTP/2 over TCP, prior knowledge, multiplexed; gRPC) or h2 (HTTP/2 over TLS, ALPN h2, with the tls: block's settings)"),
                       cfg::doc<&group_block::h3>("HTTP/3 backends: trust, TLS name, connections and streams (proto: h3)"),
                       cfg::doc<&group_block::h2>("HTTP/2 backends: connections, streams, queue and timeouts (proto: h2c or h2)"));
  }
  /// HTTP/2 backends, over TCP (h2c) or TLS (h2).
  bool is_h2() const noexcept { return proto == flow::upstream_proto::h2c || proto == flow::upstream_proto::h2; }
  /// TLS to the backends: the `tls:` block, or for proto: h2 without one the defaults (verified
  /// against the system's store, the backend's IP address checked); none for plain TCP.
  std::optional<flow::upstream_tls_block> tls_settings() const {
    if (tls || proto != flow::upstream_proto::h2) return tls;
    return flow::upstream_tls_block{};
  }
  /// The group's pool knobs (a pool keeps them for life: a change makes a new pool).
  balance::pool_config pool_settings() const {
    balance::pool_config c;
    if (breaker) c.breaker = breaker->config();
    c.outlier = outlier.config();
    return c;
  }
  void validate(config::validator& v) const {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < backends.size(); ++i)
      if (!seen.insert(backends[i].address.to_string()).second)
        v.at(&group_block::backends).at(i).error("backend listed twice: " + backends[i].address.to_string());
    if (h3 && proto != flow::upstream_proto::h3) v.at(&group_block::h3).error("an h3: block needs proto: h3");
    if (tls && proto == flow::upstream_proto::h3) v.at(&group_block::tls).error("HTTP/3 backends take their TLS settings from the h3: block");
    if (h2 && !is_h2()) v.at(&group_block::h2).error("an h2: block needs proto: h2c or h2");
    if (tls && proto == flow::upstream_proto::h2c) v.at(&group_block::tls).error("h2c backends are plain TCP: HTTP/2 over TLS is proto: h2");
  }
};

/// Checks a config's list of groups (`v` at that list): names are unique, and a backend of an
/// h2c, h2 or h3 group, reached through a stand-in found by its address
/// (flow/upstream_redirect.hpp), is in no other group, which would use the stand-in too.
/// Returns the group names, for the routes' references.
inline std::set<std::string, std::less<>> validate_groups(const std::vector<group_block>& groups, const config::validator& v) {
  std::set<std::string, std::less<>> names;
  for (std::size_t i = 0; i < groups.size(); ++i)
    if (!names.insert(groups[i].name).second) v.at(i).error("group name '" + groups[i].name + "' is used twice");
  std::map<std::string, std::size_t, std::less<>> first_group;  // address -> group
  for (std::size_t i = 0; i < groups.size(); ++i)
    for (std::size_t j = 0; j < groups[i].backends.size(); ++j) {
      auto [it, fresh] = first_group.emplace(groups[i].backends[j].address.to_string(), i);
      const auto& other = groups[it->second];
      if (!fresh && it->second != i && (groups[i].proto != flow::upstream_proto::http || other.proto != flow::upstream_proto::http))
        v.at(i).at(&group_block::backends).at(j).error(
            "backend " + it->first + " is also in group '" + other.name +
            "': a backend of an h2c, h2 or h3 group cannot be shared with another group (its stand-in is found by address)");
    }
  return names;
}

}  // namespace rproxy::upstream
