// tests/support/redis_test_options.hpp: the client options of the cluster/ tests for a Redis of
// their own (redis_server.hpp): keys under a prefix of the test's, and short timeouts and
// back-off, so that a kill, pause or restart shows within a test's bounded poll. A test that
// needs more (TLS, a password, a slower handshake) changes its copy.
//
//     auto o = rproxy::test::redis_options_for(rs);               // keys "t:..."
//     auto o = rproxy::test::redis_options_for(rs.port(), "test:");
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <rproxy/cluster/redis_options.hpp>

#include "redis_server.hpp"

namespace rproxy::test {

inline cluster::redis_options redis_options_for(std::uint16_t port, std::string key_prefix = "t:") {
  using namespace std::chrono_literals;
  cluster::redis_options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.key_prefix = std::move(key_prefix);
  o.command_timeout = 300ms;
  o.connect_timeout = 500ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  return o;
}

inline cluster::redis_options redis_options_for(const redis_server& rs, std::string key_prefix = "t:") {
  return redis_options_for(rs.port(), std::move(key_prefix));
}

}  // namespace rproxy::test
