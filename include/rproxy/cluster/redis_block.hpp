// rproxy/cluster/redis_block.hpp: the `redis:` config block, declared once. Without it, an app
// keeps its state in-process (the default, which needs nothing).
//
//     redis:
//       address: 127.0.0.1:6379
//       user: rproxy                     # ACL user; omit for `requirepass`
//       password_file: /etc/rproxy/redis.pass   # or password_env: REDIS_PASSWORD
//       key_prefix: "shop:"              # several deployments on one Redis
//       command_timeout: 250ms
//       tls:                             # omit for plain TCP
//         ca: /etc/rproxy/redis-ca.pem   # trusted CAs (default: the system's store)
//         sni: redis.internal            # sent and checked (default: the address's IP SAN)
//         cert: /etc/rproxy/client.pem   # client certificate, for `tls-auth-clients yes`
//         key: /etc/rproxy/client.key
//
//     std::optional<rproxy::cluster::redis_block> redis;       // in the app's config struct
//     auto o = c.redis->options();      // result<redis_options, std::string>: reads the secret
//
// The password is read when the options are built (at start and on reload), never logged, and
// never written back by `init` (only the file or variable name is config).
//
// The tls block has the names and the checks of a backend group's tls block
// (flow/upstream_tls_block.hpp: verification on by default, the system's store without `ca`),
// plus the client certificate that Redis asks for by default (`tls-auth-clients yes`). Its files
// are read when the options are built and by `validate`, which reports a bad one at its line.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>

#include <asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include <rproxy/cluster/redis_options.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/flow/upstream_tls_block.hpp>
#include <rproxy/net/tls_client_context.hpp>

namespace rproxy::cluster {

/// `redis: tls:`: the links to Redis are TLS, the server verified.
struct redis_tls_block {
  std::string sni;
  std::string ca;
  bool verify = true;
  std::string cert;
  std::string key;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&redis_tls_block::sni>("name sent as SNI and verified in Redis' certificate (empty: the address's IP is verified)"),
        cfg::doc<&redis_tls_block::ca>("PEM file of the CAs to trust (empty: the system's CA store)"),
        cfg::doc<&redis_tls_block::verify>("verify Redis' certificate chain and name (false: for a test server only)"),
        cfg::doc<&redis_tls_block::cert>("PEM client certificate (chain), for a Redis with tls-auth-clients yes"),
        cfg::doc<&redis_tls_block::key>("PEM private key of cert (unencrypted)"));
  }

  /// Which field a loading error belongs to, and why (file names, never their content).
  struct load_error {
    std::string redis_tls_block::*field;
    std::string message;
  };

  void validate(config::validator& v) const {
    if (!sni.empty() && !flow::upstream_tls_block::valid_name(sni))
      v.at(&redis_tls_block::sni).error("sni must be a host name or an IP address: '" + sni + "'");
    if (cert.empty() != key.empty()) v.at(cert.empty() ? &redis_tls_block::cert : &redis_tls_block::key).error("give both cert and key, or neither");
    else if (auto c = context(); !c) v.at(c.error().field).error(c.error().message);
  }

  /// The client context: CAs, verification, and the client certificate when given.
  result<std::shared_ptr<const net::tls_client_context>, load_error> context() const {
    auto loaded = net::tls_client_context::load({.ca_file = ca, .verify = verify, .alpn = {}, .session_cache = 16});
    if (!loaded) return rproxy::failure(load_error{&redis_tls_block::ca, loaded.error().message});
    auto ctx = std::make_shared<net::tls_client_context>(std::move(*loaded));
    if (!cert.empty()) {
      std::error_code ec;
      ctx->context().use_certificate_chain_file(cert, ec);
      if (ec) return rproxy::failure(load_error{&redis_tls_block::cert, cert + ": cannot load the certificate: " + ec.message()});
      ctx->context().use_private_key_file(key, asio::ssl::context::pem, ec);
      if (ec) return rproxy::failure(load_error{&redis_tls_block::key, key + ": cannot load the private key: " + ec.message()});
      if (SSL_CTX_check_private_key(ctx->context().native_handle()) != 1)
        return rproxy::failure(load_error{&redis_tls_block::key, key + ": the key does not belong to " + cert});
    }
    return std::shared_ptr<const net::tls_client_context>(std::move(ctx));
  }
};

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
  std::optional<redis_tls_block> tls;

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
        cfg::doc<&redis_block::max_pending>("commands awaiting a reply per connection; past it commands fail at once"),
        cfg::doc<&redis_block::tls>("TLS to Redis, the server verified (omit: plain TCP)"));
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
    if (tls) {
      auto ctx = tls->context();
      if (!ctx) return rproxy::failure("redis.tls: " + ctx.error().message);
      o.tls = std::move(*ctx);
      o.tls_name = tls->sni;
    }
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
