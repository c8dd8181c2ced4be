// rproxy/cluster/lua_script.hpp: a Lua script run with EVALSHA, falling back to EVAL when Redis
// does not have it cached (NOSCRIPT: a restarted or flushed Redis, a failover), which caches it.
//
//     static const lua_script incr_ttl{"local v = redis.call('INCRBY', KEYS[1], ARGV[1]) ... return v"};
//     const std::string_view keys[] = {key}, args[] = {"1", "60000"};
//     auto [ec, r] = co_await run_script(client, incr_ttl, keys, args);          // a coroutine
//     async_eval(client, incr_ttl, keys, args, [](std::error_code ec, reply r) { ... });  // any token
//     load_on_connect(client, {&incr_ttl});   // SCRIPT LOAD each time the client comes up
//
// The SHA1 is computed here (OpenSSL), once per script. load_on_connect sends SCRIPT LOAD when
// the client connects and after each reconnect (before any command queued after it on that
// connection), so EVALSHA normally finds the script; NOSCRIPT stays handled (a SCRIPT FLUSH, a
// failover to a replica without it). Every key a script touches is passed in KEYS (Redis
// Cluster routes on them).
#pragma once

#include <openssl/evp.h>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_executor.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
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

namespace detail {

/// One attempt: EVALSHA, or EVAL (`body`) on the retry after NOSCRIPT.
template <class Handler>
void eval_attempt(redis_client& c, const lua_script& s, std::span<const std::string_view> keys,
                  std::span<const std::string_view> args, bool body, Handler h) {
  const std::string nkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back(body ? std::string_view("EVAL") : std::string_view("EVALSHA"));
  argv.push_back(body ? s.body : std::string_view(s.sha));
  argv.push_back(nkeys);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto ex = asio::get_associated_executor(h, c.get_executor());
  c.async_command(argv, asio::bind_executor(ex, [&c, &s, keys, args, body, h = std::move(h)](std::error_code ec, reply r) mutable {
                    if (!body && ec == error::server_error && r.str.starts_with("NOSCRIPT"))
                      return eval_attempt(c, s, keys, args, true, std::move(h));
                    std::move(h)(ec, std::move(r));
                  }));
}

}  // namespace detail

/// Runs `s` with EVALSHA; on NOSCRIPT, once more with EVAL (which caches it). Completion:
/// (error_code, reply). `keys` and `args` (and what they view) must stay valid until it
/// completes (the retry sends them again), as a buffer passed to asio::async_write.
template <class Token>
auto async_eval(redis_client& c, const lua_script& s, std::span<const std::string_view> keys,
                std::span<const std::string_view> args, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, reply)>(
      [&c, &s, keys, args](auto handler) { detail::eval_attempt(c, s, keys, args, false, std::move(handler)); }, token);
}

/// Runs `s` with EVALSHA; on NOSCRIPT, once more with EVAL. Completion: (error_code, reply).
inline asio::awaitable<std::tuple<std::error_code, reply>> run_script(redis_client& c, const lua_script& s,
                                                                      std::span<const std::string_view> keys,
                                                                      std::span<const std::string_view> args) {
  auto [ec, r] = co_await async_eval(c, s, keys, args, asio::experimental::as_tuple(asio::use_awaitable));
  co_return std::tuple<std::error_code, reply>{ec, std::move(r)};
}

/// Sends SCRIPT LOAD for each of `scripts` whenever `c` comes up (first connect and each
/// reconnect); call before c.start(). The scripts must outlive the client. A failed load is
/// not an error: the first EVALSHA then gets NOSCRIPT and runs the script with EVAL.
inline void load_on_connect(redis_client& c, std::vector<const lua_script*> scripts) {
  c.on_state([&c, scripts = std::move(scripts)](bool up) {
    if (!up) return;
    for (const lua_script* s : scripts) {
      const std::string_view argv[] = {"SCRIPT", "LOAD", s->body};
      c.async_command(argv, [](std::error_code, reply) {});
    }
  });
}

}  // namespace rproxy::cluster
