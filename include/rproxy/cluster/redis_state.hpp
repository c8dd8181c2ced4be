// rproxy/cluster/redis_state.hpp: the shared state (state.hpp) in Redis: one per worker, on the
// worker's executor, over that worker's redis_client (a command and a subscriber connection).
//
//     rproxy::cluster::redis_state st(io.get_executor(), *c.redis->options(), &log);
//     st.start();
//     auto n = co_await st.incr(st.key("conn", "203.0.113.7"), 1, 60s);
//     auto id = st.subscribe(st.channel("room", "lobby"), [](auto channel, auto payload) { ... });
//     auto e = co_await st.stream_add(st.key("room", "lobby", "history"), "hi", 100);
//
// Commands map to Redis as: incr -> INCRBY (+PEXPIRE when new, one script); sets -> a sorted set
// scored by each member's expiry in Redis' own clock (TIME, so instances with skewed clocks
// agree); maps -> HSET + PEXPIRE; publish -> PUBLISH; streams -> XADD MAXLEN = n, XRANGE from an
// exclusive id. While Redis is unreachable every call fails at once with error::not_connected
// and degraded() is true; callers fall back to local state (see docs/scaling.md).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/cluster/error.hpp>
#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/lua_script.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/cluster/redis_options.hpp>
#include <rproxy/cluster/state.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::cluster {

namespace detail {

inline const lua_script& incr_script() {
  static const lua_script s{R"lua(
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return v
)lua"};
  return s;
}

// KEYS[1] sorted set; ARGV[1] member, ARGV[2] ttl ms (0: never expires)
inline const lua_script& set_add_script() {
  static const lua_script s{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  local keep = redis.call('PTTL', KEYS[1])
  if keep >= 0 and keep < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
else
  redis.call('ZADD', KEYS[1], '+inf', ARGV[1])
  redis.call('PERSIST', KEYS[1])
end
return 1
)lua"};
  return s;
}

inline const lua_script& set_members_script() {
  static const lua_script s{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
)lua"};
  return s;
}

}  // namespace detail

class redis_state {
public:
  redis_state(asio::any_io_executor ex, redis_options opts, const observe::logger* log = nullptr)
      : client_(std::move(ex), std::move(opts), log) {}

  void start() { client_.start(); }
  void stop() { client_.stop(); }
  redis_client& client() noexcept { return client_; }
  bool degraded() const noexcept { return !client_.ready(); }

  std::string key(std::string_view kind, std::string_view tag, std::string_view suffix = {}) const {
    return key_of(client_.key_prefix(), kind, tag, suffix);
  }
  std::string channel(std::string_view kind, std::string_view tag) const { return key_of(client_.key_prefix(), kind, tag); }

  asio::awaitable<result<std::int64_t>> incr(std::string_view k, std::int64_t by, ttl_type ttl) {
    const std::string b = std::to_string(by), t = std::to_string(ttl.count());
    const std::string_view keys[] = {k}, args[] = {b, t};
    auto [ec, r] = co_await run_script(client_, detail::incr_script(), keys, args);
    co_return integer_of(ec, r);
  }

  asio::awaitable<result<void>> set_add(std::string_view k, std::string_view member, ttl_type ttl) {
    const std::string t = std::to_string(ttl.count());
    const std::string_view keys[] = {k}, args[] = {member, t};
    auto [ec, r] = co_await run_script(client_, detail::set_add_script(), keys, args);
    co_return done(ec);
  }
  asio::awaitable<result<void>> set_remove(std::string_view k, std::string_view member) {
    const std::string_view a1[] = {"ZREM", k, member};
    auto [ec, r] = co_await command(a1);
    co_return done(ec);
  }
  asio::awaitable<result<std::vector<std::string>>> set_members(std::string_view k) {
    const std::string_view keys[] = {k};
    auto [ec, r] = co_await run_script(client_, detail::set_members_script(), keys, {});
    co_return strings_of(ec, r);
  }

  asio::awaitable<result<void>> map_set(std::string_view k, std::string_view field, std::string_view value, ttl_type ttl) {
    const std::string_view a2[] = {"HSET", k, field, value};
    auto [ec, r] = co_await command(a2);
    if (!ec && ttl.count() > 0) {
      const std::string t = std::to_string(ttl.count());
      const std::string_view a3[] = {"PEXPIRE", k, t};
      std::tie(ec, r) = co_await command(a3);
    }
    co_return done(ec);
  }
  asio::awaitable<result<std::optional<std::string>>> map_get(std::string_view k, std::string_view field) {
    const std::string_view a4[] = {"HGET", k, field};
    auto [ec, r] = co_await command(a4);
    if (ec) co_return rproxy::failure(ec);
    if (r.is_nil()) co_return std::optional<std::string>{};
    if (r.type != reply::kind::string) co_return rproxy::failure(make_error_code(error::bad_reply));
    co_return std::optional<std::string>{std::move(r.str)};
  }
  asio::awaitable<result<void>> map_remove(std::string_view k, std::string_view field) {
    const std::string_view a5[] = {"HDEL", k, field};
    auto [ec, r] = co_await command(a5);
    co_return done(ec);
  }
  asio::awaitable<result<std::vector<std::pair<std::string, std::string>>>> map_all(std::string_view k) {
    const std::string_view a6[] = {"HGETALL", k};
    auto [ec, r] = co_await command(a6);
    if (ec) co_return rproxy::failure(ec);
    if (r.type != reply::kind::array || r.elements.size() % 2 != 0) co_return rproxy::failure(make_error_code(error::bad_reply));
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(r.elements.size() / 2);
    for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2)
      out.emplace_back(std::move(r.elements[i].str), std::move(r.elements[i + 1].str));
    co_return out;
  }

  asio::awaitable<result<std::int64_t>> publish(std::string_view channel, std::string_view payload) {
    const std::string_view a7[] = {"PUBLISH", channel, payload};
    auto [ec, r] = co_await command(a7);
    co_return integer_of(ec, r);
  }
  std::uint64_t subscribe(std::string channel, message_handler h) { return client_.subscribe(std::move(channel), std::move(h)); }
  void unsubscribe(std::uint64_t id) { client_.unsubscribe(id); }

  asio::awaitable<result<std::string>> stream_add(std::string_view k, std::string_view payload, std::size_t max_len) {
    const std::string n = std::to_string(max_len == 0 ? 1 : max_len);
    const std::string_view a8[] = {"XADD", k, "MAXLEN", "=", n, "*", "d", payload};
    auto [ec, r] = co_await command(a8);
    if (ec) co_return rproxy::failure(ec);
    if (r.type != reply::kind::string) co_return rproxy::failure(make_error_code(error::bad_reply));
    co_return std::move(r.str);
  }
  asio::awaitable<result<std::vector<stream_entry>>> stream_read(std::string_view k, std::string_view after_id, std::size_t count) {
    const std::string from = after_id.empty() ? std::string("-") : "(" + std::string(after_id);
    const std::string n = std::to_string(count == 0 ? 1 : count);
    const std::string_view a9[] = {"XRANGE", k, from, "+", "COUNT", n};
    auto [ec, r] = co_await command(a9);
    if (ec) co_return rproxy::failure(ec);
    if (r.type != reply::kind::array) co_return rproxy::failure(make_error_code(error::bad_reply));
    std::vector<stream_entry> out;
    out.reserve(r.elements.size());
    for (auto& e : r.elements) {
      // [id, [field, value, ...]]: the entries this layer writes have one field, "d"
      if (e.type != reply::kind::array || e.elements.size() != 2 || e.elements[1].type != reply::kind::array ||
          e.elements[1].elements.size() < 2)
        co_return rproxy::failure(make_error_code(error::bad_reply));
      out.push_back({std::move(e.elements[0].str), std::move(e.elements[1].elements[1].str)});
    }
    co_return out;
  }

private:
  asio::awaitable<std::tuple<std::error_code, reply>> command(std::span<const std::string_view> args) {
    co_return co_await client_.async_command(args, asio::experimental::as_tuple(asio::use_awaitable));
  }
  static result<void> done(std::error_code ec) {
    if (ec) return rproxy::failure(ec);
    return {};
  }
  static result<std::int64_t> integer_of(std::error_code ec, const reply& r) {
    if (ec) return rproxy::failure(ec);
    if (auto v = r.as_integer()) return *v;
    return rproxy::failure(make_error_code(error::bad_reply));
  }
  static result<std::vector<std::string>> strings_of(std::error_code ec, reply& r) {
    if (ec) return rproxy::failure(ec);
    if (r.type != reply::kind::array) return rproxy::failure(make_error_code(error::bad_reply));
    std::vector<std::string> out;
    out.reserve(r.elements.size());
    for (auto& e : r.elements) out.push_back(std::move(e.str));
    return out;
  }

  redis_client client_;
};

static_assert(shared_state<redis_state>);

}  // namespace rproxy::cluster
