// rproxy/balance/upstream_config.hpp: the config of a backend pool, declared once for every app:
// the backends (address, weight, PROXY header), the balancing algorithm chosen at run time, and
// the pool they make.
//
//     struct route_config {
//       std::vector<rproxy::balance::backend_settings> backends;   // - address: 10.0.0.5:25565
//       rproxy::balance::algorithm balancer = rproxy::balance::algorithm::round_robin;
//     };
//     auto pool = std::make_shared<rproxy::balance::upstream_pool>();
//     pool->update(rproxy::balance::pool_entries(route.backends));
//     auto stage = rproxy::balance::make_stage(pool, rproxy::balance::any_balancer::make(route.balancer, seed));
//
// The stage sets ctx.backend and ctx.proxy_out (the backend's send_proxy_protocol).
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <rproxy/balance/consistent_hash.hpp>
#include <rproxy/balance/ip_hash.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/p2c_ewma.hpp>
#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/random.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/weighted_round_robin.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/config/proxy_mode.hpp>

namespace rproxy::balance {

/// One backend of a pool, as a config file lists it.
struct backend_settings {
  config::endpoint address;
  std::uint32_t weight = 1;
  proxy_send send_proxy_protocol = proxy_send::none;
  static constexpr auto describe() {
    return config::fields(config::required<&backend_settings::address>("backend IP address and port, e.g. 10.0.0.5:25565"),
                          config::doc<&backend_settings::weight>("share of new flows (weighted balancers); 0: standby"),
                          config::doc<&backend_settings::send_proxy_protocol>("PROXY header to send this backend: none, v1, v2"));
  }
  void validate(config::validator& v) const {
    std::error_code ec;
    (void)asio::ip::make_address(address.host, ec);
    if (ec) v.at(&backend_settings::address).error("backend address must be an IP address: '" + address.host + "'");
  }
};

/// Checks a pool's backends as a config lists them, `v` being the list's place: at least one,
/// and no address twice (a pool could not be made of them).
inline void validate_backends(const config::validator& v, const std::vector<backend_settings>& backends) {
  if (backends.empty()) v.error("needs at least one backend");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < backends.size(); ++i)
    if (!seen.insert(backends[i].address.to_string()).second)
      v.at(i).at(&backend_settings::address).error("backend listed twice: " + backends[i].address.to_string());
}

/// The balancers a config can name. The two hashes pick by the stage's key (the client's
/// address unless the app passes another, e.g. h3-gateway a route's sticky cookie or header):
/// the same key, the same backend, on every worker and every instance alike (the hashes are
/// stable: balance/key.hpp), so affinity needs no table shared between instances.
enum class algorithm { round_robin, weighted_round_robin, least_conn, random, lowest_latency, ip_hash, consistent_hash };
constexpr auto config_enum_names(algorithm) {
  return std::array{config::enum_name{"round_robin", algorithm::round_robin},
                    config::enum_name{"weighted_round_robin", algorithm::weighted_round_robin},
                    config::enum_name{"least_conn", algorithm::least_conn}, config::enum_name{"random", algorithm::random},
                    config::enum_name{"lowest_latency", algorithm::lowest_latency}, config::enum_name{"ip_hash", algorithm::ip_hash},
                    config::enum_name{"consistent_hash", algorithm::consistent_hash}};
}

/// A pool member: where it is and the PROXY header it wants.
struct backend_address {
  asio::ip::tcp::endpoint ep;
  proxy_send proxy = proxy_send::none;
  asio::ip::tcp::endpoint endpoint() const { return ep; }
  friend bool operator==(const backend_address&, const backend_address&) = default;
};
using upstream_pool = basic_pool<backend_address>;

/// The pool entries for a config's backends (ids are "host:port"; addresses are IPs, checked
/// when the config was validated).
inline std::vector<upstream_pool::config_type> pool_entries(const std::vector<backend_settings>& backends) {
  std::vector<upstream_pool::config_type> out;
  for (const auto& b : backends)
    out.push_back({b.address.to_string(), {{asio::ip::make_address(b.address.host), b.address.port}, b.send_proxy_protocol}, b.weight});
  return out;
}

/// One balancer chosen at run time; the pick is a switch, not a virtual call.
struct any_balancer {
  std::variant<round_robin, weighted_round_robin, least_conn, random, p2c_ewma, ip_hash, consistent_hash> b;

  template <class Pool, class Key>
  auto pick(const Pool& pool, const Key& key) {
    return std::visit([&](auto& x) { return x.pick(pool, key); }, b);
  }
  static any_balancer make(algorithm a, std::uint64_t seed = 0x9e3779b97f4a7c15ull) {
    switch (a) {
      case algorithm::weighted_round_robin: return {weighted_round_robin{}};
      case algorithm::least_conn: return {least_conn{}};
      case algorithm::random: return {random{seed}};
      case algorithm::lowest_latency: return {p2c_ewma{}};
      case algorithm::ip_hash: return {ip_hash{}};
      case algorithm::consistent_hash: return {consistent_hash{}};
      default: return {round_robin{}};
    }
  }
};

}  // namespace rproxy::balance
