// rproxy/rooms/room.hpp: one room of the registry (rooms/registry.hpp): its settings, fixed at
// create, and what its lock guards: members in join order and the snapshot a delivery shares,
// roles, bans and mutes, and the history of message frames, oldest first. Lock rules are the
// registry's (its header says them); nothing here takes a lock.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/rooms/outcome.hpp>
#include <rproxy/rooms/password.hpp>
#include <rproxy/rooms/roles.hpp>

namespace rproxy::rooms::detail {

struct member {
  session_id session = 0;
  std::string user;
  site_role site = site_role::member;
  std::uint64_t seq = 0;  ///< join order
};

struct stored_message {
  std::uint64_t id = 0;
  payload frame;
};

struct room {
  room(std::string n, bool priv, std::uint32_t maxm, std::optional<password_hash> pw)
      : name(std::move(n)), is_private(priv), max_members(maxm), password(std::move(pw)) {}

  // Immutable after construction: read without the lock.
  const std::string name;
  const bool is_private;
  const std::uint32_t max_members;
  const std::optional<password_hash> password;
  std::atomic<std::uint32_t> member_count{0};  ///< for list, written under m

  std::mutex m;
  // Guarded by m:
  bool closed = false;
  std::string owner;
  std::vector<member> members;  ///< in join order
  recipient_list snapshot = std::make_shared<const std::vector<session_id>>();
  std::map<std::string, role, std::less<>> roles;  ///< users whose role is not member (owner too)
  std::map<std::string, time_point, std::less<>> bans, mutes;
  std::deque<stored_message> history;
  std::uint64_t last_id = 0;
  std::uint64_t synced_id = 0;  ///< the newest message id from Redis (cluster: rooms/cluster.hpp)
  std::uint64_t join_seq = 0;
  std::optional<time_point> empty_since;

  role role_of(std::string_view user, site_role site) const {
    auto it = roles.find(user);
    return effective_role(it == roles.end() ? role::member : it->second, site);
  }
  const member* find_session(session_id s) const {
    for (const auto& x : members)
      if (x.session == s) return &x;
    return nullptr;
  }
  const member* find_user(std::string_view user) const {
    for (const auto& x : members)
      if (x.user == user) return &x;
    return nullptr;
  }
  void rebuild_snapshot() {
    auto v = std::make_shared<std::vector<session_id>>();
    v->reserve(members.size());
    for (const auto& x : members) v->push_back(x.session);
    snapshot = std::move(v);
    member_count.store(static_cast<std::uint32_t>(members.size()), std::memory_order_relaxed);
  }
  /// The expiry of an active entry of `table` for `user` (an expired one is dropped).
  static std::optional<time_point> active(std::map<std::string, time_point, std::less<>>& table, std::string_view user,
                                          time_point now) {
    auto it = table.find(user);
    if (it == table.end()) return std::nullopt;
    if (it->second <= now) {
      table.erase(it);
      return std::nullopt;
    }
    return it->second;
  }
  void prune(time_point now) {
    std::erase_if(bans, [&](const auto& e) { return e.second <= now; });
    std::erase_if(mutes, [&](const auto& e) { return e.second <= now; });
  }
};

// room::m held. Keeps (id, frame) in the history in id order, once, at most `max` entries (a
// message numbered elsewhere may come twice, or late: rooms/mirror.hpp).
inline void keep_in_history(room& rm, std::uint64_t id, payload frame, std::size_t max) {
  if (max == 0) return;
  auto it = std::lower_bound(rm.history.begin(), rm.history.end(), id, [](const stored_message& m, std::uint64_t v) { return m.id < v; });
  if (it != rm.history.end() && it->id == id) return;
  rm.history.insert(it, {id, std::move(frame)});
  while (rm.history.size() > max) rm.history.pop_front();
}

inline std::int64_t seconds_left(time_point until, time_point now) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
  return (ms + 999) / 1000;
}

inline std::int64_t unix_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline payload share(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

}  // namespace rproxy::rooms::detail
