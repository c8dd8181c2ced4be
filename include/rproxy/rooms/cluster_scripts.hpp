// rproxy/rooms/cluster_scripts.hpp: the Lua scripts rooms/cluster.hpp runs in Redis, one per
// operation that must be atomic across instances (claim a room's name, join with the ban and
// max_members checks, number and publish a message, refresh a room's keys). Each comment gives
// the script's KEYS and ARGV and what it returns; rooms/cluster.hpp says which keys they are.
#pragma once

#include <vector>

#include <rproxy/cluster/lua_script.hpp>

namespace rproxy::rooms {

namespace cluster_scripts {

// KEYS: meta roles bans mutes seq hist presence. ARGV: owner private max_members password ttl_ms
// presence_member presence_expiry. Returns 1 (claimed) or 0 (the room exists).
inline const cluster::lua_script& create() {
  static const cluster::lua_script s{R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'private', ARGV[2], 'max_members', ARGV[3], 'password', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], 4)
redis.call('ZADD', KEYS[7], ARGV[7], ARGV[6])
for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return 1
)lua"};
  return s;
}

// KEYS: as create. ARGV: user now_ms presence_member presence_expiry history_count ttl_ms.
// Returns {0} no room, {2, until} banned, {3} full, or {1, meta, roles, bans, mutes, seq, hist}.
inline const cluster::lua_script& join() {
  static const cluster::lua_script s{R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local b = redis.call('HGET', KEYS[3], ARGV[1])
if b and tonumber(b) > tonumber(ARGV[2]) then return {2, b} end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ARGV[2])
local maxm = tonumber(redis.call('HGET', KEYS[1], 'max_members') or '0')
if not redis.call('ZSCORE', KEYS[7], ARGV[3]) and redis.call('ZCARD', KEYS[7]) >= maxm then return {3} end
redis.call('ZADD', KEYS[7], ARGV[4], ARGV[3])
for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
local hist = {}
if tonumber(ARGV[5]) > 0 then hist = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', ARGV[5]) end
return {1, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
        redis.call('HGETALL', KEYS[4]), redis.call('GET', KEYS[5]) or '0', hist}
)lua"};
  return s;
}

// KEYS: seq hist. ARGV: local_last history frame_head frame_tail wire_head wire_middle channel ttl_ms.
// Returns the message's id.
inline const cluster::lua_script& message() {
  static const cluster::lua_script s{R"lua(
local id = tonumber(redis.call('GET', KEYS[1]) or '0')
local l = tonumber(ARGV[1])
if l > id then id = l end
id = id + 1
local s = string.format('%d', id)
redis.call('SET', KEYS[1], s, 'PX', ARGV[8])
local frame = ARGV[3] .. s .. ARGV[4]
if tonumber(ARGV[2]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'i', s, 'f', frame)
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
redis.call('PUBLISH', ARGV[7], ARGV[5] .. s .. ARGV[6] .. frame)
return id
)lua"};
  return s;
}

// KEYS: as create. ARGV: owner private max_members password ttl_ms, then presence member/expiry pairs.
// Re-creates the room's settings if Redis lost them, refreshes presence and expiries.
inline const cluster::lua_script& heartbeat() {
  static const cluster::lua_script s{R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'private', ARGV[2], 'max_members', ARGV[3], 'password', ARGV[4])
end
for i = 6, #ARGV, 2 do redis.call('ZADD', KEYS[7], ARGV[i + 1], ARGV[i]) end
for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return 1
)lua"};
  return s;
}

/// Every script above (loaded into Redis each time a link connects).
inline std::vector<const cluster::lua_script*> all() { return {&create(), &join(), &message(), &heartbeat()}; }

}  // namespace cluster_scripts

}  // namespace rproxy::rooms
