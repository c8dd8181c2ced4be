// rproxy/rooms/registry.hpp: the room registry, sans-I/O. The server hands it (session, user, role
// claim, request text, now) and sends what it returns; it never touches a socket or a clock.
//
//     rproxy::rooms::registry rooms(cfg.rooms);                      // one per process
//     auto out = rooms.handle({session, jwt_sub, site_role_from_claim(role)}, text, now);
//     send(session, out.reply);                                  // exactly one reply frame
//     for (auto& f : out.replay) send(session, *f);              // history after a join/history
//     for (auto& d : out.deliveries)                             // events and messages to others
//       for (auto s : *d.to) post(worker_of(s), [s, f = d.frame] { send(s, *f); });
//     ...
//     for (auto& d : rooms.disconnect(session, now)) ...;        // when the connection ends
//     rooms.sweep(now);                                          // from a timer, e.g. every 10 s
//
// Threads. The server runs N io_context workers; each owns its connections, and a room's members
// may be on any worker, so the registry is shared by all of them and is the one place with locks:
//   - rooms_mutex_ (shared_mutex) guards the name -> room map: shared to look a room up or list,
//     exclusive only to create or close one. A looked-up room is held by shared_ptr, so the map
//     lock is never held while a room is used.
//   - room::m guards one room's members, roles, bans, mutes and history. Every operation on a
//     room holds it for a short, bounded time: no I/O, no password hashing (PBKDF2 runs before
//     any lock is taken; a room's password hash is immutable), no waiting.
//   - users_mutex_ guards the session -> user map (rooms per session, private messages) and the
//     per-user count of owned rooms; it is held only for map updates.
//   Lock order: rooms_mutex_ -> room::m -> users_mutex_; none is ever taken in the other order.
// Broadcast: a message is encoded once, under its room's lock (that is what makes message ids
// and history order agree), into a shared immutable buffer; its recipients are the room's
// member snapshot, an immutable vector rebuilt on join and leave (not per message), so a
// delivery costs two reference counts, whatever the room's size. The same buffer is kept in
// the history and replayed as is. The server posts each recipient's send to that recipient's
// worker (worker_of(session)); nothing here runs on another worker's thread.
//
// Parts: rooms/outcome.hpp (what goes in and out), rooms/room.hpp (one room and its history),
// rooms/room_table.hpp (rooms by name, sessions and users), rooms/mirror.hpp (rooms shared with
// other instances through Redis); here, the requests.
//
// Decisions (docs/ws-server.md):
//   - A member is a session (connection): one user with two tabs is two members; roles, bans
//     and mutes belong to the user.
//   - The owner's explicit `leave` hands ownership to the highest-ranked remaining member
//     (earliest joined among equals; guests never); with none, the owner keeps the room.
//     A disconnect does not hand it over (the owner may reconnect). An empty room is closed,
//     with its history, empty_room_ttl after its last member left (sweep()).
//   - Private rooms are unlisted, not invite-only: they are hidden from `list` and `members`
//     for non-members but joinable by name; a password restricts who joins.
//   - Time is wall-clock (system_clock) passed in: bans and mutes expire at now + seconds,
//     messages carry it as "ts" (milliseconds since the epoch).
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

#include <rproxy/rooms/mirror.hpp>
#include <rproxy/rooms/outcome.hpp>
#include <rproxy/rooms/password.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/roles.hpp>
#include <rproxy/rooms/room.hpp>
#include <rproxy/rooms/room_table.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace rproxy::rooms {

class registry : public detail::mirror {
public:
  explicit registry(rooms_block cfg) : mirror(std::move(cfg)) {}

  /// Parses one request (protocol.hpp) and executes it.
  outcome handle(const caller& c, std::string_view text, time_point now) {
    const rooms_block& cfg = config();
    request r;
    if (auto f = parse_request(text, cfg, r)) return fail(r, std::move(*f));
    return execute(c, r, now);
  }

  /// Executes a parsed request. The session is registered on its first request.
  outcome execute(const caller& c, const request& r, time_point now) {
    const rooms_block& cfg = config();
    if (auto f = check_name(c.user, cfg.max_name_bytes, "user name")) return fail(r, std::move(*f));
    register_session(c);
    switch (r.kind) {
      case op::create: return create(c, r, now);
      case op::join: return join(c, r, now);
      case op::leave: return leave(c, r, now);
      case op::list: return list(c, r);
      case op::members: return members(c, r, now);
      case op::message: return message(c, r, now);
      case op::private_message: return private_message(c, r, now);
      case op::history: return history(c, r);
      case op::kick:
      case op::ban:
      case op::unban:
      case op::mute:
      case op::unmute:
      case op::set_role: return moderate(c, r, now);
      case op::invalid: break;
    }
    return fail(r, {errc::unknown_op, "unknown op"});
  }

  /// The session ended: it leaves every room (no ownership hand-over). Presence events for
  /// the rooms' remaining members.
  std::vector<delivery> disconnect(session_id s, time_point now) {
    std::vector<std::string> rooms;
    {
      std::lock_guard lk(users_mutex_);
      auto it = sessions_.find(s);
      if (it == sessions_.end()) return {};
      rooms = std::move(it->second.rooms);
      drop_session_locked(it->second.user, s);
      sessions_.erase(it);
    }
    std::vector<delivery> out;
    for (const auto& name : rooms) {
      auto rm = find(name);
      if (!rm) continue;
      std::lock_guard lk(rm->m);
      if (rm->closed) continue;
      const detail::member* m = rm->find_session(s);
      if (!m) continue;
      const std::string user = m->user;
      remove_sessions_locked(*rm, [&](const detail::member& x) { return x.session == s; }, now);
      add(out, {presence(*rm, "leave", user), rm->snapshot});
    }
    return out;
  }

private:
  // --- operations ------------------------------------------------------------------------------

  outcome create(const caller& c, const request& r, time_point now) {
    auto p = prepare_create(c, r);
    if (!p.ok) return std::move(p.refusal);
    return create_prepared(c, r, std::move(p), now);
  }

public:
  /// A create checked and its password hashed, before the room is made (a cluster claims the
  /// name in Redis in between: rooms/cluster.hpp).
  struct prepared_create {
    bool ok = false;
    outcome refusal;  ///< when !ok
    std::uint32_t max_members = 0;
    std::optional<password_hash> password;
  };
  prepared_create prepare_create(const caller& c, const request& r) const {
    const rooms_block& cfg = config();
    prepared_create p;
    if (c.site == site_role::guest) return p.refusal = fail(r, {errc::forbidden, "guests cannot create rooms"}), p;
    p.max_members = r.max_members.value_or(cfg.max_members);
    if (p.max_members > cfg.max_members)
      return p.refusal = fail(r, {errc::limit, "max_members is over this server's limit of " + std::to_string(cfg.max_members)}), p;
    if (r.password) {
      if (r.password->size() < cfg.password.min_bytes)
        return p.refusal = fail(r, {errc::weak_password,
                                    "password is shorter than " + std::to_string(cfg.password.min_bytes) + " bytes"}), p;
      p.password = password_hash::make(*r.password, cfg.password.iterations);  // before any lock
      if (!p.password) return p.refusal = fail(r, {errc::internal, "could not hash the password"}), p;
    }
    p.ok = true;
    return p;
  }
  /// Makes the room prepare_create() checked (the session must have made a request before).
  outcome create_prepared(const caller& c, const request& r, prepared_create p, time_point now) {
    const rooms_block& cfg = config();
    register_session(c);
    const std::uint32_t max_members = p.max_members;
    auto pw = std::move(p.password);
    auto rm = std::make_shared<detail::room>(r.room, r.is_private, max_members, std::move(pw));
    {
      std::unique_lock lk(rooms_mutex_);
      if (rooms_.contains(r.room)) return fail(r, {errc::exists, "a room with that name exists"});
      if (rooms_.size() >= cfg.max_rooms) return fail(r, {errc::limit, "this server has its maximum of rooms"});
      std::lock_guard rl(rm->m);
      {
        std::lock_guard ul(users_mutex_);
        auto& s = sessions_.at(c.session);
        if (s.rooms.size() >= cfg.max_rooms_per_session)
          return fail(r, {errc::limit, "this session is in its maximum of rooms"});
        auto u = users_.find(c.user);
        if (u != users_.end() && u->second.owned >= cfg.max_owned_rooms_per_user)
          return fail(r, {errc::limit, "you own the maximum number of rooms"});
        s.rooms.push_back(rm->name);
        change_owned_locked(c.user, +1);
      }
      rm->owner = std::string(c.user);
      rm->roles.emplace(std::string(c.user), role::owner);
      rm->members.push_back({c.session, std::string(c.user), c.site, rm->join_seq++});
      rm->rebuild_snapshot();
      rooms_.emplace(rm->name, rm);
    }
    (void)now;
    auto o = ok_reply(r);
    o.str("room", rm->name).str("role", role_name(role::owner)).unum("members", 1).unum("last_id", 0);
    o.boolean("private", rm->is_private).unum("max_members", rm->max_members);
    return succeed(std::move(o));
  }

  /// A kick of a user who is in the room on another instance only (the cluster saw its
  /// presence): checked and announced as a kick is; nobody leaves here.
  outcome kick_elsewhere(const caller& c, const request& r, time_point now) {
    const rooms_block& cfg = config();
    if (auto f = check_name(c.user, cfg.max_name_bytes, "user name")) return fail(r, std::move(*f));
    register_session(c);
    return moderate(c, r, now, true);
  }

private:
  outcome join(const caller& c, const request& r, time_point now) {
    const rooms_block& cfg = config();
    auto rm = find(r.room);
    if (!rm) return fail(r, {errc::not_found, "no such room"});
    if (rm->password) {  // checked before any lock: PBKDF2 takes a while
      if (!r.password) return fail(r, {errc::wrong_password, "this room needs a password"});
      if (!rm->password->check(*r.password)) return fail(r, {errc::wrong_password, "wrong password"});
    }
    std::lock_guard lk(rm->m);
    if (rm->closed) return fail(r, {errc::not_found, "no such room"});
    if (rm->find_session(c.session)) return fail(r, {errc::already_member, "you are in this room"});
    if (auto until = detail::room::active(rm->bans, c.user, now))
      return fail(r, {errc::banned, "you are banned from this room for " +
                                        std::to_string(detail::seconds_left(*until, now)) + " more seconds"});
    if (rm->members.size() >= std::min(rm->max_members, cfg.max_members)) return fail(r, {errc::full, "this room is full"});
    {
      std::lock_guard ul(users_mutex_);
      auto& s = sessions_.at(c.session);
      if (s.rooms.size() >= cfg.max_rooms_per_session)
        return fail(r, {errc::limit, "this session is in its maximum of rooms"});
      s.rooms.push_back(rm->name);
    }
    rm->members.push_back({c.session, std::string(c.user), c.site, rm->join_seq++});
    rm->rebuild_snapshot();
    rm->empty_since.reset();
    auto o = ok_reply(r);
    o.str("room", rm->name).str("role", role_name(rm->role_of(c.user, c.site)));
    o.unum("members", rm->members.size()).unum("last_id", rm->last_id);
    o.unum("first_id", rm->history.empty() ? rm->last_id + 1 : rm->history.front().id);
    o.boolean("private", rm->is_private).unum("max_members", rm->max_members);
    if (auto until = detail::room::active(rm->mutes, c.user, now))
      o.num("muted_seconds", detail::seconds_left(*until, now));
    auto out = succeed(std::move(o));
    out.replay.reserve(rm->history.size());
    for (const auto& m : rm->history) out.replay.push_back(m.frame);
    add(out.deliveries, {presence(*rm, "join", c.user), rm->snapshot});
    return out;
  }

  outcome leave(const caller& c, const request& r, time_point now) {
    auto rm = find(r.room);
    if (!rm) return fail(r, {errc::not_found, "no such room"});
    std::lock_guard lk(rm->m);
    if (rm->closed) return fail(r, {errc::not_found, "no such room"});
    if (!rm->find_session(c.session)) return fail(r, {errc::not_member, "you are not in this room"});
    remove_sessions_locked(*rm, [&](const detail::member& x) { return x.session == c.session; }, now);
    auto out = succeed(std::move(ok_reply(r).str("room", rm->name)));
    add(out.deliveries, {presence(*rm, "leave", c.user), rm->snapshot});
    if (rm->owner == c.user && !rm->find_user(c.user)) {  // the owner's last session left: hand over
      const detail::member* next = nullptr;
      role best = role::guest;
      for (const auto& x : rm->members) {  // join order: the first of the highest rank wins
        const role xr = rm->role_of(x.user, x.site);
        if (xr > best) best = xr, next = &x;
      }
      if (next) {
        const std::string heir = next->user;
        rm->roles.erase(rm->owner);
        rm->roles[heir] = role::owner;
        rm->owner = heir;
        {
          std::lock_guard ul(users_mutex_);
          change_owned_locked(c.user, -1);
          change_owned_locked(heir, +1);
        }
        add(out.deliveries, {role_event(*rm, heir, role::owner, c.user), rm->snapshot});
      }
    }
    return out;
  }

  outcome list(const caller& c, const request& r) {
    static constexpr std::size_t page = 200;
    const std::vector<std::string> mine = rooms_of(c.session);
    auto o = ok_reply(r);
    o.begin_array("rooms");
    bool more = false;
    {
      std::shared_lock lk(rooms_mutex_);
      std::size_t n = 0;
      for (auto it = rooms_.upper_bound(r.after); it != rooms_.end(); ++it) {
        const auto& rm = *it->second;
        if (rm.is_private && std::find(mine.begin(), mine.end(), rm.name) == mine.end()) continue;
        if (n == page) {
          more = true;
          break;
        }
        ++n;
        json_out item;
        item.str("name", rm.name).unum("members", rm.member_count.load(std::memory_order_relaxed));
        item.unum("max_members", rm.max_members).boolean("private", rm.is_private);
        item.boolean("password", rm.password.has_value());
        o.item_raw(std::move(item).done());
      }
    }
    o.end_array().boolean("more", more);
    return succeed(std::move(o));
  }

  outcome members(const caller& c, const request& r, time_point now) {
    auto rm = find(r.room);
    if (!rm) return fail(r, {errc::not_found, "no such room"});
    std::lock_guard lk(rm->m);
    if (rm->closed || (rm->is_private && !rm->find_session(c.session)))
      return fail(r, {errc::not_found, "no such room"});
    auto o = ok_reply(r);
    o.str("room", rm->name).begin_array("members");
    std::vector<std::string_view> seen;
    for (const auto& x : rm->members) {
      if (std::find(seen.begin(), seen.end(), x.user) != seen.end()) continue;
      seen.push_back(x.user);
      std::size_t sessions = 0;
      for (const auto& y : rm->members) sessions += y.user == x.user;
      json_out item;
      item.str("user", x.user).str("role", role_name(rm->role_of(x.user, x.site))).unum("sessions", sessions);
      item.boolean("muted", detail::room::active(rm->mutes, x.user, now).has_value());
      o.item_raw(std::move(item).done());
    }
    o.end_array();
    return succeed(std::move(o));
  }

  outcome message(const caller& c, const request& r, time_point now) {
    const rooms_block& cfg = config();
    auto rm = find(r.room);
    if (!rm) return fail(r, {errc::not_found, "no such room"});
    std::lock_guard lk(rm->m);
    if (rm->closed) return fail(r, {errc::not_found, "no such room"});
    const detail::member* me = rm->find_session(c.session);
    if (!me) return fail(r, {errc::not_member, "you are not in this room"});
    if (auto until = detail::room::active(rm->mutes, c.user, now))
      return fail(r, {errc::muted, "you are muted in this room for " +
                                       std::to_string(detail::seconds_left(*until, now)) + " more seconds"});
    const std::uint64_t id = ++rm->last_id;
    json_out f;
    f.str("type", "message").str("room", rm->name).unum("msg_id", id).str("from", c.user);
    f.str("role", role_name(rm->role_of(c.user, c.site))).str("text", r.text).num("ts", detail::unix_ms(now));
    payload frame = detail::share(std::move(f).done());
    if (cfg.history > 0) {
      rm->history.push_back({id, frame});
      while (rm->history.size() > cfg.history) rm->history.pop_front();
    }
    auto out = succeed(std::move(ok_reply(r).str("room", rm->name).unum("msg_id", id)));
    add(out.deliveries, {std::move(frame), rm->snapshot});
    return out;
  }

  outcome private_message(const caller& c, const request& r, time_point now) {
    if (c.site == site_role::guest) return fail(r, {errc::forbidden, "guests cannot send private messages"});
    auto to = std::make_shared<std::vector<session_id>>();
    {
      std::lock_guard lk(users_mutex_);
      if (auto u = users_.find(r.user); u != users_.end()) *to = u->second.sessions;
    }
    if (to->empty()) return fail(r, {errc::not_online, "that user is not online"});
    json_out f;
    f.str("type", "private_message").str("from", c.user).str("to", r.user).str("text", r.text);
    f.num("ts", detail::unix_ms(now));
    auto out = succeed(std::move(ok_reply(r).str("user", r.user)));
    add(out.deliveries, {detail::share(std::move(f).done()), std::move(to)});
    return out;
  }

  outcome history(const caller& c, const request& r) {
    auto rm = find(r.room);
    if (!rm) return fail(r, {errc::not_found, "no such room"});
    std::lock_guard lk(rm->m);
    if (rm->closed) return fail(r, {errc::not_found, "no such room"});
    if (!rm->find_session(c.session)) return fail(r, {errc::not_member, "you are not in this room"});
    const std::uint64_t since = r.since.value_or(0);
    const std::uint64_t first = rm->history.empty() ? rm->last_id + 1 : rm->history.front().id;
    outcome out;
    for (const auto& m : rm->history)
      if (m.id > since) out.replay.push_back(m.frame);
    auto o = ok_reply(r);
    o.str("room", rm->name).unum("last_id", rm->last_id).unum("first_id", first).unum("count", out.replay.size());
    o.boolean("truncated", since + 1 < first && since < rm->last_id);
    out.ok = true;
    out.reply = std::move(o).done();
    return out;
  }

  outcome moderate(const caller& c, const request& r, time_point now, bool target_elsewhere = false) {
    const rooms_block& cfg = config();
    auto rm = find(r.room);
    if (!rm) return fail(r, {errc::not_found, "no such room"});
    std::lock_guard lk(rm->m);
    if (rm->closed) return fail(r, {errc::not_found, "no such room"});
    if (!rm->find_session(c.session)) return fail(r, {errc::not_member, "you are not in this room"});
    const role actor = rm->role_of(c.user, c.site);
    const detail::member* present = rm->find_user(r.user);
    const site_role target_site = present ? present->site : site_role::member;
    const role target = rm->role_of(r.user, target_site);
    const auto forbidden = [&] {
      const auto a = [](role x) { return std::string(x == role::owner || x == role::admin ? "an " : "a ") + std::string(role_name(x)); };
      return fail(r, {errc::forbidden, a(actor) + " cannot do that to " + a(target)});
    };
    const auto event = [&](std::string_view action, std::optional<std::int64_t> seconds) {
      json_out o;
      o.str("type", "moderation").str("room", rm->name).str("action", action).str("user", r.user).str("by", c.user);
      if (seconds) o.num("seconds", *seconds);
      return detail::share(std::move(o).done());
    };
    const auto duration = [&]() -> std::optional<std::int64_t> {
      const std::int64_t max = cfg.max_sanction.count();
      const std::int64_t s = r.seconds.value_or(max);
      if (s > max) return std::nullopt;
      return s;
    };
    const auto sanctions_full = [&](const auto& table) {
      rm->prune(now);
      return !table.contains(r.user) && rm->bans.size() + rm->mutes.size() >= cfg.max_sanctions_per_room;
    };
    auto out = succeed(std::move(ok_reply(r).str("room", rm->name).str("user", r.user)));

    switch (r.kind) {
      case op::kick:
      case op::ban: {
        const bool ban = r.kind == op::ban;
        if (!ban && !present && !target_elsewhere) return fail(r, {errc::not_member, "that user is not in this room"});
        if (!may_act(actor, ban ? action::ban : action::kick, target)) return forbidden();
        std::optional<std::int64_t> secs;
        if (ban) {
          secs = duration();
          if (!secs) return fail(r, {errc::limit, "seconds is over this server's limit of " +
                                                      std::to_string(cfg.max_sanction.count())});
          if (sanctions_full(rm->bans)) return fail(r, {errc::limit, "this room's ban and mute list is full"});
          rm->bans[r.user] = now + std::chrono::seconds(*secs);
        }
        if (present) {
          auto gone = remove_sessions_locked(*rm, [&](const detail::member& x) { return x.user == r.user; }, now);
          json_out t;
          t.str("type", ban ? "banned" : "kicked").str("room", rm->name).str("by", c.user);
          if (secs) t.num("seconds", *secs);
          out.deliveries.push_back(
              {detail::share(std::move(t).done()), std::make_shared<const std::vector<session_id>>(std::move(gone))});
        }
        add(out.deliveries, {event(ban ? "ban" : "kick", secs), rm->snapshot});
        return out;
      }
      case op::mute: {
        if (!may_act(actor, action::mute, target)) return forbidden();
        auto secs = duration();
        if (!secs)
          return fail(r, {errc::limit, "seconds is over this server's limit of " + std::to_string(cfg.max_sanction.count())});
        if (sanctions_full(rm->mutes)) return fail(r, {errc::limit, "this room's ban and mute list is full"});
        rm->mutes[r.user] = now + std::chrono::seconds(*secs);
        add(out.deliveries, {event("mute", secs), rm->snapshot});
        return out;
      }
      case op::unban:
      case op::unmute: {
        const bool unban = r.kind == op::unban;
        if (!may_act(actor, unban ? action::ban : action::mute, target)) return forbidden();
        auto& table = unban ? rm->bans : rm->mutes;
        if (!detail::room::active(table, r.user, now))
          return fail(r, {errc::not_found, unban ? "that user is not banned" : "that user is not muted"});
        table.erase(r.user);
        add(out.deliveries, {event(unban ? "unban" : "unmute", std::nullopt), rm->snapshot});
        return out;
      }
      case op::set_role: {
        const role to = *r.new_role;
        if (target_site == site_role::guest && to != role::guest)
          return fail(r, {errc::forbidden, "a guest account cannot be given a role"});
        if (!may_set_role(actor, target, to)) return forbidden();
        if (to == role::owner) {  // the owner hands the room over and becomes an admin
          rm->roles[rm->owner] = role::admin;
          rm->roles[r.user] = role::owner;
          {
            std::lock_guard ul(users_mutex_);
            change_owned_locked(rm->owner, -1);
            change_owned_locked(r.user, +1);
          }
          add(out.deliveries, {role_event(*rm, rm->owner, role::admin, c.user), rm->snapshot});
          rm->owner = r.user;
        } else if (to == role::member) {
          rm->roles.erase(r.user);
        } else {
          if (!rm->roles.contains(r.user) && rm->roles.size() >= cfg.max_roles_per_room)
            return fail(r, {errc::limit, "this room's role list is full"});
          rm->roles[r.user] = to;
        }
        add(out.deliveries, {role_event(*rm, r.user, rm->role_of(r.user, target_site), c.user), rm->snapshot});
        return out;
      }
      default: break;
    }
    return fail(r, {errc::unknown_op, "unknown op"});
  }
};

}  // namespace rproxy::rooms
