// rproxy/rooms/cluster_block.hpp: the `cluster:` YAML block of the WebSocket server: how its
// rooms are shared with other instances (rooms/cluster.hpp) once a `redis:` block
// (cluster/redis_block.hpp) names the Redis they share. Without `redis:` this block changes
// nothing: rooms stay in the process.
//
//     redis: { address: 10.0.0.5:6379, password_file: /etc/ws/redis.pass }
//     cluster: { presence_ttl: 30s, max_waiting: 64 }
#pragma once

#include <chrono>
#include <cstdint>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/rooms/cluster.hpp>

namespace rproxy::rooms {

struct cluster_block {
  std::chrono::milliseconds presence_ttl{30'000};
  std::uint32_t max_waiting = 64;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&cluster_block::presence_ttl>(
            "a member of a crashed instance leaves the room's presence (members, max_members) after this; "
            "each instance refreshes its members every third of it"),
        cfg::doc<&cluster_block::max_waiting>(
            "requests a connection may queue behind one waiting on Redis; past it the connection is closed (1008)"));
  }
  void validate(rproxy::config::validator& v) const {
    if (presence_ttl < std::chrono::seconds(3) || presence_ttl > std::chrono::hours(1))
      v.at(&cluster_block::presence_ttl).error("must be between 3s and 1h");
    if (max_waiting == 0 || max_waiting > 4096) v.at(&cluster_block::max_waiting).error("must be between 1 and 4096");
  }
  /// The bridge's options, with the redis block's key prefix.
  cluster_options options(std::string prefix) const {
    cluster_options o;
    o.prefix = std::move(prefix);
    o.presence_ttl = presence_ttl;
    o.max_waiting = max_waiting;
    return o;
  }
};

}  // namespace rproxy::rooms
