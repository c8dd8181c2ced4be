// rproxy/rooms/mirror.hpp: the room registry's side of a cluster (rooms/cluster.hpp): this
// instance's mirror of rooms shared through Redis. Another instance's message or event is
// applied here and delivered to the local members; a room first joined here is adopted from
// what Redis keeps; a message sent here is checked and drafted before Redis numbers it. Each
// call takes the room's lock as the registry's own operations do (rooms/registry.hpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/rooms/outcome.hpp>
#include <rproxy/rooms/password.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/roles.hpp>
#include <rproxy/rooms/room.hpp>
#include <rproxy/rooms/room_table.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace rproxy::rooms::detail {

class mirror : public room_table {
public:
  using room_table::room_table;

  /// A room as Redis keeps it (decoded and bounded by the caller).
  struct shared_room {
    std::string owner;
    bool is_private = false;
    std::uint32_t max_members = 0;
    std::optional<password_hash> password;
    std::vector<std::pair<std::string, role>> roles;
    std::vector<std::pair<std::string, time_point>> bans, mutes;
    std::uint64_t last_id = 0;                               ///< the room's newest message id
    std::vector<std::pair<std::uint64_t, payload>> history;  ///< the kept tail, oldest first
  };

  /// Makes or refreshes the local room `name` from `s`. A room with local members keeps its
  /// settings (they do not change after create) and takes the rest; history is merged by id.
  /// False: this instance has its maximum of rooms.
  bool adopt(std::string_view name, shared_room s, time_point now) {
    const rooms_block& cfg = config();
    room_ptr rm = find(name);
    if (!rm || !same_settings(*rm, s)) {
      std::unique_lock lk(rooms_mutex_);
      auto it = rooms_.find(name);
      bool replace = it == rooms_.end();
      if (!replace) {
        std::lock_guard rl(it->second->m);
        replace = it->second->members.empty() && !same_settings(*it->second, s);
        if (replace) it->second->closed = true;
      }
      if (replace) {
        if (it == rooms_.end() && rooms_.size() >= cfg.max_rooms) return false;
        rm = std::make_shared<room>(std::string(name), s.is_private, s.max_members, std::move(s.password));
        rm->empty_since = now;
        if (it == rooms_.end()) rooms_.emplace(rm->name, rm);
        else it->second = rm;
      } else {
        rm = it->second;
      }
    }
    std::lock_guard lk(rm->m);
    if (rm->closed) return false;
    if (!s.owner.empty()) rm->owner = std::move(s.owner);
    rm->roles.clear();
    for (auto& [u, r] : s.roles) {
      if (rm->roles.size() >= cfg.max_roles_per_room + 1) break;  // the owner's entry too
      rm->roles[std::move(u)] = r;
    }
    if (!rm->owner.empty()) rm->roles[rm->owner] = role::owner;
    const auto load = [&](auto& table, auto& from) {
      table.clear();
      for (auto& [u, until] : from)
        if (until > now && table.size() < cfg.max_sanctions_per_room) table[std::move(u)] = until;
    };
    load(rm->bans, s.bans);
    load(rm->mutes, s.mutes);
    rm->last_id = std::max(rm->last_id, s.last_id);
    rm->synced_id = std::max(rm->synced_id, s.last_id);
    for (auto& [id, f] : s.history) keep_in_history(*rm, id, std::move(f), cfg.history);
    return true;
  }

  /// A room message another party numbered (Redis): kept in the history once, in id order, and
  /// delivered to the local members. A message already seen (id not above the newest one from
  /// Redis) is dropped: the bus and a history load may both bring it.
  std::optional<delivery> apply_message(std::string_view room, std::uint64_t id, payload frame) {
    const rooms_block& cfg = config();
    auto rm = find(room);
    if (!rm) return std::nullopt;
    std::lock_guard lk(rm->m);
    if (rm->closed || id <= rm->synced_id) return std::nullopt;
    rm->synced_id = id;
    rm->last_id = std::max(rm->last_id, id);
    keep_in_history(*rm, id, frame, cfg.history);
    if (rm->snapshot->empty()) return std::nullopt;
    return delivery{std::move(frame), rm->snapshot};
  }

  /// An event frame (presence, role, moderation) for the local members of `room`.
  std::optional<delivery> apply_event(std::string_view room, payload frame) {
    auto rm = find(room);
    if (!rm) return std::nullopt;
    std::lock_guard lk(rm->m);
    if (rm->closed || rm->snapshot->empty()) return std::nullopt;
    return delivery{std::move(frame), rm->snapshot};
  }

  enum class sanction : std::uint8_t { kick, ban, unban, mute, unmute };

  /// A kick, ban, unban, mute or unmute made on another instance: the room's state follows,
  /// `user`'s local sessions leave (kick, ban: they get `kicked` / `banned`), and the other
  /// local members get `frame`.
  std::vector<delivery> apply_sanction(sanction what, std::string_view room, std::string_view user, std::string_view by,
                                       time_point until, payload frame, time_point now) {
    const rooms_block& cfg = config();
    std::vector<delivery> out;
    auto rm = find(room);
    if (!rm) return out;
    std::lock_guard lk(rm->m);
    if (rm->closed) return out;
    switch (what) {
      case sanction::ban:
      case sanction::mute: {
        auto& table = what == sanction::ban ? rm->bans : rm->mutes;
        rm->prune(now);
        if (table.contains(user) || rm->bans.size() + rm->mutes.size() < cfg.max_sanctions_per_room)
          table[std::string(user)] = until;
        break;
      }
      case sanction::unban: rm->bans.erase(std::string(user)); break;
      case sanction::unmute: rm->mutes.erase(std::string(user)); break;
      case sanction::kick: break;
    }
    if (what == sanction::kick || what == sanction::ban) {
      auto gone = remove_sessions_locked(*rm, [&](const member& x) { return x.user == user; }, now);
      if (!gone.empty()) {
        json_out t;
        t.str("type", what == sanction::ban ? "banned" : "kicked").str("room", rm->name).str("by", by);
        if (what == sanction::ban) t.num("seconds", std::max<std::int64_t>(0, seconds_left(until, now)));
        out.push_back({share(std::move(t).done()), std::make_shared<const std::vector<session_id>>(std::move(gone))});
      }
    }
    add(out, {std::move(frame), rm->snapshot});
    return out;
  }

  /// A role given on another instance (owner: the room changes hands).
  std::optional<delivery> apply_role(std::string_view room, std::string_view user, role to, payload frame) {
    const rooms_block& cfg = config();
    auto rm = find(room);
    if (!rm) return std::nullopt;
    std::lock_guard lk(rm->m);
    if (rm->closed) return std::nullopt;
    if (to == role::owner) {
      rm->owner = std::string(user);
      rm->roles[std::string(user)] = role::owner;
    } else if (to == role::member) {
      rm->roles.erase(std::string(user));
    } else if (rm->roles.contains(user) || rm->roles.size() < cfg.max_roles_per_room + 1) {
      rm->roles[std::string(user)] = to;
    }
    if (rm->snapshot->empty()) return std::nullopt;
    return delivery{std::move(frame), rm->snapshot};
  }

  /// A private message from another instance, for `user`'s local sessions.
  std::optional<delivery> apply_private(std::string_view user, payload frame) {
    auto to = std::make_shared<std::vector<session_id>>();
    {
      std::lock_guard lk(users_mutex_);
      if (auto u = users_.find(user); u != users_.end()) *to = u->second.sessions;
    }
    if (to->empty()) return std::nullopt;
    return delivery{std::move(frame), std::move(to)};
  }

  /// A room message checked as message() checks it, without an id: the frame is
  /// head + ID + tail once Redis gives the id (the same bytes message() would write).
  struct message_draft {
    bool ok = false;
    outcome refusal;  ///< when !ok
    std::string head, tail;
    std::uint64_t last_id = 0;  ///< the newest id this instance knows (Redis continues above it)
  };
  message_draft draft_message(const caller& c, const request& r, time_point now) {
    message_draft d;
    const rooms_block& cfg = config();
    if (auto f = check_name(c.user, cfg.max_name_bytes, "user name")) return d.refusal = fail(r, std::move(*f)), d;
    register_session(c);
    auto rm = find(r.room);
    if (!rm) return d.refusal = fail(r, {errc::not_found, "no such room"}), d;
    std::lock_guard lk(rm->m);
    if (rm->closed) return d.refusal = fail(r, {errc::not_found, "no such room"}), d;
    if (!rm->find_session(c.session)) return d.refusal = fail(r, {errc::not_member, "you are not in this room"}), d;
    if (auto until = room::active(rm->mutes, c.user, now))
      return d.refusal = fail(r, {errc::muted, "you are muted in this room for " +
                                                   std::to_string(seconds_left(*until, now)) + " more seconds"}), d;
    d.head = R"({"type":"message","room":)";
    append_html_safe_string(d.head, rm->name);
    d.head += R"(,"msg_id":)";
    json_out t;
    t.str("from", c.user).str("role", role_name(rm->role_of(c.user, c.site))).str("text", r.text).num("ts", unix_ms(now));
    d.tail = std::move(t).done();
    d.tail[0] = ',';
    d.last_id = rm->last_id;
    d.ok = true;
    return d;
  }
  /// The reply to a message numbered `id`.
  static std::string message_reply(const request& r, std::uint64_t id) {
    return std::move(ok_reply(r).str("room", r.room).unum("msg_id", id)).done();
  }

  /// Sessions of this instance in `room` (0: none, or no such room).
  std::size_t local_members(std::string_view room) const {
    auto rm = find(room);
    if (!rm) return 0;
    std::lock_guard lk(rm->m);
    return rm->closed ? 0 : rm->members.size();
  }
  /// Rooms with members on this instance, and their members as (session, user).
  std::vector<std::pair<std::string, std::vector<std::pair<session_id, std::string>>>> local_rooms() const {
    std::vector<std::pair<std::string, std::vector<std::pair<session_id, std::string>>>> out;
    std::shared_lock lk(rooms_mutex_);
    for (const auto& [name, rm] : rooms_) {
      std::lock_guard rl(rm->m);
      if (rm->members.empty()) continue;
      auto& e = out.emplace_back(name, std::vector<std::pair<session_id, std::string>>{});
      for (const auto& m : rm->members) e.second.emplace_back(m.session, m.user);
    }
    return out;
  }
  /// Whether `user` has a session in `room` on this instance.
  bool is_local_member(std::string_view room, std::string_view user) const {
    auto rm = find(room);
    if (!rm) return false;
    std::lock_guard lk(rm->m);
    return !rm->closed && rm->find_user(user) != nullptr;
  }
  /// Users with a session on this instance.
  std::vector<std::string> local_users() const {
    std::vector<std::string> out;
    std::lock_guard lk(users_mutex_);
    for (const auto& [u, e] : users_)
      if (!e.sessions.empty()) out.push_back(u);
    return out;
  }
  /// Whether `user` has a session on this instance.
  bool is_local_user(std::string_view user) const {
    std::lock_guard lk(users_mutex_);
    auto it = users_.find(user);
    return it != users_.end() && !it->second.sessions.empty();
  }

private:
  static bool same_settings(const detail::room& rm, const shared_room& s) {
    const bool pw_same = rm.password.has_value() == s.password.has_value() &&
                         (!rm.password || rm.password->encode() == s.password->encode());
    return rm.is_private == s.is_private && rm.max_members == s.max_members && pw_same;
  }
};

}  // namespace rproxy::rooms::detail
