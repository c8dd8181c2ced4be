// rproxy/rooms/room_table.hpp: the state under the room registry (rooms/registry.hpp): the
// rooms by name (rooms_mutex_), each session's rooms and each user's sessions and owned-room
// count (users_mutex_), the limits of the current config; and the steps every operation shares
// (look a room up, remove members, the presence and role frames). The lock order and the
// decisions are the registry's header's; the operations are there and in rooms/mirror.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/config/versioned.hpp>
#include <rproxy/rooms/outcome.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/roles.hpp>
#include <rproxy/rooms/room.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace rproxy::rooms::detail {

class room_table {
public:
  explicit room_table(rooms_block cfg) : limits_(std::move(cfg)) {}
  room_table(const room_table&) = delete;
  room_table& operator=(const room_table&) = delete;

  /// The current limits. A reload replaces them (set_config); each operation reads them once.
  const rooms_block& config() const noexcept { return limits_.get(); }
  /// New limits for the operations that start from now on (a config reload). Rooms keep their
  /// own max_members, capped by the server's: a lower rooms.max_members applies to their joins.
  void set_config(rooms_block next) { limits_.set(std::move(next)); }
  const rproxy::config::versioned<rooms_block>& limits() const noexcept { return limits_; }

  /// Closes rooms empty for empty_room_ttl and drops expired bans and mutes. Returns the
  /// number of rooms closed.
  std::size_t sweep(time_point now) {
    const rooms_block& cfg = config();
    std::vector<std::string> owners;
    {
      std::unique_lock lk(rooms_mutex_);
      for (auto it = rooms_.begin(); it != rooms_.end();) {
        auto& rm = *it->second;
        std::lock_guard rl(rm.m);
        rm.prune(now);
        if (rm.members.empty() && rm.empty_since && now - *rm.empty_since >= cfg.empty_room_ttl) {
          rm.closed = true;
          owners.push_back(rm.owner);
          it = rooms_.erase(it);
        } else {
          ++it;
        }
      }
    }
    std::lock_guard lk(users_mutex_);
    for (const auto& o : owners) change_owned_locked(o, -1);
    return owners.size();
  }

  std::size_t room_count() const {
    std::shared_lock lk(rooms_mutex_);
    return rooms_.size();
  }

  std::optional<room_info> info(std::string_view name) const {
    auto rm = find(name);
    if (!rm) return std::nullopt;
    std::lock_guard lk(rm->m);
    room_info i;
    i.members = *rm->snapshot;
    i.max_members = rm->max_members;
    i.history = rm->history.size();
    i.last_id = rm->last_id;
    i.owner = rm->owner;
    i.is_private = rm->is_private;
    if (rm->password) i.password = rm->password->encode();
    return i;
  }

  /// The rooms a session is in (in join order).
  std::vector<std::string> rooms_of(session_id s) const {
    std::lock_guard lk(users_mutex_);
    auto it = sessions_.find(s);
    return it == sessions_.end() ? std::vector<std::string>{} : it->second.rooms;
  }

  /// Rooms `user` owns (counted against max_owned_rooms_per_user).
  std::uint32_t owned_by(std::string_view user) const {
    std::lock_guard lk(users_mutex_);
    auto it = users_.find(user);
    return it == users_.end() ? 0 : it->second.owned;
  }

protected:
  using room_ptr = std::shared_ptr<room>;

  struct session_entry {
    std::string user;
    std::vector<std::string> rooms;
  };
  struct user_entry {
    std::vector<session_id> sessions;
    std::uint32_t owned = 0;
  };

  static outcome fail(const request& r, failure f) {
    outcome o;
    o.reply = error_reply(r, f);
    return o;
  }
  static outcome succeed(json_out&& o) {
    outcome out;
    out.ok = true;
    out.reply = std::move(o).done();
    return out;
  }

  /// Deliveries to nobody (an empty room's presence) are not made.
  static void add(std::vector<delivery>& to, delivery d) {
    if (!d.to->empty()) to.push_back(std::move(d));
  }

  room_ptr find(std::string_view name) const {
    std::shared_lock lk(rooms_mutex_);
    auto it = rooms_.find(name);
    return it == rooms_.end() ? nullptr : it->second;
  }

  void register_session(const caller& c) {
    std::lock_guard lk(users_mutex_);
    if (sessions_.contains(c.session)) return;
    sessions_.emplace(c.session, session_entry{std::string(c.user), {}});
    auto it = users_.find(c.user);
    if (it == users_.end()) it = users_.emplace(std::string(c.user), user_entry{}).first;
    it->second.sessions.push_back(c.session);
  }

  // users_mutex_ held.
  void drop_session_locked(const std::string& user, session_id s) {
    auto u = users_.find(user);
    if (u == users_.end()) return;
    std::erase(u->second.sessions, s);
    if (u->second.sessions.empty() && u->second.owned == 0) users_.erase(u);
  }
  void change_owned_locked(std::string_view user, int delta) {
    auto u = users_.find(user);
    if (u == users_.end()) {
      if (delta < 0) return;
      u = users_.emplace(std::string(user), user_entry{}).first;
    }
    if (delta < 0 && u->second.owned > 0) --u->second.owned;
    if (delta > 0) ++u->second.owned;
    if (u->second.sessions.empty() && u->second.owned == 0) users_.erase(u);
  }

  // room::m held. Removes the matching members, updates their sessions' room lists, the
  // snapshot and empty_since. Returns the sessions removed.
  template <class Pred>
  std::vector<session_id> remove_sessions_locked(room& rm, Pred pred, time_point now) {
    std::vector<session_id> gone;
    for (const auto& x : rm.members)
      if (pred(x)) gone.push_back(x.session);
    if (gone.empty()) return gone;
    std::erase_if(rm.members, pred);
    rm.rebuild_snapshot();
    if (rm.members.empty()) rm.empty_since = now;
    std::lock_guard lk(users_mutex_);
    for (auto s : gone)
      if (auto it = sessions_.find(s); it != sessions_.end()) std::erase(it->second.rooms, rm.name);
    return gone;
  }

  // --- frames -----------------------------------------------------------------------------------

  static payload presence(const room& rm, std::string_view event, std::string_view user) {
    json_out o;
    o.str("type", "presence").str("room", rm.name).str("event", event).str("user", user);
    o.unum("members", rm.members.size());
    return share(std::move(o).done());
  }
  static payload role_event(const room& rm, std::string_view user, role to, std::string_view by) {
    json_out o;
    o.str("type", "role").str("room", rm.name).str("user", user).str("role", role_name(to)).str("by", by);
    return share(std::move(o).done());
  }

  rproxy::config::versioned<rooms_block> limits_;
  mutable std::shared_mutex rooms_mutex_;
  std::map<std::string, room_ptr, std::less<>> rooms_;  ///< by name (sorted: list pages by name)
  mutable std::mutex users_mutex_;
  std::map<session_id, session_entry> sessions_;
  std::map<std::string, user_entry, std::less<>> users_;
};

}  // namespace rproxy::rooms::detail
