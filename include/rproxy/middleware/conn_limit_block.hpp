// rproxy/middleware/conn_limit_block.hpp: the YAML block of the conn_limit stage, declared once.
//
//     conn_limit: { max_per_ip: 64, max_total: 10000 }
//
//     mw::conn_limit_block conn_limit{};           // in the app's config struct
//     mw::conn_limit_config lc = c.conn_limit.config();
//     lc = mw::shared_by(lc, c.shared_limits);    // caps held with other instances: their on_failure
#pragma once

#include <cstdint>
#include <optional>

#include <rproxy/config/field.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>

namespace rproxy::middleware {

struct conn_limit_block {
  std::uint32_t max_per_ip = 0;
  std::uint32_t max_total = 0;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&conn_limit_block::max_per_ip>("open connections per client (IPv6: per /64); 0: no cap"),
                       cfg::doc<&conn_limit_block::max_total>("open connections in all; 0: no cap"));
  }
  conn_limit_config config() const {
    conn_limit_config c;
    c.max_per_ip = max_per_ip;
    c.max_total = max_total;
    return c;
  }
};

/// `c` with what it does while Redis is unreachable taken from an app's shared-limits block
/// (its on_failure), for caps held with other instances (cluster/redis_conn_slots.hpp).
inline conn_limit_config shared_by(conn_limit_config c, const std::optional<rate_distributed_block>& shared) {
  if (shared) c.on_failure = shared->on_failure;
  return c;
}

}  // namespace rproxy::middleware
