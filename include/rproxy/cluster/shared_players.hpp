// rproxy/cluster/shared_players.hpp: how many clients each instance has on a backend group that
// is woken on demand (app/wake.hpp), so that an instance whose own clients left does not stop
// the group while clients play through another instance.
//
// In Redis, a group is a hash `<prefix>players{<group>}`: field = instance id, value = "<count>
// <lapse time>" (Redis time, ms). Every second, worker 0 of each instance runs one script per
// group it was told about: it writes its own count (or removes its field at 0), drops the fields
// of instances that stopped refreshing (a crashed one counts for `ttl` at most), and answers the
// sum of the others' counts.
//
//     rproxy::cluster::shared_players players(&client, instance_id, &log);   // instance.hpp has one
//     players.start();                                                  // on the client's executor
//     players.share("survival", wake_state);     // from the app's 1 s tick, before stop_if_idle
//
// share() tells this instance's count (power_state::clients()) and, while another instance has
// clients there, marks the group busy (power_state::busy_elsewhere): its idle time counts from
// the moment the last client anywhere left. While Redis cannot be reached (or before the first
// answer) the other instances' counts are unknown and the group counts as busy: an instance does
// not stop a server that may have players through another; it stops once Redis answers again
// and nobody plays. Without a client (no `redis:` block) share() does nothing. The log says when
// other instances' clients start and stop keeping a group awake (once each way).
//
// Thread-safe: share() is called from any thread; the exchange runs on the client's executor.
#pragma once

#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/lua_script.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/health/power_state.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::cluster {

namespace detail {

// KEYS[1] the group's hash. ARGV: instance id, its count, ttl ms. Returns the others' sum.
inline const lua_script& players_script() {
  static const lua_script s{R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if n > 0 then redis.call('HSET', KEYS[1], ARGV[1], n .. ' ' .. (now + ttl)) else redis.call('HDEL', KEYS[1], ARGV[1]) end
local all = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #all, 2 do
  local c, lapse = string.match(all[i + 1], '^(%d+) (%d+)$')
  if c == nil or tonumber(lapse) <= now then redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= ARGV[1] then others = others + tonumber(c) end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
return others
)lua"};
  return s;
}

}  // namespace detail

class shared_players {
public:
  using clock = std::chrono::steady_clock;

  /// `client` may be null (no `redis:` block): nothing is shared.
  shared_players(redis_client* client, std::string instance_id, const observe::logger* log = nullptr,
                 std::chrono::milliseconds ttl = std::chrono::seconds(3), std::chrono::milliseconds period = std::chrono::seconds(1))
      : client_(client), id_(std::move(instance_id)), log_(log), ttl_(ttl), period_(period), alive_(std::make_shared<bool>(true)) {}
  shared_players(const shared_players&) = delete;
  shared_players& operator=(const shared_players&) = delete;
  ~shared_players() { *alive_ = false; }

  /// Starts the exchange (on the client's executor; a no-op without a client).
  void start() {
    if (client_ == nullptr || timer_) return;
    timer_ = std::make_unique<asio::steady_timer>(client_->get_executor());
    arm();
  }

  /// This instance has `s.clients()` clients on group `name`; while others have some (or may:
  /// Redis unknown), `s` is kept busy. True when it is.
  bool share(std::string_view name, health::power_state& s) {
    if (client_ == nullptr) return false;
    const auto now = clock::now();
    bool busy = true;
    std::optional<std::int64_t> others;
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      auto it = groups_.find(name);
      if (it == groups_.end()) it = groups_.emplace(std::string(name), group{}).first;
      group& g = it->second;
      g.mine = s.clients();
      g.told = now;
      others = g.others;
      busy = !others || *others > 0;
      if (others && (*others > 0) != g.said) {
        changed = true;
        g.said = *others > 0;
      }
    }
    if (busy) s.busy_elsewhere(now);
    if (changed && log_ != nullptr) {
      if (*others > 0) log_->info("wake: clients on other instances keep the backends awake", {{"backends", name}, {"clients", std::to_string(*others)}});
      else log_->info("wake: no clients on other instances any more", {{"backends", name}});
    }
    return busy;
  }

  /// The other instances' clients on `name` as of the last answer (nullopt: not known).
  std::optional<std::int64_t> elsewhere(std::string_view name) const {
    std::lock_guard lock(mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return std::nullopt;
    return it->second.others;
  }

private:
  struct group {
    int mine = 0;
    std::optional<std::int64_t> others;  ///< nullopt: unknown (no answer yet, or Redis away)
    clock::time_point told{};
    bool said = false;                   ///< the log says others keep it awake
  };

  void arm() {
    timer_->expires_after(period_);
    timer_->async_wait([this, alive = alive_](std::error_code ec) {
      if (ec || !*alive) return;
      exchange();
      arm();
    });
  }

  // One script per group told about lately (pipelined); a group no longer told about (gone
  // from the config) is forgotten, and its field lapses in Redis.
  void exchange() {
    std::vector<std::pair<std::string, int>> todo;
    {
      std::lock_guard lock(mu_);
      const auto now = clock::now();
      for (auto it = groups_.begin(); it != groups_.end();) {
        if (now - it->second.told > 3 * period_ + ttl_) {
          it = groups_.erase(it);
          continue;
        }
        if (!client_->ready()) it->second.others.reset();
        else todo.emplace_back(it->first, it->second.mine);
        ++it;
      }
    }
    for (auto& [name, mine] : todo) {
      auto args = std::make_shared<std::vector<std::string>>(
          std::vector<std::string>{key_of(client_->key_prefix(), "players", name), id_, std::to_string(mine), std::to_string(ttl_.count())});
      auto keys = std::make_shared<std::vector<std::string_view>>(1, (*args)[0]);
      auto argv = std::make_shared<std::vector<std::string_view>>(args->begin() + 1, args->end());
      async_eval(*client_, detail::players_script(), *keys, *argv,
                 [this, alive = alive_, name = name, args, keys, argv](std::error_code ec, reply r) {
                   if (!*alive) return;
                   auto v = r.as_integer();
                   std::lock_guard lock(mu_);
                   auto it = groups_.find(name);
                   if (it == groups_.end()) return;
                   if (ec || !v) it->second.others.reset();
                   else it->second.others = *v;
                 });
    }
  }

  redis_client* client_;
  std::string id_;
  const observe::logger* log_;
  std::chrono::milliseconds ttl_, period_;
  std::shared_ptr<bool> alive_;
  std::unique_ptr<asio::steady_timer> timer_;
  mutable std::mutex mu_;
  std::map<std::string, group, std::less<>> groups_;
};

}  // namespace rproxy::cluster
