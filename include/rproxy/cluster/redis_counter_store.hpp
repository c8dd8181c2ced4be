// rproxy/cluster/redis_counter_store.hpp: the rate_limit stage's counters shared by instances
// through Redis (an async_counter_store, middleware/rate_limit_store.hpp). One per worker, on
// that worker's redis_client; each decision goes where its policy's `sharing` says:
//
//   local    the process-wide local_counter_store (as without Redis)
//   exact    one Lua script per decision, atomic in Redis, on Redis' clock (TIME): the same
//            token bucket / sliding window / penalty steps as the local store, in microseconds
//            (Lua numbers are doubles: exact below 2^53 us). N instances together admit no more
//            than one process would.
//   batched  counts in this worker, flushed to Redis every sync_interval (INCRBY on a counter per
//            fixed window of the rule's length, aligned on Redis' clock), which answers with the
//            total of every instance. A request is admitted while known total + unsent < limit.
//            So no round trip per request, and over one window the instances together admit at
//            most the limit plus what they admitted in one sync interval before learning the
//            total (per instance at most the limit). Penalties are not applied in this mode.
//
// Redis unreachable (client not ready, or a command failed or timed out): the policy's
// on_failure decides: local (count here), open (admit) or closed (refuse, Retry-After: 1 s).
// The request never waits for a reconnect: a down client fails at once, a paused Redis within
// the client's command_timeout.
//
//     rproxy::middleware::local_counter_store local;                 // process-wide fallback
//     rproxy::cluster::redis_counter_store store(&client, local, {.sync_interval = 100ms});
//     store.start();                                                 // on the client's executor
//     mw::basic_rate_limit<rproxy::middleware::shared_counter_store> stage{&cfg, &store, &audit};
//
// An app's stage sees it through middleware::shared_counter_store (one virtual call per
// decision), so the unit that compiles its flows does not include this file nor Redis' client.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/lua_script.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/middleware/rate_limit_store.hpp>

namespace rproxy::cluster {

namespace detail {

// KEYS[1] the limiter's hash. ARGV: algorithm (0 token bucket, 1 sliding window), limit,
// window_us, burst, slots, penalty after, block_us, max_block_us, forgive_us.
// Returns {allowed, blocked, remaining, reset_us, retry_us}. Mirrors middleware::apply().
inline const lua_script& exact_limit_script() {
  static const lua_script s{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local algo, limit, W = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local burst, slots = tonumber(ARGV[4]), tonumber(ARGV[5])
local p_after, p_block, p_max, p_forgive = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local rule = ARGV[1] .. ':' .. ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[5]
local k = KEYS[1]
local h = redis.call('HGETALL', k)
local s = {}
for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
local viol, lastv, blocked_until = tonumber(s.v or '0'), tonumber(s.lv or '0'), tonumber(s.b or '0')
if s.r ~= rule then
  redis.call('DEL', k)
  s = {}
end
if blocked_until > now then
  return {0, 1, 0, blocked_until - now, blocked_until - now}
end
local allowed, blocked, remaining, reset, retry = 0, 0, 0, 0, 0
local out = {'r', rule}
if algo == 0 then
  if limit == 0 or burst == 0 then
    retry = W
  else
    local cap = burst * W
    local last, debt = tonumber(s.l or now), tonumber(s.d or '0')
    if now > last then
      local paid = (now - last) * limit
      if paid >= debt then debt = 0 else debt = debt - paid end
      last = now
    end
    if debt + W <= cap then
      debt = debt + W
      allowed = 1
      remaining = math.floor((cap - debt) / W)
    else
      retry = math.ceil((debt + W - cap) / limit)
    end
    reset = math.ceil(debt / limit)
    table.insert(out, 'l'); table.insert(out, last)
    table.insert(out, 'd'); table.insert(out, debt)
  end
else
  if limit == 0 then
    retry = W
  else
    local slot = math.floor((W + slots - 1) / slots)
    local ring = slots + 1
    local hi = math.floor(now / slot)
    local newest = tonumber(s.n or hi)
    local c = {}
    for i = 0, ring - 1 do c[i] = tonumber(s['c' .. i] or '0') end
    if hi > newest then
      if hi - newest >= ring then
        for i = 0, ring - 1 do c[i] = 0 end
      else
        for i = newest + 1, hi do c[i % ring] = 0 end
      end
      newest = hi
    end
    local cur = math.max(hi, newest)
    local lo = math.max(math.floor((now - W + 1) / slot), cur - ring + 1)
    local total = 0
    for i = lo, cur do total = total + c[i % ring] end
    if total < limit then
      c[cur % ring] = c[cur % ring] + 1
      allowed = 1
      remaining = limit - total - 1
      reset = math.max(0, (cur + 1) * slot + W - 1 - now)
    else
      local left, newest_nonzero = total, lo
      for i = lo, cur do if c[i % ring] ~= 0 then newest_nonzero = i end end
      for i = lo, cur do
        left = left - c[i % ring]
        if left < limit then
          retry = math.max(1, (i + 1) * slot + W - 1 - now)
          break
        end
      end
      reset = math.max(0, (newest_nonzero + 1) * slot + W - 1 - now)
    end
    table.insert(out, 'n'); table.insert(out, newest)
    for i = 0, ring - 1 do table.insert(out, 'c' .. i); table.insert(out, c[i]) end
  end
end
if allowed == 0 and p_after > 0 then
  if viol > 0 and now - lastv > p_forgive then viol = 0 end
  viol = viol + 1
  lastv = now
  if viol >= p_after then
    local level = math.min(viol - p_after, 40)
    local block = p_block
    for i = 1, level do
      if block >= p_max then break end
      block = block * 2
    end
    block = math.min(block, p_max)
    blocked_until = now + block
    blocked = 1
    retry = math.max(retry, block)
    reset = math.max(reset, retry)
  end
end
table.insert(out, 'v'); table.insert(out, viol)
table.insert(out, 'lv'); table.insert(out, lastv)
table.insert(out, 'b'); table.insert(out, blocked_until)
redis.call('HSET', k, unpack(out))
local keep = W
if p_after > 0 then keep = math.max(keep, p_forgive) end
if blocked_until > now then keep = math.max(keep, blocked_until - now) end
redis.call('PEXPIRE', k, math.floor(keep / 1000) + 1000)
return {allowed, blocked, remaining, reset, retry}
)lua"};
  return s;
}

// KEYS[1] one window's counter. ARGV: count to add, ttl ms. Returns {total, redis time us}.
inline const lua_script& batch_sync_script() {
  static const lua_script s{R"lua(
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local t = redis.call('TIME')
return {v, tonumber(t[1]) * 1000000 + tonumber(t[2])}
)lua"};
  return s;
}

}  // namespace detail

struct redis_counter_store_config {
  std::chrono::milliseconds sync_interval{100};  ///< batched mode: flush and learn the totals this often
  std::size_t max_batched_keys = 100'000;        ///< batched keys held per worker (past it: on_failure)
};

class redis_counter_store final : public middleware::shared_counter_store {
public:
  using config = redis_counter_store_config;
  using clock = middleware::rate_clock;

  struct counters {
    std::uint64_t exact = 0;      ///< decisions made by the script
    std::uint64_t batched = 0;    ///< decisions made on batched counts
    std::uint64_t fallback = 0;   ///< decisions made by on_failure (Redis unreachable)
    std::uint64_t syncs = 0;      ///< batched counters sent
  };

  /// `client` may be null (no `redis:` block): every decision is then local.
  redis_counter_store(redis_client* client, middleware::local_counter_store& local, config cfg = {})
      : client_(client), local_(&local), cfg_(cfg), alive_(std::make_shared<bool>(true)) {}
  redis_counter_store(const redis_counter_store&) = delete;
  redis_counter_store& operator=(const redis_counter_store&) = delete;
  ~redis_counter_store() { *alive_ = false; }

  /// Starts the batched sync timer (on the client's executor; a no-op without a client).
  void start() {
    if (client_ == nullptr || timer_) return;
    timer_ = std::make_unique<asio::steady_timer>(client_->get_executor());
    arm();
  }
  void stop() {
    if (timer_) timer_->cancel();
  }

  const counters& stats() const noexcept { return stats_; }
  bool degraded() const noexcept { return client_ != nullptr && !client_->ready(); }

  asio::awaitable<middleware::rate_decision> async_acquire(std::string_view key, const middleware::rate_policy& p,
                                                           clock::time_point now) override {
    using middleware::rate_mode;
    if (client_ == nullptr || p.sharing.mode == rate_mode::local) co_return local_->acquire(key, p, now);
    if (p.sharing.mode == rate_mode::batched) co_return batched(key, p, now);
    if (!client_->ready()) co_return fallback(key, p, now);
    const std::string k = key_of(client_->key_prefix(), "rl", key);
    const middleware::rate_rule r = middleware::detail::normalized(p.rule);
    auto us = [](std::chrono::nanoseconds d) { return std::to_string(std::max<std::int64_t>(1, d.count() / 1000)); };
    const std::string a0 = r.algorithm == middleware::rate_algorithm::token_bucket ? "0" : "1", a1 = std::to_string(r.limit),
                      a2 = us(r.window), a3 = std::to_string(r.burst), a4 = std::to_string(r.slots), a5 = std::to_string(p.penalty.after),
                      a6 = us(p.penalty.block), a7 = us(p.penalty.max_block), a8 = us(p.penalty.forgive_after);
    const std::string_view keys[] = {k};
    const std::string_view args[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8};
    auto alive = alive_;
    auto [ec, rep] = co_await run_script(*client_, detail::exact_limit_script(), keys, args);
    if (!*alive) co_return middleware::rate_decision{};
    if (ec || rep.type != reply::kind::array || rep.elements.size() != 5) co_return fallback(key, p, now);
    std::int64_t v[5];
    for (std::size_t i = 0; i < 5; ++i) {
      auto x = rep.elements[i].as_integer();
      if (!x) co_return fallback(key, p, now);
      v[i] = *x;
    }
    ++stats_.exact;
    middleware::rate_decision d;
    d.allowed = v[0] != 0;
    d.blocked = v[1] != 0;
    d.limit = r.limit;
    d.remaining = static_cast<std::uint32_t>(std::clamp<std::int64_t>(v[2], 0, r.limit));
    d.reset = std::chrono::microseconds(std::max<std::int64_t>(0, v[3]));
    d.retry_after = std::chrono::microseconds(std::max<std::int64_t>(0, v[4]));
    co_return d;
  }

  /// Batched counters held now (for tests and metrics).
  std::size_t batched_keys() const noexcept { return batch_.size(); }

private:
  struct batch_entry {
    std::int64_t window = -1;  ///< window index (Redis time / window)
    std::int64_t window_us = 0;
    std::int64_t known = 0;    ///< total of every instance, as of the last sync (ours included)
    std::int64_t pending = 0;  ///< admitted here, not sent yet
    std::int64_t sending = 0;  ///< sent, no answer yet
    clock::time_point used{};
  };

  middleware::rate_decision fallback(std::string_view key, const middleware::rate_policy& p, clock::time_point now) {
    ++stats_.fallback;
    switch (p.sharing.on_failure) {
      case middleware::rate_failure::local: return local_->acquire(key, p, now);
      case middleware::rate_failure::open: {
        middleware::rate_decision d;
        d.allowed = true;
        d.limit = p.rule.limit;
        d.remaining = p.rule.limit;
        return d;
      }
      case middleware::rate_failure::closed: break;
    }
    middleware::rate_decision d;
    d.allowed = false;
    d.limit = p.rule.limit;
    d.retry_after = std::chrono::seconds(1);
    d.reset = d.retry_after;
    return d;
  }

  std::int64_t redis_now_us() const {
    const auto sys = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return sys + offset_us_;
  }

  middleware::rate_decision batched(std::string_view key, const middleware::rate_policy& p, clock::time_point now) {
    // While Redis is away the counts would only be this instance's: on_failure says what to do.
    if (!client_->ready() && p.sharing.on_failure != middleware::rate_failure::local) return fallback(key, p, now);
    auto it = batch_.find(key);  // (transparent: no string made for a known key)
    if (it == batch_.end()) {
      if (batch_.size() >= cfg_.max_batched_keys) return fallback(key, p, now);
      it = batch_.emplace(std::string(key), batch_entry{}).first;
    }
    batch_entry& e = it->second;
    const std::int64_t W = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(p.rule.window).count());
    const std::int64_t t = redis_now_us();
    const std::int64_t w = t / W;
    if (e.window != w || e.window_us != W) {  // a new window (or rule): counts start over
      e.window = w;
      e.window_us = W;
      e.known = e.pending = e.sending = 0;
    }
    e.used = now;
    ++stats_.batched;
    middleware::rate_decision d;
    d.limit = p.rule.limit;
    const std::int64_t used = e.known + e.pending + e.sending;
    const auto left = std::chrono::microseconds((w + 1) * W - t);
    if (used < static_cast<std::int64_t>(p.rule.limit)) {
      ++e.pending;
      d.allowed = true;
      d.remaining = static_cast<std::uint32_t>(p.rule.limit - used - 1);
      d.reset = left;
    } else {
      d.allowed = false;
      d.retry_after = left;
      d.reset = left;
    }
    return d;
  }

  void arm() {
    timer_->expires_after(cfg_.sync_interval);
    timer_->async_wait([this, alive = alive_](std::error_code ec) {
      if (ec || !*alive) return;
      sync();
      arm();
    });
  }

  // Sends every batched counter in use (pipelined: one write for all), learns the totals.
  void sync() {
    const auto now = clock::now();
    for (auto it = batch_.begin(); it != batch_.end();) {
      batch_entry& e = it->second;
      const auto idle = now - e.used;
      if (e.pending == 0 && e.sending == 0 && idle > std::chrono::microseconds(2 * e.window_us) + 2 * cfg_.sync_interval) {
        it = batch_.erase(it);
        continue;
      }
      if (client_->ready() && e.sending == 0 && idle < std::chrono::microseconds(e.window_us) + cfg_.sync_interval) send(it->first, e);
      ++it;
    }
  }

  void send(const std::string& key, batch_entry& e) {
    const std::int64_t n = e.pending;
    e.sending = n;
    e.pending = 0;
    ++stats_.syncs;
    auto k = std::make_shared<std::string>(key_of(client_->key_prefix(), "rlb", key, std::to_string(e.window)));
    const std::string count = std::to_string(n), ttl = std::to_string(2 * e.window_us / 1000 + 1000);
    const std::string_view args[] = {"EVALSHA", detail::batch_sync_script().sha, "1", *k, count, ttl};
    client_->async_command(args, [this, alive = alive_, key, window = e.window, n, k, count, ttl](std::error_code ec, reply r) {
      if (!*alive) return;
      if (ec == error::server_error && r.str.starts_with("NOSCRIPT")) {  // cache it, and count again
        const std::string_view again[] = {"EVAL", detail::batch_sync_script().body, "1", *k, count, ttl};
        client_->async_command(again, [this, alive, key, window, n](std::error_code ec2, reply r2) {
          if (*alive) settle(key, window, n, ec2, r2);
        });
        return;
      }
      settle(key, window, n, ec, r);
    });
  }

  void settle(const std::string& key, std::int64_t window, std::int64_t n, std::error_code ec, const reply& r) {
    auto it = batch_.find(key);
    if (it == batch_.end()) return;
    batch_entry& e = it->second;
    if (e.window != window) return;  // the window moved on: its counts are gone with it
    e.sending = 0;
    if (ec || r.type != reply::kind::array || r.elements.size() != 2) {
      e.pending += n;  // not counted in Redis: send again next time
      return;
    }
    auto total = r.elements[0].as_integer();
    auto t = r.elements[1].as_integer();
    if (!total || !t) {
      e.pending += n;
      return;
    }
    e.known = *total;
    const auto sys = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    offset_us_ = *t - sys;
  }

  redis_client* client_;
  middleware::local_counter_store* local_;
  config cfg_;
  std::shared_ptr<bool> alive_;
  std::unique_ptr<asio::steady_timer> timer_;
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, batch_entry, text_hash, std::equal_to<>> batch_;
  std::int64_t offset_us_ = 0;  ///< Redis' clock minus ours, from the last sync
  counters stats_;
};

static_assert(middleware::async_counter_store<redis_counter_store>);

}  // namespace rproxy::cluster
