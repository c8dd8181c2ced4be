// rproxy/cluster/lua_script.hpp: a Lua script run with EVALSHA, falling back to EVAL when Redis
// does not have it cached (NOSCRIPT: a restarted or flushed Redis, a failover), which caches it.
//
//     static const lua_script incr_ttl{"local v = redis.call('INCRBY', KEYS[1], ARGV[1]) ... return v"};
//     const std::string_view keys[] = {key}, args[] = {"1", "60000"};
//     auto [ec, r] = co_await run_script(client, incr_ttl, keys, args);
//
// The SHA1 is computed here (OpenSSL), once per script, so no SCRIPT LOAD round trip is needed.
// Every key a script touches is passed in KEYS (Redis Cluster routes on them).
#pragma once

#include <openssl/evp.h>

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include <rproxy/cluster/error.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/cluster/reply.hpp>

namespace rproxy::cluster {

/// Lowercase hex SHA1 of `text` (what Redis names a script by).
inline std::string sha1_hex(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), md, &n, EVP_sha1(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

struct lua_script {
  std::string_view body;
  std::string sha;
  explicit lua_script(std::string_view b) : body(b), sha(sha1_hex(b)) {}
};

/// Runs `s` with EVALSHA; on NOSCRIPT, once more with EVAL. Completion: (error_code, reply).
inline asio::awaitable<std::tuple<std::error_code, reply>> run_script(redis_client& c, const lua_script& s,
                                                                      std::span<const std::string_view> keys,
                                                                      std::span<const std::string_view> args) {
  const std::string nkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(s.sha);
  argv.push_back(nkeys);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto tok = asio::experimental::as_tuple(asio::use_awaitable);
  auto [ec, r] = co_await c.async_command(argv, tok);
  if (ec == error::server_error && r.str.starts_with("NOSCRIPT")) {
    argv[0] = "EVAL";
    argv[1] = s.body;
    std::tie(ec, r) = co_await c.async_command(argv, tok);
  }
  co_return std::tuple<std::error_code, reply>{ec, std::move(r)};
}

}  // namespace rproxy::cluster
