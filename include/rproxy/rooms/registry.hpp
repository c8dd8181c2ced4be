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
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
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
#include <rproxy/rooms/password.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/roles.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace rproxy::rooms {

using session_id = std::uint64_t;
using time_point = std::chrono::system_clock::time_point;
/// One encoded frame, shared by all its recipients (and by the history).
using payload = std::shared_ptr<const std::string>;
using recipient_list = std::shared_ptr<const std::vector<session_id>>;

/// The server numbers sessions with its worker's index in the top 16 bits, so a delivery knows
/// where to post each recipient's send.
constexpr session_id make_session_id(std::uint16_t worker, std::uint64_t serial) noexcept {
  return (static_cast<std::uint64_t>(worker) << 48) | (serial & 0xFFFF'FFFF'FFFFull);
}
constexpr std::uint16_t worker_of(session_id s) noexcept { return static_cast<std::uint16_t>(s >> 48); }

/// One frame for a set of sessions.
struct delivery {
  payload frame;
  recipient_list to;
};

/// What one request produced.
struct outcome {
  bool ok = false;                   ///< the reply is {"type":"ok",...}
  std::string reply;                 ///< one frame for the sender
  std::vector<payload> replay;       ///< frames for the sender after the reply (history), oldest first
  std::vector<delivery> deliveries;  ///< frames for other sessions (may include the sender's own)
};

/// Who sends a request: the session, and the user and role claim its JWT gave.
struct caller {
  session_id session = 0;
  std::string_view user;
  site_role site = site_role::member;
};

/// A room's state at one moment (tests, fuzz invariants, metrics).
struct room_info {
  std::vector<session_id> members;
  std::uint32_t max_members = 0;
  std::size_t history = 0;
  std::uint64_t last_id = 0;
  std::string owner;
  bool is_private = false;
  std::string password;  ///< the password's hash as password_hash::encode() writes it; empty: none
};

namespace detail {

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

inline std::int64_t seconds_left(time_point until, time_point now) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
  return (ms + 999) / 1000;
}

inline std::int64_t unix_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline payload share(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

}  // namespace detail

class registry {
public:
  explicit registry(rooms_block cfg) : limits_(std::move(cfg)) {}
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// The current limits. A reload replaces them (set_config); each operation reads them once.
  const rooms_block& config() const noexcept { return limits_.get(); }
  /// New limits for the operations that start from now on (a config reload). Rooms keep their
  /// own max_members, capped by the server's: a lower rooms.max_members applies to their joins.
  void set_config(rooms_block next) { limits_.set(std::move(next)); }
  const rproxy::config::versioned<rooms_block>& limits() const noexcept { return limits_; }

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

private:
  using room_ptr = std::shared_ptr<detail::room>;

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
  std::vector<session_id> remove_sessions_locked(detail::room& rm, Pred pred, time_point now) {
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

  static payload presence(const detail::room& rm, std::string_view event, std::string_view user) {
    json_out o;
    o.str("type", "presence").str("room", rm.name).str("event", event).str("user", user);
    o.unum("members", rm.members.size());
    return detail::share(std::move(o).done());
  }
  static payload role_event(const detail::room& rm, std::string_view user, role to, std::string_view by) {
    json_out o;
    o.str("type", "role").str("room", rm.name).str("user", user).str("role", role_name(to)).str("by", by);
    return detail::share(std::move(o).done());
  }

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

public:
  // --- cluster: this instance's mirror of rooms shared through Redis (rooms/cluster.hpp) ------
  // Another instance's message or event is applied here and delivered to the local members;
  // a room first joined here is adopted from what Redis keeps. Each call takes the room's lock
  // like the operations above.

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
        rm = std::make_shared<detail::room>(std::string(name), s.is_private, s.max_members, std::move(s.password));
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
      auto gone = remove_sessions_locked(*rm, [&](const detail::member& x) { return x.user == user; }, now);
      if (!gone.empty()) {
        json_out t;
        t.str("type", what == sanction::ban ? "banned" : "kicked").str("room", rm->name).str("by", by);
        if (what == sanction::ban) t.num("seconds", std::max<std::int64_t>(0, detail::seconds_left(until, now)));
        out.push_back({detail::share(std::move(t).done()), std::make_shared<const std::vector<session_id>>(std::move(gone))});
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
    if (auto until = detail::room::active(rm->mutes, c.user, now))
      return d.refusal = fail(r, {errc::muted, "you are muted in this room for " +
                                                   std::to_string(detail::seconds_left(*until, now)) + " more seconds"}), d;
    d.head = R"({"type":"message","room":)";
    append_html_safe_string(d.head, rm->name);
    d.head += R"(,"msg_id":)";
    json_out t;
    t.str("from", c.user).str("role", role_name(rm->role_of(c.user, c.site))).str("text", r.text).num("ts", detail::unix_ms(now));
    d.tail = std::move(t).done();
    d.tail[0] = ',';
    d.last_id = rm->last_id;
    d.ok = true;
    return d;
  }
  /// A kick of a user who is in the room on another instance only (the cluster saw its
  /// presence): checked and announced as a kick is; nobody leaves here.
  outcome kick_elsewhere(const caller& c, const request& r, time_point now) {
    const rooms_block& cfg = config();
    if (auto f = check_name(c.user, cfg.max_name_bytes, "user name")) return fail(r, std::move(*f));
    register_session(c);
    return moderate(c, r, now, true);
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
  // room::m held. Keeps (id, frame) in the history in id order, once, at most `max` entries.
  static void keep_in_history(detail::room& rm, std::uint64_t id, payload frame, std::size_t max) {
    if (max == 0) return;
    auto it = std::lower_bound(rm.history.begin(), rm.history.end(), id,
                               [](const detail::stored_message& m, std::uint64_t v) { return m.id < v; });
    if (it != rm.history.end() && it->id == id) return;
    rm.history.insert(it, {id, std::move(frame)});
    while (rm.history.size() > max) rm.history.pop_front();
  }

  rproxy::config::versioned<rooms_block> limits_;
  mutable std::shared_mutex rooms_mutex_;
  std::map<std::string, room_ptr, std::less<>> rooms_;  ///< by name (sorted: list pages by name)
  mutable std::mutex users_mutex_;
  std::map<session_id, session_entry> sessions_;
  std::map<std::string, user_entry, std::less<>> users_;
};

}  // namespace rproxy::rooms
