// rproxy/cluster/redis_conn_slots.hpp: the conn_limit stage's per-address connection caps held
// by every instance together (an async_conn_slots store, middleware/conn_limit.hpp). One per
// worker, on that worker's redis_client; the process-wide conn_counter still counts every
// connection of this instance (max_total, and the fallback).
//
// In Redis, an address group is a sorted set `<prefix>conn{<group>}` whose members are this
// instance's connections, "<instance id>-<worker>:<seq>", each scored with the Redis time (ms)
// at which it lapses. Acquire is one script: drop the lapsed members, compare the count with
// the cap, add the new member (score now + shared_ttl). Release is a ZREM, sent without
// waiting. Every shared_ttl / 3, and each time the client comes up, the worker refreshes the
// scores of its live members (one script per address group, pipelined), so a crashed
// instance's connections stop counting within shared_ttl, and a Redis that restarted empty
// learns the live connections again at once.
//
//     rproxy::middleware::conn_counter local;                         // process-wide
//     rproxy::cluster::redis_conn_slots slots(&client, local, "a1b2c3d4-0");
//     slots.start();                                                  // on the client's executor
//     rproxy::middleware::shared_conn_limit stage{&cfg, &slots, &audit}; // the conn_limit stage over it
//
// The stage sees it through middleware::shared_conn_slots (one virtual call per connection),
// so the unit that compiles an app's flows does not include this file nor Redis' client.
//
// Redis unreachable (not ready, or the script failed or timed out): cfg.on_failure decides:
// local (the cap over this instance's connections), open (no per-address cap) or closed
// (refused). A connection admitted meanwhile still gets its member, kept here like any other:
// the refresh sent when the client comes up again (and every tick after) writes it, without a
// cap (it was admitted), so the other instances count it from then on and the shared count
// converges. A script that timed out after Redis ran it added that same member: no double count.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/lua_script.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/ip.hpp>

namespace rproxy::cluster {

namespace detail {

// KEYS[1] the group's sorted set. ARGV: member, cap, ttl ms. Returns 1 (added) or 0 (full).
inline const lua_script& conn_acquire_script() {
  static const lua_script s{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
)lua"};
  return s;
}

// KEYS[1] the group's sorted set. ARGV: ttl ms, then the live members to keep (no cap: they
// were admitted). Returns how many the set holds.
inline const lua_script& conn_refresh_script() {
  static const lua_script s{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
)lua"};
  return s;
}

}  // namespace detail

class redis_conn_slots final : public middleware::shared_conn_slots {
public:
  struct counters {
    std::uint64_t shared = 0;    ///< decisions made by the script
    std::uint64_t fallback = 0;  ///< decisions made by on_failure (Redis unreachable)
    std::uint64_t refreshes = 0; ///< refresh scripts sent
  };

  /// `client` may be null (no `redis:` block): every decision is then the local counter's.
  /// `owner` names this worker of this instance in the members ("<instance id>-<worker>").
  redis_conn_slots(redis_client* client, middleware::conn_counter& local, std::string owner)
      : client_(client), local_(&local), owner_(std::move(owner)), alive_(std::make_shared<bool>(true)) {}
  redis_conn_slots(const redis_conn_slots&) = delete;
  redis_conn_slots& operator=(const redis_conn_slots&) = delete;
  ~redis_conn_slots() { *alive_ = false; }

  /// Starts the refresh timer, and a refresh each time the client comes up (on the client's
  /// executor; a no-op without a client).
  void start() {
    if (client_ == nullptr || timer_) return;
    timer_ = std::make_unique<asio::steady_timer>(client_->get_executor());
    client_->on_state([this, alive = alive_](bool up) {
      if (up && *alive) refresh();  // the members of connections admitted while it was away, at once
    });
    arm();
  }
  void stop() {
    if (timer_) timer_->cancel();
  }

  const counters& stats() const noexcept { return stats_; }
  middleware::conn_counter& local() noexcept { return *local_; }
  /// Connections of this worker with a member (in Redis, or written there once it is back).
  std::size_t live() const noexcept { return live_.size(); }

  /// (`k` by value: a coroutine keeps its parameters, and a caller may pass a temporary.)
  asio::awaitable<middleware::conn_grant> async_acquire(middleware::ip_key k, std::string_view text,
                                                       const middleware::conn_limit_config& cfg) override {
    using outcome = middleware::conn_counter::outcome;
    if (client_ == nullptr || cfg.max_per_ip == 0) co_return middleware::conn_grant{local_->try_acquire(k, cfg.max_per_ip, cfg.max_total), 0};
    // This process' count first: max_total is the instance's own, and the fallback needs it.
    if (auto r = local_->try_acquire(k, 0, cfg.max_total); r != outcome::ok) co_return middleware::conn_grant{r, 0};
    pace(cfg);
    const std::uint64_t seq = ++seq_;
    slot sl{key_of(client_->key_prefix(), "conn", text), owner_ + ":" + std::to_string(seq)};
    if (!client_->ready()) co_return fallback(k, cfg, seq, std::move(sl));
    const std::string cap = std::to_string(cfg.max_per_ip), ttl = std::to_string(ttl_ms(cfg));
    const std::string_view keys[] = {sl.key};
    const std::string_view args[] = {sl.member, cap, ttl};
    auto alive = alive_;
    auto [ec, rep] = co_await run_script(*client_, detail::conn_acquire_script(), keys, args);
    if (!*alive) co_return middleware::conn_grant{outcome::per_ip_full, 0};
    auto v = rep.as_integer();
    if (ec || !v) co_return fallback(k, cfg, seq, std::move(sl));
    ++stats_.shared;
    if (*v == 0) {
      local_->release(k);
      co_return middleware::conn_grant{outcome::per_ip_full, 0};
    }
    live_.emplace(seq, std::move(sl));
    co_return middleware::conn_grant{outcome::ok, seq};
  }

  /// Gives a slot back: this process' count now, the member in Redis without waiting (while
  /// Redis is away, the member lapses: it is no longer refreshed).
  void release(const middleware::ip_key& k, std::uint64_t slot_id) override {
    local_->release(k);
    if (slot_id == 0) return;
    auto it = live_.find(slot_id);
    if (it == live_.end()) return;
    if (client_->ready()) {
      const std::string_view argv[] = {"ZREM", it->second.key, it->second.member};
      client_->async_command(argv, [](std::error_code, reply) {});
    }
    live_.erase(it);
  }

private:
  struct slot {
    std::string key;
    std::string member;
  };

  static std::int64_t ttl_ms(const middleware::conn_limit_config& cfg) {
    return std::max<std::int64_t>(cfg.shared_ttl.count(), 300);
  }

  // The refresh runs every third of the last acquire's shared_ttl.
  void pace(const middleware::conn_limit_config& cfg) {
    const std::chrono::milliseconds t(ttl_ms(cfg));
    if (t == ttl_) return;
    ttl_ = t;
    if (timer_) timer_->cancel();  // its handler sees the cancel and stops; refresh at the new pace
    if (timer_) arm();
  }

  // Redis cannot decide: on_failure does, over this process' count (taken without a per-address
  // cap). An admitted connection keeps its member `sl`, written by the refreshes once Redis is back.
  middleware::conn_grant fallback(const middleware::ip_key& k, const middleware::conn_limit_config& cfg, std::uint64_t seq, slot sl) {
    using outcome = middleware::conn_counter::outcome;
    ++stats_.fallback;
    const bool refuse = cfg.on_failure == middleware::rate_failure::closed ||
                        (cfg.on_failure == middleware::rate_failure::local && local_->count(k) > cfg.max_per_ip);
    if (refuse) {
      local_->release(k);
      return {outcome::per_ip_full, 0};
    }
    live_.emplace(seq, std::move(sl));
    return {outcome::ok, seq};
  }

  void arm() {
    timer_->expires_after(std::max(ttl_ / 3, std::chrono::milliseconds(100)));
    timer_->async_wait([this, alive = alive_](std::error_code ec) {
      if (ec || !*alive) return;
      refresh();
      arm();
    });
  }

  // One script per address group with this worker's live members there (pipelined: one write).
  void refresh() {
    if (live_.empty() || !client_->ready()) return;
    std::map<std::string_view, std::vector<std::string_view>> groups;
    for (const auto& [id, s] : live_) groups[s.key].push_back(s.member);
    const std::string ttl = std::to_string(ttl_.count());
    for (const auto& [key, members] : groups) {
      std::vector<std::string> argv{"EVALSHA", detail::conn_refresh_script().sha, "1", std::string(key), ttl};
      argv.insert(argv.end(), members.begin(), members.end());
      send_refresh(std::move(argv));
      ++stats_.refreshes;
    }
  }

  void send_refresh(std::vector<std::string> argv) {
    std::vector<std::string_view> view(argv.begin(), argv.end());
    client_->async_command(view, [this, alive = alive_, argv = std::move(argv)](std::error_code ec, reply r) mutable {
      if (!*alive || ec != error::server_error || !r.str.starts_with("NOSCRIPT")) return;
      argv[0] = "EVAL";  // not cached (a restarted Redis): the body caches it
      argv[1] = std::string(detail::conn_refresh_script().body);
      std::vector<std::string_view> again(argv.begin(), argv.end());
      client_->async_command(again, [](std::error_code, reply) {});
    });
  }

  redis_client* client_;
  middleware::conn_counter* local_;
  std::string owner_;
  std::shared_ptr<bool> alive_;
  std::unique_ptr<asio::steady_timer> timer_;
  std::chrono::milliseconds ttl_{30'000};  ///< the shared_ttl of the last acquire (the refresh period is a third)
  std::uint64_t seq_ = 0;
  std::unordered_map<std::uint64_t, slot> live_;
  counters stats_;
};

static_assert(middleware::async_conn_slots<redis_conn_slots>);

}  // namespace rproxy::cluster
