// rproxy/cluster/redis_block.hpp: the `redis:` config block, declared once. Without it, an app
// keeps its state in-process (the default, which needs nothing).
//
//     redis:
//       address: 127.0.0.1:6379
//       user: rproxy                     # ACL user; omit for `requirepass`
//       password_file: /etc/rproxy/redis.pass   # or password_env: REDIS_PASSWORD
//       key_prefix: "shop:"              # several deployments on one Redis
//       command_timeout: 250ms
//
//     std::optional<rproxy::cluster::redis_block> redis;       // in the app's config struct
//     auto o = c.redis->options();      // result<redis_options, std::string>: reads the secret
//
// The password is read when the options are built (at start and on reload), never logged, and
// never written back by `init` (only the file or variable name is config).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <rproxy/cluster/redis_options.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::cluster {

struct redis_block {
  config::endpoint address{"127.0.0.1", 6379};
  std::string user;
  std::string password_file;
  std::string password_env;
  std::string key_prefix = "rproxy:";
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{250};
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  std::uint32_t max_pending = 10'000;

  static constexpr std::string_view summary = "shared state across instances (limits, bans, rooms) in Redis";

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&redis_block::address>("Redis host:port (an address, or a name resolved at start)"),
        cfg::doc<&redis_block::user>("ACL user for AUTH; empty: AUTH with the password alone"),
        cfg::doc<&redis_block::password_file>("file holding the password (first line); never logged"),
        cfg::doc<&redis_block::password_env>("environment variable holding the password; never logged"),
        cfg::doc<&redis_block::key_prefix>("prefix of every key and channel (no braces)"),
        cfg::doc<&redis_block::connect_timeout>("connect, AUTH and first PING within this"),
        cfg::doc<&redis_block::command_timeout>("a reply later than this fails the command and resets the connection"),
        cfg::doc<&redis_block::reconnect_min>("first wait before reconnecting"),
        cfg::doc<&redis_block::reconnect_max>("longest wait before reconnecting (the wait doubles)"),
        cfg::doc<&redis_block::max_pending>("commands awaiting a reply per connection; past it commands fail at once"));
  }

  void validate(config::validator& v) const {
    if (key_prefix.find_first_of("{}") != std::string::npos)
      v.at(&redis_block::key_prefix).error("a brace in the prefix would become the Redis Cluster hash tag");
    if (!password_file.empty() && !password_env.empty())
      v.at(&redis_block::password_env).error("give password_file or password_env, not both");
    if (address.port == 0) v.at(&redis_block::address).error("Redis needs a port");
    if (command_timeout.count() <= 0) v.at(&redis_block::command_timeout).error("must be positive");
    if (connect_timeout.count() <= 0) v.at(&redis_block::connect_timeout).error("must be positive");
    if (reconnect_min.count() <= 0 || reconnect_max < reconnect_min)
      v.at(&redis_block::reconnect_max).error("need 0 < reconnect_min <= reconnect_max");
    if (max_pending == 0) v.at(&redis_block::max_pending).error("must be at least 1");
  }

  /// The client options, with the password read. The error names the file or variable, never
  /// its content.
  result<redis_options, std::string> options() const {
    redis_options o;
    o.host = address.host;
    o.port = address.port;
    o.user = user;
    o.key_prefix = key_prefix;
    o.connect_timeout = connect_timeout;
    o.command_timeout = command_timeout;
    o.reconnect_min = reconnect_min;
    o.reconnect_max = reconnect_max;
    o.max_pending = max_pending;
    if (!password_file.empty()) {
      std::ifstream in(password_file);
      if (!in) return rproxy::failure("redis.password_file: cannot read " + password_file + ": " + std::strerror(errno));
      std::getline(in, o.password);
      while (!o.password.empty() && (o.password.back() == '\r' || o.password.back() == ' ')) o.password.pop_back();
      if (o.password.empty()) return rproxy::failure("redis.password_file: " + password_file + " is empty");
    } else if (!password_env.empty()) {
      const char* p = std::getenv(password_env.c_str());
      if (p == nullptr || *p == '\0') return rproxy::failure("redis.password_env: variable " + password_env + " is not set");
      o.password = p;
    }
    return o;
  }
};

}  // namespace rproxy::cluster
