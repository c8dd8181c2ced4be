// rproxy/rooms/cluster.hpp: rooms across ws-server instances, through Redis. Each instance keeps
// its registry (registry.hpp) as a mirror of the rooms its members are in; Redis holds what the
// instances share, and pub/sub carries what they tell each other (bus_message.hpp).
//
//     rooms::basic_cluster<Link> bridge(reg, hub, link, opts, log);   // one per process
//     rooms::basic_stage<rooms::basic_cluster<Link>> st{&reg, &hub, {}, &bridge};
//
// `Link` is the Redis side (rooms/cluster_link.hpp adapts the cluster/ Redis client): a
// pipelined command connection per worker, whose replies complete on that worker, and one
// pub/sub connection whose messages arrive on worker 0. The bridge runs on the workers'
// threads; its per-worker state is touched only there, its subscription state only on worker 0.
//
// What goes where:
//   - message: Redis numbers it. One Lua script takes the next id of the room (above the
//     instance's newest, so ids never go back after an outage), appends the frame to the
//     room's stream (XADD MAXLEN ~ rooms.history) and publishes it: one order for every
//     instance, the order of each sender's messages kept (a session's requests run one at a
//     time, each on its worker's connection). Every instance, the sender's too, delivers it to
//     its local members from the subscription, encoding nothing: the frame was encoded once.
//   - create: a script claims the name (it fails if another instance has the room); join: a
//     script checks the ban and the room's max_members across instances (presence, below),
//     adds the session's presence and returns the room's state (settings, roles, bans, mutes,
//     newest id, history tail), which the mirror adopts before the local join runs.
//   - moderation, roles, leave: run on the mirror, written to Redis (HSET/HDEL) and published;
//     the other instances apply them to their members (a ban removes the user's sessions there).
//   - private messages: to the addressee's local sessions, and published on the user's channel
//     for the other instances; an addressee with no local session is `not_online` only when no
//     instance listens on its channel (PUBLISH counts them).
//   - presence: a sorted set per room of "INSTANCE SESSION USER" scored by expiry; each instance
//     refreshes its members' entries every presence_ttl / 3 (and re-creates a room's settings
//     after a Redis restart), so a crashed instance's members disappear within presence_ttl.
//   - subscriptions: an instance subscribes to a room's channel when the room gets its first
//     local member and unsubscribes when the last leaves; then (and after a reconnect) it
//     reads the stream's tail so nothing published while it was not listening is missed, and
//     holds the live messages that arrive meanwhile until that read is in.
//   - Redis down (or a command failing): each request runs locally, as without a cluster (ids
//     from the local newest), and `degraded()` is true; except a message whose script was sent
//     and not answered in time (it may have run: running it here too could deliver it twice and
//     out of order), which gets an `internal` error for the sender to resend; when the link is back, every room with
//     local members is subscribed again and its settings and presence written again.
//
// Keys (one room's keys share the hash tag {rooms:NAME}, so a Lua script may use them together
// on Redis Cluster): PREFIX{rooms:NAME}:meta (hash: owner, private, max_members, password as a
// PBKDF2 hash), :roles, :bans, :mutes (hashes), :seq, :hist (stream), :presence (sorted set);
// channels PREFIX{rooms:NAME} and PREFIX{users:USER}. Every key of a room expires
// empty_room_ttl + presence_ttl after the last refresh by an instance with members there.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/cluster/error.hpp>
#include <rproxy/cluster/reply.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/rooms/bus_message.hpp>
#include <rproxy/rooms/cluster_scripts.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/registry.hpp>

namespace rproxy::rooms {

struct cluster_options {
  std::string prefix = "rproxy:";                    ///< before every key and channel
  std::chrono::milliseconds presence_ttl{30'000};    ///< a member's presence without a refresh
  std::uint32_t max_waiting = 64;                    ///< requests a session may queue behind one waiting on Redis
};

/// Read access to a Redis reply (cluster/reply.hpp) as the scripts return it.
class reply_view {
public:
  explicit reply_view(const cluster::reply& r) noexcept : r_(&r) {}
  bool is_integer() const noexcept { return r_->type == cluster::reply::kind::integer; }
  std::int64_t integer() const noexcept { return r_->integer; }
  bool is_string() const noexcept { return r_->type == cluster::reply::kind::string; }
  std::string_view str() const noexcept { return r_->str; }
  bool is_array() const noexcept { return r_->type == cluster::reply::kind::array; }
  std::size_t size() const noexcept { return is_array() ? r_->elements.size() : 0; }
  reply_view at(std::size_t i) const { return reply_view(r_->elements.at(i)); }

private:
  const cluster::reply* r_;
};

/// The bridge between this instance's registry and the others, through `Link` (see above):
///   link.command(worker, std::vector<std::string> args, handler(std::error_code, const cluster::reply&))
///     pipelined on that worker's connection, the handler called on that worker (never inline);
///   link.eval(worker, const cluster::lua_script&, nkeys, std::vector<std::string> keys_then_args, handler):
///     the same for a script (EVALSHA; the link sends the body only when Redis lacks it);
///   link.up(): every worker's connection is up; link.post0(f) / link.post(w, f): runs f on worker 0 / w;
///   link.subscribe(channel) / link.unsubscribe(channel): idempotent, on worker 0; messages go to
///   on_bus(), confirmations to on_subscribed(), worker 0's state to on_up() / on_down().
template <class Link>
class basic_cluster {
public:
  using reply = cluster::reply;

  basic_cluster(registry& reg, flow::ws_hub& hub, Link& link, cluster_options opt, const observe::logger* log)
      : reg_(reg), hub_(hub), link_(link), opt_(std::move(opt)), log_(log), workers_(hub.workers()) {
    std::random_device rd;
    origin_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    char hex[17];
    for (int i = 0; i < 16; ++i) hex[i] = "0123456789abcdef"[(origin_ >> (60 - 4 * i)) & 0xF];
    hex[16] = 0;
    origin_hex_ = hex;
  }
  basic_cluster(const basic_cluster&) = delete;
  basic_cluster& operator=(const basic_cluster&) = delete;

  std::uint64_t origin() const noexcept { return origin_; }
  /// The Lua scripts the bridge runs (a link loads them into Redis on each connect).
  static std::vector<const cluster::lua_script*> scripts() { return cluster_scripts::all(); }
  /// True while requests run locally only (the link is down).
  bool degraded() const { return !link_.up(); }

  // --- from the rooms stage, on worker w's thread ----------------------------------------------

  /// Runs (or queues behind the session's request waiting on Redis) one request. False: the
  /// session has max_waiting requests queued already (the stage closes it: too fast).
  bool handle(std::size_t w, const caller& c, const request& r) {
    auto& ws = workers_[w];
    auto [it, fresh] = ws.sessions.try_emplace(c.session);
    auto& s = it->second;
    if (fresh) {
      s.user = std::string(c.user);
      s.site = c.site;
      if (!degraded()) {  // the first request waits until private messages to the user reach this instance
        s.busy = true;
        s.pinned_user = true;  // released when the session ends
        s.waiting.push_back(r);
        subscribe_then(user_channel(s.user), false, s.user, w, [this, w, sid = c.session] { resume(w, sid); });
        return true;
      }
    }
    if (s.busy) {
      if (s.waiting.size() >= opt_.max_waiting) return false;
      s.waiting.push_back(r);
      return true;
    }
    run(w, c.session, s, r);
    drain(w, c.session);
    return true;
  }

  /// The session ended: it leaves its rooms here and in Redis; requests still queued are dropped.
  void closed(std::size_t w, session_id sid, std::string_view user) {
    auto& ws = workers_[w];
    if (auto it = ws.sessions.find(sid); it != ws.sessions.end()) {
      if (it->second.pinned_user) release(user_channel(it->second.user));
      ws.sessions.erase(it);
    }
    const auto rooms = reg_.rooms_of(sid);
    const auto now = std::chrono::system_clock::now();
    auto out = reg_.disconnect(sid, now);
    for (const auto& d : out) hub_.deliver(w, d.frame, d.to);
    if (!degraded()) {
      for (const auto& d : out) publish_effects(w, *d.frame, now);
      for (const auto& room : rooms) link_.command(w, {"ZREM", key(room, "presence"), presence_member(sid, user)}, ignore());
    }
    for (const auto& room : rooms) reconcile_room(room);
    reconcile_user(std::string(user));
  }

  // --- from the link, on worker 0 --------------------------------------------------------------

  /// A pub/sub message on `channel`.
  void on_bus(std::string_view channel, std::string_view payload) {
    (void)channel;
    auto e = decode_bus(payload, bus_limits_for(reg_.config()));
    if (!e) {
      ++bad_bus_;
      if (log_ && (bad_bus_ & (bad_bus_ - 1)) == 0)  // 1, 2, 4, 8 ...: never a flood
        log_->warn("refused a bus message", {{"error", e.error().message()}, {"refused", std::to_string(bad_bus_)}});
      return;
    }
    if (e->kind == bus_kind::message) {
      if (auto sub = subs_.find(tag(e->room)); sub != subs_.end() && (sub->second.catching_up || sub->second.pins > 0)) {
        sub->second.held.emplace_back(e->id, std::string(e->frame));
        return;
      }
      if (auto d = reg_.apply_message(e->room, e->id, detail::share(std::string(e->frame)))) hub_.deliver(0, d->frame, d->to);
      return;
    }
    if (e->origin == origin_) return;  // applied here already
    apply_remote(*e);
  }

  /// Redis confirmed the subscription to `channel` (new, or again after a reconnect): what is
  /// published there reaches this instance from now on. A room catches up on its stream (what
  /// was published before, while this instance was not listening), holding live messages until
  /// that read is in; the requests waiting for the subscription go on. On worker 0.
  void on_subscribed(std::string_view channel) {
    auto it = subs_.find(std::string(channel));
    if (it == subs_.end()) return;
    it->second.confirmed = true;
    if (it->second.is_room) catch_up(it->first);
    run_waiters(it->second);
  }

  /// The link is down (worker 0): subscriptions are unconfirmed until Redis is back; requests
  /// waiting for one go on (their commands fail: they run locally).
  void on_down() {
    for (auto& [ch, sub] : subs_) {
      sub.confirmed = false;
      run_waiters(sub);
    }
  }

  /// The link is up (at start, or after an outage; the link subscribes again by itself and
  /// each confirmation catches up): subscribe what local members need, and write the rooms'
  /// settings and presence again (Redis may have restarted empty). On worker 0.
  void on_up() {
    for (const auto& [room, members] : reg_.local_rooms()) reconcile_room(room);
    for (const auto& u : reg_.local_users()) reconcile_user(u);
    heartbeat();
  }

  /// Refreshes presence and room settings in Redis (every presence_ttl / 3, from worker 0).
  void heartbeat() {
    if (degraded()) return;
    const auto now = std::chrono::system_clock::now();
    const auto expiry = std::to_string(unix_ms(now) + opt_.presence_ttl.count());
    for (auto& [room, members] : reg_.local_rooms()) {
      auto info = reg_.info(room);
      if (!info) continue;
      std::vector<std::string> args = room_keys(room);
      args.push_back(info->owner);
      args.push_back(info->is_private ? "1" : "0");
      args.push_back(std::to_string(info->max_members));
      args.push_back(info->password);
      args.push_back(std::to_string(room_ttl_ms()));
      for (const auto& [sid, user] : members) {
        args.push_back(presence_member(sid, user));
        args.push_back(expiry);
      }
      link_.eval(0, cluster_scripts::heartbeat(), 7, std::move(args), ignore());
    }
  }
  std::chrono::milliseconds heartbeat_interval() const { return opt_.presence_ttl / 3; }

  /// Bus messages refused so far (malformed: another version, or not from an instance).
  std::uint64_t refused() const noexcept { return bad_bus_; }

private:
  struct session_state {
    std::string user;
    site_role site = site_role::member;
    bool busy = false;         ///< a request waits on Redis
    bool pinned_user = false;  ///< holds a pin on the user's channel (subscribe_then)
    std::deque<request> waiting;
  };
  struct worker_state {
    std::unordered_map<session_id, session_state> sessions;
  };
  struct subscription {
    bool is_room = false;
    bool confirmed = false;    ///< Redis answered the SUBSCRIBE (since the last reconnect)
    bool catching_up = false;  ///< reading the stream: live messages are held
    int pins = 0;              ///< requests that need it before their room has a local member
    std::string name;          ///< the room or the user
    std::vector<std::pair<std::uint64_t, std::string>> held;  ///< live messages during the catch-up
    std::vector<std::function<void()>> waiters;                ///< run once confirmed
  };

  static std::int64_t unix_ms(time_point t) { return detail::unix_ms(t); }
  std::int64_t room_ttl_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(reg_.config().empty_room_ttl).count() +
           opt_.presence_ttl.count();
  }

  std::string tag(std::string_view room) const { return opt_.prefix + "{rooms:" + std::string(room) + "}"; }
  std::string key(std::string_view room, std::string_view what) const { return tag(room) + ":" + std::string(what); }
  std::string user_channel(std::string_view user) const { return opt_.prefix + "{users:" + std::string(user) + "}"; }
  std::optional<std::string> room_of_channel(std::string_view ch) const {
    const std::string head = opt_.prefix + "{rooms:";
    if (ch.size() <= head.size() + 1 || ch.substr(0, head.size()) != head || ch.back() != '}') return std::nullopt;
    return std::string(ch.substr(head.size(), ch.size() - head.size() - 1));
  }
  std::string presence_member(session_id s, std::string_view user) const {
    return origin_hex_ + " " + std::to_string(s) + " " + std::string(user);
  }
  /// The room's seven keys, as the scripts take them (KEYS[1..7]); their ARGV follow.
  std::vector<std::string> room_keys(std::string_view room) const {
    std::vector<std::string> a;
    for (auto k : {"meta", "roles", "bans", "mutes", "seq", "hist", "presence"}) a.push_back(key(room, k));
    return a;
  }
  static auto ignore() {
    return [](std::error_code, const reply&) {};
  }

  caller caller_of(session_id sid, const session_state& s) const { return {sid, s.user, s.site}; }

  /// Sends a reply and the replay to a session of worker w, if it is still connected.
  void answer(std::size_t w, session_id sid, std::string reply_text, const std::vector<payload>& replay = {}) {
    if (auto* c = hub_.find(w, sid)) {
      c->send_text(std::move(reply_text));
      for (const auto& f : replay) c->send(f);
    }
  }

  /// Runs the queued requests of a session until one waits on Redis.
  void drain(std::size_t w, session_id sid) {
    for (;;) {
      auto& ws = workers_[w];
      auto it = ws.sessions.find(sid);
      if (it == ws.sessions.end() || it->second.busy || it->second.waiting.empty()) return;
      request r = std::move(it->second.waiting.front());
      it->second.waiting.pop_front();
      run(w, sid, it->second, r);
    }
  }
  /// An async step of a session is over: the next requests run.
  void resume(std::size_t w, session_id sid) {
    auto& ws = workers_[w];
    auto it = ws.sessions.find(sid);
    if (it == ws.sessions.end()) return;
    it->second.busy = false;
    drain(w, sid);
  }
  bool alive(std::size_t w, session_id sid) const { return workers_[w].sessions.contains(sid) && hub_.find(w, sid); }

  void run(std::size_t w, session_id sid, session_state& s, const request& r) {
    const caller c = caller_of(sid, s);
    if (!degraded()) {
      switch (r.kind) {
        case op::create: return start_create(w, sid, s, r);
        case op::join: return start_join(w, sid, s, r);
        case op::message: return start_message(w, sid, s, r);
        case op::private_message:
          if (!reg_.is_local_user(r.user) && c.site != site_role::guest) return start_private(w, sid, s, r);
          break;
        case op::kick:
          if (!reg_.is_local_member(r.room, r.user)) return start_kick(w, sid, s, r);
          break;
        default: break;
      }
    }
    local(w, c, r);
  }

  /// A request run on this instance's registry; its effects are told to the others.
  void local(std::size_t w, const caller& c, const request& r) {
    const auto now = std::chrono::system_clock::now();
    const bool first = !reg_.is_local_user(c.user);
    auto out = reg_.execute(c, r, now);
    answer(w, c.session, std::move(out.reply), out.replay);
    for (const auto& d : out.deliveries) hub_.deliver(w, d.frame, d.to);
    if (first) reconcile_user(std::string(c.user));
    if (!out.ok) return;
    if (!degraded()) {
      for (const auto& d : out.deliveries) publish_effects(w, *d.frame, now);
      if (r.kind == op::private_message) {
        // the addressee's sessions on other instances: the frame delivered here
        for (const auto& d : out.deliveries) publish(w, user_channel(r.user), bus_kind::private_message, {}, r.user, {}, 0, *d.frame);
      }
      if (r.kind == op::leave) link_.command(w, {"ZREM", key(r.room, "presence"), presence_member(c.session, c.user)}, ignore());
      if (r.kind == op::kick || r.kind == op::ban)  // the target's sessions removed here leave the presence too
        for (const auto& d : out.deliveries)
          if (d.frame->starts_with(R"({"type":"kicked")") || d.frame->starts_with(R"({"type":"banned")"))
            for (auto s : *d.to) link_.command(w, {"ZREM", key(r.room, "presence"), presence_member(s, r.user)}, ignore());
    }
    if (r.kind == op::leave || r.kind == op::kick || r.kind == op::ban || r.kind == op::create || r.kind == op::join)
      reconcile_room(r.room);
  }

  void publish(std::size_t w, std::string channel, bus_kind k, std::string_view room, std::string_view user,
               std::string_view by, std::uint64_t num, std::string_view frame) {
    bus_event e;
    e.kind = k;
    e.origin = origin_;
    e.num = num;
    e.room = room;
    e.user = user;
    e.by = by;
    e.frame = frame;
    link_.command(w, {"PUBLISH", std::move(channel), encode_bus(e)}, ignore());
  }

  /// Tells the others what a local operation did, from the frames it delivered here, and writes
  /// the room state it changed (roles, bans, mutes).
  void publish_effects(std::size_t w, const std::string& frame, time_point now) {
    rproxy::json::limits lim;
    lim.max_depth = 1;
    lim.max_nodes = 32;
    lim.max_bytes = frame.size();
    auto doc = rproxy::json::parse(frame, lim);
    if (!doc) return;
    const auto str = [&](std::string_view k) -> std::string {
      auto v = doc->root().find(k);
      return v && v->is_string() ? std::string(v->as_string()) : std::string();
    };
    const std::string type = str("type"), room = str("room");
    if (room.empty()) return;
    const std::string channel = tag(room);
    if (type == "presence") return publish(w, channel, bus_kind::event, room, {}, {}, 0, frame);
    if (type == "role") {
      const auto to = role_from_name(str("role"));
      const std::string user = str("user");
      if (!to || user.empty()) return;
      if (*to == role::member) link_.command(w, {"HDEL", key(room, "roles"), user}, ignore());
      else link_.command(w, {"HSET", key(room, "roles"), user, std::to_string(static_cast<int>(*to))}, ignore());
      if (*to == role::owner) link_.command(w, {"HSET", key(room, "meta"), "owner", user}, ignore());
      return publish(w, channel, bus_kind::role, room, user, {}, static_cast<std::uint64_t>(*to), frame);
    }
    if (type != "moderation") return;  // kicked / banned: this instance's removed sessions only
    const std::string action = str("action"), user = str("user"), by = str("by");
    std::int64_t seconds = 0;
    if (auto v = doc->root().find("seconds"); v && v->is_number()) seconds = v->as_int(0, bus_max_number / 1000).value_or(0);
    const std::uint64_t until = static_cast<std::uint64_t>(unix_ms(now) + seconds * 1000);
    if (action == "kick") return publish(w, channel, bus_kind::kick, room, user, by, 0, frame);
    if (action == "ban") {
      link_.command(w, {"HSET", key(room, "bans"), user, std::to_string(until)}, ignore());
      return publish(w, channel, bus_kind::ban, room, user, by, until, frame);
    }
    if (action == "unban") {
      link_.command(w, {"HDEL", key(room, "bans"), user}, ignore());
      return publish(w, channel, bus_kind::unban, room, user, {}, 0, frame);
    }
    if (action == "mute") {
      link_.command(w, {"HSET", key(room, "mutes"), user, std::to_string(until)}, ignore());
      return publish(w, channel, bus_kind::mute, room, user, {}, until, frame);
    }
    if (action == "unmute") {
      link_.command(w, {"HDEL", key(room, "mutes"), user}, ignore());
      return publish(w, channel, bus_kind::unmute, room, user, {}, 0, frame);
    }
  }

  /// Another instance's event, applied to this one's members (worker 0).
  void apply_remote(const bus_event& e) {
    const auto now = std::chrono::system_clock::now();
    auto frame = detail::share(std::string(e.frame));
    const auto at = time_point(std::chrono::milliseconds(static_cast<std::int64_t>(e.num)));
    switch (e.kind) {
      case bus_kind::event:
        if (auto d = reg_.apply_event(e.room, frame)) hub_.deliver(0, d->frame, d->to);
        return;
      case bus_kind::role:
        if (auto d = reg_.apply_role(e.room, e.user, static_cast<role>(e.num), frame)) hub_.deliver(0, d->frame, d->to);
        return;
      case bus_kind::private_message:
        if (auto d = reg_.apply_private(e.user, frame)) hub_.deliver(0, d->frame, d->to);
        return;
      case bus_kind::kick:
      case bus_kind::ban:
      case bus_kind::unban:
      case bus_kind::mute:
      case bus_kind::unmute: {
        const auto what = e.kind == bus_kind::kick ? registry::sanction::kick
                          : e.kind == bus_kind::ban ? registry::sanction::ban
                          : e.kind == bus_kind::unban ? registry::sanction::unban
                          : e.kind == bus_kind::mute ? registry::sanction::mute
                                                     : registry::sanction::unmute;
        std::vector<session_id> before;
        if (what == registry::sanction::kick || what == registry::sanction::ban)
          if (auto i = reg_.info(e.room)) before = i->members;
        for (const auto& d : reg_.apply_sanction(what, e.room, e.user, e.by, at, frame, now)) hub_.deliver(0, d.frame, d.to);
        if (!before.empty()) {
          const auto after = reg_.info(e.room);
          for (auto s : before)
            if (!after || std::find(after->members.begin(), after->members.end(), s) == after->members.end())
              link_.command(0, {"ZREM", key(e.room, "presence"), presence_member(s, e.user)}, ignore());
          reconcile_room(std::string(e.room));
        }
        return;
      }
      case bus_kind::message: return;
    }
  }

  // --- requests that wait on Redis ------------------------------------------------------------

  void start_create(std::size_t w, session_id sid, session_state& s, const request& r) {
    const caller c = caller_of(sid, s);
    auto p = reg_.prepare_create(c, r);
    if (!p.ok) return answer(w, sid, std::move(p.refusal.reply));
    const auto now = std::chrono::system_clock::now();
    std::vector<std::string> args = room_keys(r.room);
    args.push_back(std::string(c.user));
    args.push_back(r.is_private ? "1" : "0");
    args.push_back(std::to_string(p.max_members));
    args.push_back(p.password ? p.password->encode() : std::string());
    args.push_back(std::to_string(room_ttl_ms()));
    args.push_back(presence_member(sid, c.user));
    args.push_back(std::to_string(unix_ms(now) + opt_.presence_ttl.count()));
    s.busy = true;
    // listening on the room before anyone can join it elsewhere: their events reach this instance
    const std::string ch = tag(r.room);
    subscribe_then(ch, true, r.room, w, [this, w, sid, r, ch, args = std::move(args), p = std::move(p)]() mutable {
    link_.eval(w, cluster_scripts::create(), 7, std::move(args), [this, w, sid, r, ch, p = std::move(p)](std::error_code ec, const reply& raw) mutable {
      const reply_view rep(raw);
      auto it = workers_[w].sessions.find(sid);
      if (it == workers_[w].sessions.end() || !hub_.find(w, sid)) return release(ch);
      const caller c = caller_of(sid, it->second);
      const auto now = std::chrono::system_clock::now();
      if (ec || !rep.is_integer()) {
        local(w, c, r);  // Redis failed: the room is this instance's (as without a cluster)
      } else if (rep.integer() == 0) {
        request f = r;
        answer(w, sid, error_reply(f, {errc::exists, "a room with that name exists"}));
      } else {
        auto out = reg_.create_prepared(c, r, std::move(p), now);
        if (!out.ok) link_.command(w, {"DEL", key(r.room, "meta")}, ignore());  // a local limit: give the name back
        answer(w, sid, std::move(out.reply));
      }
      release(ch);  // after the room has its member here: the subscription stays
      resume(w, sid);
    });
    });
  }

  void start_join(std::size_t w, session_id sid, session_state& s, const request& r) {
    const caller c = caller_of(sid, s);
    if (auto f = check_name(c.user, reg_.config().max_name_bytes, "user name")) return answer(w, sid, error_reply(r, *f));
    const auto now = std::chrono::system_clock::now();
    std::vector<std::string> args = room_keys(r.room);
    args.push_back(std::string(c.user));
    args.push_back(std::to_string(unix_ms(now)));
    args.push_back(presence_member(sid, c.user));
    args.push_back(std::to_string(unix_ms(now) + opt_.presence_ttl.count()));
    args.push_back(std::to_string(reg_.config().history));
    args.push_back(std::to_string(room_ttl_ms()));
    s.busy = true;
    // listening on the room before reading its state: nothing published after the read is missed
    const std::string ch = tag(r.room);
    subscribe_then(ch, true, r.room, w, [this, w, sid, r, ch, args = std::move(args), user = std::string(c.user)]() mutable {
    link_.eval(w, cluster_scripts::join(), 7, std::move(args), [this, w, sid, r, ch, user](std::error_code ec, const reply& raw) {
      const reply_view rep(raw);
      auto it = workers_[w].sessions.find(sid);
      if (it == workers_[w].sessions.end() || !hub_.find(w, sid)) {  // gone meanwhile: its presence too
        if (!ec) link_.command(w, {"ZREM", key(r.room, "presence"), presence_member(sid, user)}, ignore());
        return release(ch);
      }
      const caller c = caller_of(sid, it->second);
      const auto now = std::chrono::system_clock::now();
      const auto status = !ec && rep.is_array() && rep.size() >= 1 && rep.at(0).is_integer() ? rep.at(0).integer() : -1;
      if (status < 0) {
        local(w, c, r);
      } else if (status == 0) {
        answer(w, sid, error_reply(r, {errc::not_found, "no such room"}));
      } else if (status == 2) {
        std::uint64_t until = 0;
        if (rep.size() >= 2 && rep.at(1).is_string()) (void)detail_parse(rep.at(1).str(), until);
        const auto left = detail::seconds_left(time_point(std::chrono::milliseconds(static_cast<std::int64_t>(until))), now);
        answer(w, sid, error_reply(r, {errc::banned, "you are banned from this room for " + std::to_string(left) + " more seconds"}));
      } else if (status == 3) {
        answer(w, sid, error_reply(r, {errc::full, "this room is full"}));
      } else if (!reg_.adopt(r.room, shared_of(rep, now), now)) {
        link_.command(w, {"ZREM", key(r.room, "presence"), presence_member(sid, c.user)}, ignore());
        answer(w, sid, error_reply(r, {errc::limit, "this server has its maximum of rooms"}));
      } else {
        auto out = reg_.execute(c, r, now);
        answer(w, sid, std::move(out.reply), out.replay);
        for (const auto& d : out.deliveries) hub_.deliver(w, d.frame, d.to);
        if (out.ok) {
          for (const auto& d : out.deliveries) publish_effects(w, *d.frame, now);
        } else {
          link_.command(w, {"ZREM", key(r.room, "presence"), presence_member(sid, c.user)}, ignore());
        }
      }
      release(ch);  // after the join here: messages held meanwhile are applied now, once
      resume(w, sid);
    });
    });
  }

  void start_message(std::size_t w, session_id sid, session_state& s, const request& r) {
    const caller c = caller_of(sid, s);
    const auto now = std::chrono::system_clock::now();
    auto d = reg_.draft_message(c, r, now);
    if (!d.ok) return answer(w, sid, std::move(d.refusal.reply));
    const auto parts = message_parts(origin_, r.room);
    std::vector<std::string> args{key(r.room, "seq"), key(r.room, "hist")};
    args.push_back(std::to_string(d.last_id));
    args.push_back(std::to_string(reg_.config().history));
    args.push_back(std::move(d.head));
    args.push_back(std::move(d.tail));
    args.push_back(parts.head);
    args.push_back(parts.middle);
    args.push_back(tag(r.room));
    args.push_back(std::to_string(room_ttl_ms()));
    s.busy = true;
    link_.eval(w, cluster_scripts::message(), 2, std::move(args), [this, w, sid, r](std::error_code ec, const reply& raw) {
      const reply_view rep(raw);
      auto it = workers_[w].sessions.find(sid);
      if (it == workers_[w].sessions.end()) return;
      if (ec && !sent(ec)) {
        local(w, caller_of(sid, it->second), r);  // never reached Redis: numbered and delivered here
      } else if (ec || !rep.is_integer() || rep.integer() <= 0) {
        // Sent, and no answer in time (or a broken one): the script may have run, so running
        // the message here too could deliver it twice and out of order. The sender is told.
        answer(w, sid, error_reply(r, {errc::internal, "Redis did not confirm this message in time: it may not have been "
                                                       "delivered; send it again if it does not come back"}));
      } else {
        answer(w, sid, registry::message_reply(r, static_cast<std::uint64_t>(rep.integer())));
      }
      resume(w, sid);
    });
  }

  /// A kick of a user with no session in the room here: the room's presence says whether it
  /// has one on another instance.
  void start_kick(std::size_t w, session_id sid, session_state& s, const request& r) {
    s.busy = true;
    const auto now = std::chrono::system_clock::now();
    link_.command(w, {"ZRANGEBYSCORE", key(r.room, "presence"), std::to_string(unix_ms(now)), "+inf", "LIMIT", "0", "10000"},
                  [this, w, sid, r](std::error_code ec, const reply& raw) {
      const reply_view rep(raw);
      auto it = workers_[w].sessions.find(sid);
      if (it == workers_[w].sessions.end()) return;
      const caller c = caller_of(sid, it->second);
      bool elsewhere = false;
      const std::string tail = " " + r.user;
      for (std::size_t i = 0; !ec && i < rep.size() && !elsewhere; ++i)
        elsewhere = rep.at(i).is_string() && rep.at(i).str().ends_with(tail) &&
                    rep.at(i).str().find(' ') == 16 && rep.at(i).str().find(' ', 17) + tail.size() == rep.at(i).str().size();
      if (!elsewhere) {
        local(w, c, r);  // not_member (or whatever the registry says)
      } else {
        const auto now2 = std::chrono::system_clock::now();
        auto out = reg_.kick_elsewhere(c, r, now2);
        answer(w, sid, std::move(out.reply), out.replay);
        for (const auto& d : out.deliveries) hub_.deliver(w, d.frame, d.to);
        if (out.ok && !degraded())
          for (const auto& d : out.deliveries) publish_effects(w, *d.frame, now2);
      }
      resume(w, sid);
    });
  }

  void start_private(std::size_t w, session_id sid, session_state& s, const request& r) {
    const caller c = caller_of(sid, s);
    const auto now = std::chrono::system_clock::now();
    json_out f;
    f.str("type", "private_message").str("from", c.user).str("to", r.user).str("text", r.text).num("ts", detail::unix_ms(now));
    bus_event e;
    e.kind = bus_kind::private_message;
    e.origin = origin_;
    e.user = r.user;
    const std::string frame = std::move(f).done();
    e.frame = frame;
    s.busy = true;
    link_.command(w, {"PUBLISH", user_channel(r.user), encode_bus(e)}, [this, w, sid, r](std::error_code ec, const reply& raw) {
      const reply_view rep(raw);
      auto it = workers_[w].sessions.find(sid);
      if (it == workers_[w].sessions.end()) return;
      if (ec || !rep.is_integer()) local(w, caller_of(sid, it->second), r);
      else if (rep.integer() == 0) answer(w, sid, error_reply(r, {errc::not_online, "that user is not online"}));
      else answer(w, sid, std::move(ok_reply(r).str("user", r.user)).done());
      resume(w, sid);
    });
  }

  static bool detail_parse(std::string_view s, std::uint64_t& out) { return rooms::detail::parse_bus_number(s, out); }
  /// Whether a failed command may have reached Redis (a timeout, a dropped connection) rather
  /// than never left (not connected, overloaded).
  static bool sent(std::error_code ec) {
    return !(ec == cluster::error::not_connected || ec == cluster::error::overloaded || ec == cluster::error::closed);
  }

  /// The room's state from the join script's reply (bounded by the rooms limits).
  registry::shared_room shared_of(reply_view rep, time_point now) const {
    const rooms_block& cfg = reg_.config();
    registry::shared_room s;
    const auto pairs = [&](reply_view arr, auto&& each, std::size_t max) {
      if (!arr.is_array()) return;
      for (std::size_t i = 0; i + 1 < arr.size() && i / 2 < max; i += 2)
        if (arr.at(i).is_string() && arr.at(i + 1).is_string()) each(arr.at(i).str(), arr.at(i + 1).str());
    };
    if (rep.size() < 7) return s;
    pairs(rep.at(1), [&](std::string_view k, std::string_view v) {
      std::uint64_t n = 0;
      if (k == "owner" && !check_name(v, cfg.max_name_bytes, "owner")) s.owner = std::string(v);
      else if (k == "private") s.is_private = v == "1";
      else if (k == "max_members" && detail_parse(v, n)) s.max_members = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, cfg.max_members));
      else if (k == "password" && !v.empty()) s.password = password_hash::decode(v);
    }, 8);
    pairs(rep.at(2), [&](std::string_view u, std::string_view v) {
      std::uint64_t n = 0;
      if (!check_name(u, cfg.max_name_bytes, "user") && detail_parse(v, n) && n <= static_cast<std::uint64_t>(role::owner))
        s.roles.emplace_back(std::string(u), static_cast<role>(n));
    }, cfg.max_roles_per_room + 1);
    const auto sanctions = [&](reply_view arr, auto& into) {
      pairs(arr, [&](std::string_view u, std::string_view v) {
        std::uint64_t n = 0;
        if (!check_name(u, cfg.max_name_bytes, "user") && detail_parse(v, n)) {
          const auto until = time_point(std::chrono::milliseconds(static_cast<std::int64_t>(n)));
          if (until > now) into.emplace_back(std::string(u), until);
        }
      }, cfg.max_sanctions_per_room * 4);
    };
    sanctions(rep.at(3), s.bans);
    sanctions(rep.at(4), s.mutes);
    if (rep.at(5).is_string()) (void)detail_parse(rep.at(5).str(), s.last_id);
    s.history = history_of(rep.at(6));
    for (const auto& h : s.history) s.last_id = std::max(s.last_id, h.first);
    return s;
  }

  /// (id, frame) of stream entries (XREVRANGE: newest first), oldest first, each frame checked.
  std::vector<std::pair<std::uint64_t, payload>> history_of(reply_view arr) const {
    std::vector<std::pair<std::uint64_t, payload>> out;
    if (!arr.is_array()) return out;
    const auto lim = bus_limits_for(reg_.config());
    const std::size_t max = reg_.config().history;
    for (std::size_t i = 0; i < arr.size() && out.size() < max; ++i) {
      const reply_view entry = arr.at(i);
      if (!entry.is_array() || entry.size() != 2 || !entry.at(1).is_array()) continue;
      const reply_view fields = entry.at(1);
      std::uint64_t id = 0;
      std::optional<std::string_view> frame;
      for (std::size_t j = 0; j + 1 < fields.size(); j += 2) {
        if (!fields.at(j).is_string() || !fields.at(j + 1).is_string()) continue;
        if (fields.at(j).str() == "i") (void)detail_parse(fields.at(j + 1).str(), id);
        else if (fields.at(j).str() == "f") frame = fields.at(j + 1).str();
      }
      if (id == 0 || !frame) continue;
      // the same checks as a live message: one flat, HTML-safe JSON object within bounds
      bus_event e;
      e.kind = bus_kind::message;
      e.id = id;
      e.room = "x";
      e.frame = *frame;
      if (!decode_bus(encode_bus(e), lim)) continue;
      out.emplace_back(id, detail::share(std::string(*frame)));
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

  // --- subscriptions (worker 0) ----------------------------------------------------------------

  /// Runs `then` on worker w once this instance is subscribed to `channel` (at once when it
  /// is, or when the link is down), keeping the subscription until release(channel).
  template <class F>
  void subscribe_then(std::string channel, bool is_room, std::string name, std::size_t w, F then) {
    link_.post0([this, channel = std::move(channel), is_room, name = std::move(name), w, then = std::move(then)]() mutable {
      auto& sub = subscribed(channel, is_room, std::move(name));
      ++sub.pins;
      if (sub.confirmed || degraded()) return link_.post(w, std::move(then));
      sub.waiters.push_back([this, w, then = std::move(then)]() mutable { link_.post(w, std::move(then)); });
    });
  }
  void release(std::string channel) {
    link_.post0([this, channel = std::move(channel)] {
      auto it = subs_.find(channel);
      if (it == subs_.end()) return;
      if (it->second.pins > 0) --it->second.pins;
      if (it->second.pins == 0 && !it->second.catching_up) flush_held(it->second);
      reconcile(channel);
    });
  }
  subscription& subscribed(const std::string& channel, bool is_room, std::string name) {
    auto [it, fresh] = subs_.try_emplace(channel);
    if (fresh) {
      it->second.is_room = is_room;
      it->second.name = std::move(name);
      link_.subscribe(channel);
    }
    return it->second;
  }
  static void run_waiters(subscription& sub) {
    auto w = std::move(sub.waiters);
    sub.waiters.clear();
    for (auto& f : w) f();
  }
  /// On worker 0: subscribed while pinned or while the room (user) has local members.
  void reconcile(const std::string& channel) {
    auto it = subs_.find(channel);
    if (it == subs_.end()) return;
    const auto& sub = it->second;
    const bool want = sub.pins > 0 || (sub.is_room ? reg_.local_members(sub.name) > 0 : reg_.is_local_user(sub.name));
    if (want) return;
    run_waiters(it->second);
    subs_.erase(it);
    link_.unsubscribe(channel);
  }
  void reconcile_room(std::string room) {
    link_.post0([this, room = std::move(room)] {
      const std::string ch = tag(room);
      if (reg_.local_members(room) > 0) subscribed(ch, true, room);
      reconcile(ch);
    });
  }
  void reconcile_user(std::string user) {
    link_.post0([this, user = std::move(user)] {
      const std::string ch = user_channel(user);
      if (reg_.is_local_user(user)) subscribed(ch, false, user);
      reconcile(ch);
    });
  }

  /// Reads the newest history of the room of subscription `channel` and applies it; live
  /// messages are held meanwhile (and while a join or create is in flight: the room may not be
  /// here yet). On worker 0, after the SUBSCRIBE was confirmed (so the read
  /// comes after it at Redis: nothing falls between).
  void catch_up(const std::string& channel) {
    auto it = subs_.find(channel);
    if (it == subs_.end()) return;
    it->second.catching_up = true;
    const auto count = reg_.config().history;
    if (count == 0 || degraded()) return finish_catch_up(channel, nullptr);
    link_.command(0, {"XREVRANGE", key(it->second.name, "hist"), "+", "-", "COUNT", std::to_string(count)},
                  [this, channel](std::error_code ec, const reply& raw) { finish_catch_up(channel, ec ? nullptr : &raw); });
  }
  void finish_catch_up(const std::string& channel, const reply* rep) {
    auto it = subs_.find(channel);
    if (it == subs_.end()) return;
    const std::string room = it->second.name;
    if (rep)
      for (auto& [id, f] : history_of(reply_view(*rep)))
        if (auto d = reg_.apply_message(room, id, f)) hub_.deliver(0, d->frame, d->to);
    it->second.catching_up = false;
    if (it->second.pins == 0) flush_held(it->second);
  }
  /// The live messages held during a catch-up or a join in flight, applied (once, in order).
  void flush_held(subscription& sub) {
    auto held = std::move(sub.held);
    sub.held.clear();
    for (auto& [id, f] : held)
      if (auto d = reg_.apply_message(sub.name, id, detail::share(std::move(f)))) hub_.deliver(0, d->frame, d->to);
  }

  registry& reg_;
  flow::ws_hub& hub_;
  Link& link_;
  cluster_options opt_;
  const observe::logger* log_;
  std::uint64_t origin_ = 0;
  std::string origin_hex_;
  std::vector<worker_state> workers_;
  std::unordered_map<std::string, subscription> subs_;  ///< by channel; worker 0 only
  std::uint64_t bad_bus_ = 0;                           ///< worker 0 only
};

}  // namespace rproxy::rooms
