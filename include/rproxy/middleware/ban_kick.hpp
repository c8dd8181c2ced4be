// rproxy/middleware/ban_kick.hpp: a new ban ends the open flows it covers, not only the next
// ones. ban_check (ban.hpp) refuses a banned peer when it connects; a player or a WebSocket
// client already connected would stay. The ban_kick stage keeps each open flow in its worker's
// roster; when the bans change (a ban file reloaded, an admin POST, a ban from another instance:
// cluster::shared_bans::on_change) the roster is swept on every worker, on that worker's own
// thread, and each flow whose client address or identity (a Minecraft player's name) a ban now
// covers is ended there:
//   - a WebSocket flow after its upgrade (ctx.ws): a close frame 1008 (policy violation) with
//     the ban message, then the close handshake as usual;
//   - any other flow on a TCP socket (ctx.client_fd): shutdown(2) of both directions, so the
//     flow's own code sees the end and cleans up as for a peer that left (the descriptor is
//     never closed here: the flow still owns it);
//   - a flow whose transport offered a closer (ban_kick::offer_closer: a QUIC connection, which
//     has no socket of its own) is ended by it (flow/h3.hpp: CONNECTION_CLOSE with
//     H3_REQUEST_REJECTED and the ban message as the reason);
//   - any other: refused at its next hello or route.
// Each kick is counted (the roster's counter) and audited like a refusal (ctx.rejected is set:
// reject metrics count it as `banned`).
//
//     rproxy::middleware::ban_roster roster(worker_executors, &metrics.add_counter("app_ban_kicks", "..."));
//     shared_bans.on_change([&](auto file) { roster.sweep(std::move(file)); });
//     make_pipeline(..., mw::ban_check{&file_list, audit, &cfg, &shared.list()},
//                   mw::ban_kick{&roster, &file_list, &shared.list(), &cfg, audit}, ...);
//
// A Minecraft player in play is not sent a Disconnect packet: the proxy relays the play state
// as bytes, so it does not know where the backend's packets end, whether they are compressed or
// (online mode) encrypted, and a packet put between them would be garbage to the client. The
// player sees the connection end; the ban's message comes with the refusal when it joins again.
//
// The stage's object and the lists it points to must outlive the flows (they live in the
// config version the flow keeps); the roster must outlive every flow and every sweep.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/observe/worker_index.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct ban_kick;

namespace detail {
/// Whether a pipeline context has ban_kick's state (the stage, or a wrapper of it).
template <class Ctx>
struct has_ban_kick : std::false_type {};
template <class Flow, class... Stages>
struct has_ban_kick<basic_context<Flow, Stages...>>
    : std::bool_constant<(std::is_same_v<rproxy::detail::state_key_t<Stages>, ban_kick> || ...)> {};
}  // namespace detail

/// How a transport whose flows have no socket of their own (QUIC) lets a sweep end a flow:
/// `end(owner, message)` (false: it cannot be ended now). Owned by the transport, which must
/// keep it alive until the flow's on_close.
struct flow_closer {
  bool (*end)(void* owner, std::string_view message) = nullptr;
  void* owner = nullptr;
};

/// The open flows of a process, a list per worker (each touched only on its worker's thread).
class ban_roster {
public:
  /// One flow's place in its worker's list (ban_kick's per-flow state, inside the flow's
  /// context: 48 bytes). A flow whose context is moved (a WebSocket flow handed to its
  /// session) keeps its place: the moved-to entry takes it over. A copy is a new, unlisted one.
  class entry {
  public:
    entry() = default;
    entry(const entry&) noexcept {}
    entry& operator=(const entry&) noexcept { return *this; }
    entry(entry&& o) noexcept { take(o); }
    entry& operator=(entry&& o) noexcept {
      if (this != &o) {
        unlink();
        take(o);
      }
      return *this;
    }
    bool listed() const noexcept { return prev_ != nullptr; }
    bool kicked() const noexcept { return kicked_; }

  private:
    friend class ban_roster;
    friend struct ban_kick;
    /// The flow this entry is part of: its context is at a fixed distance from it.
    flow_base& flow() noexcept { return *reinterpret_cast<flow_base*>(reinterpret_cast<char*>(this) - offset_); }
    void take(entry& o) noexcept {
      offset_ = o.offset_;
      stage_ = o.stage_;
      close_ = o.close_;
      closer_ = o.closer_;
      kicked_ = o.kicked_;
      if (!o.listed()) return;
      prev_ = o.prev_;
      next_ = o.next_;
      prev_->next_ = this;
      next_->prev_ = this;
      o.prev_ = o.next_ = nullptr;
    }
    void unlink() noexcept {
      if (!listed()) return;
      prev_->next_ = next_;
      next_->prev_ = prev_;
      prev_ = next_ = nullptr;
    }
    entry* prev_ = nullptr;  ///< (a circular list through the shard's head: never null while listed)
    entry* next_ = nullptr;
    std::int32_t offset_ = 0;  ///< from the flow's context to this entry (within the context: 32 bits)
    bool kicked_ = false;      ///< (beside offset_: 8 bytes less per flow)
    const ban_kick* stage_ = nullptr;
    bool (*close_)(flow_base&, std::string_view message) = nullptr;  ///< false: it cannot be ended now
    const flow_closer* closer_ = nullptr;  ///< the transport's, when it offered one
  };

  /// One executor per worker, index i being the thread whose observe::worker_index() is i.
  /// `kicks`: counts the flows ended (null: not counted).
  explicit ban_roster(std::vector<asio::any_io_executor> workers, observe::counter* kicks = nullptr)
      : shards_(workers.size()), kicks_(kicks) {
    for (std::size_t i = 0; i < workers.size(); ++i) {
      shards_[i].ex = std::move(workers[i]);
      shards_[i].head.prev_ = shards_[i].head.next_ = &shards_[i].head;
    }
  }
  ban_roster(const ban_roster&) = delete;
  ban_roster& operator=(const ban_roster&) = delete;

  std::size_t workers() const noexcept { return shards_.size(); }
  /// Flows listed on worker `w` (from its thread; it walks the list: for tests and checks).
  std::size_t size(std::size_t w) const noexcept {
    std::size_t n = 0;
    for (const entry* e = shards_[w].head.next_; e != &shards_[w].head; e = e->next_) ++n;
    return n;
  }

  /// Ends, on every worker, the flows a ban now covers: the bans their stage checks, and
  /// `extra` (a ban file just loaded, whose list the older flows do not point to). From any
  /// thread: posted to each worker.
  void sweep(std::shared_ptr<const ban_list> extra = nullptr) {
    for (std::size_t i = 0; i < shards_.size(); ++i)
      asio::post(shards_[i].ex, [this, i, extra] { sweep_here(i, extra.get()); });
  }

  /// The same on worker `w`, on its thread, now; returns how many flows it ended.
  std::size_t sweep_here(std::size_t w, const ban_list* extra, ban_clock::time_point now = ban_clock::now());

private:
  friend struct ban_kick;
  struct shard {
    asio::any_io_executor ex;
    entry head;  ///< the list's sentinel (the vector is never resized: its address stays)
  };

  void add(entry& e, flow_base& f, const ban_kick* stage, bool (*close)(flow_base&, std::string_view)) {
    if (e.listed() || shards_.empty()) return;
    auto& head = shards_[observe::worker_index() % shards_.size()].head;
    e.offset_ = static_cast<std::int32_t>(reinterpret_cast<char*>(&e) - reinterpret_cast<char*>(&f));
    e.stage_ = stage;
    e.close_ = close;
    e.prev_ = &head;
    e.next_ = head.next_;
    head.next_->prev_ = &e;
    head.next_ = &e;
  }
  static void remove(entry& e) noexcept { e.unlink(); }

  std::vector<shard> shards_;
  observe::counter* kicks_;
};

/// The stage: lists each flow in the roster from on_accept to on_close. All pointers but the
/// roster are optional (null roster: the stage does nothing).
struct ban_kick {
  ban_roster* roster = nullptr;
  const ban_list* bans = nullptr;         ///< the ban file's list
  const ban_list* shared = nullptr;       ///< bans made anywhere (cluster::shared_bans::list())
  const ban_check_config* cfg = nullptr;  ///< what the peer is told (default "banned")
  audit_log* audit = nullptr;

  struct state : ban_roster::entry {};

  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    if (roster) roster->add(ctx.template state<ban_kick>(), ctx, this, &close_flow<Ctx>);
    return rproxy::next;
  }
  /// A flow the sweep could not end at once (no socket of its own) is refused here.
  template <class Ctx, class Msg>
  rproxy::verdict on_hello(Ctx& ctx, const Msg&) {
    return held(ctx);
  }
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    return held(ctx);
  }
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    ban_roster::remove(ctx.template state<ban_kick>());
  }

  /// For a transport: how to end the flow of `ctx` when a ban covers it, if its pipeline has
  /// this stage (else nothing). Before on_accept; `c` must outlive the flow's on_close.
  template <class Ctx>
  static void offer_closer(Ctx& ctx, const flow_closer* c) noexcept {
    if constexpr (detail::has_ban_kick<Ctx>::value) ctx.template state<ban_kick>().closer_ = c;
  }

  std::string_view message() const noexcept { return cfg ? std::string_view(cfg->reject_message) : std::string_view("banned"); }

  /// The ban covering the flow now, if any (its client address, then its identity).
  std::optional<ban_hit> covering(const flow_base& f, const ban_list* extra, ban_clock::time_point now) const {
    const auto addr = f.client.address();
    for (const ban_list* l : {bans, shared, extra}) {
      if (l == nullptr) continue;
      if (auto h = l->find_address(addr, now)) return h;
      if (auto h = l->find_identity(f.identity, now)) return h;
    }
    return std::nullopt;
  }

private:
  template <class Ctx>
  rproxy::verdict held(Ctx& ctx) {
    if (!ctx.template state<ban_kick>().kicked()) return rproxy::next;
    return rproxy::reject({reject_code::banned, message()});
  }

  template <class Ctx>
  static bool close_flow(flow_base& f, std::string_view message) {
    auto& ctx = static_cast<Ctx&>(f);
    if constexpr (requires { ctx.ws; }) {
      if (ctx.ws != nullptr) {
        ctx.ws->close(codec::ws::close_code::policy_violation, message);  // (cut to fit a close frame)
        return true;
      }
    }
    if (ctx.client_fd >= 0) {
      ::shutdown(ctx.client_fd, SHUT_RDWR);
      return true;
    }
    return false;
  }
};

inline std::size_t ban_roster::sweep_here(std::size_t w, const ban_list* extra, ban_clock::time_point now) {
  std::size_t n = 0;
  entry* const head = &shards_[w].head;
  for (entry* e = head->next_; e != head;) {
    entry* next = e->next_;  // (ending a flow never unlists it at once, but do not rely on it)
    if (!e->kicked_) {
      flow_base& f = e->flow();
      if (auto hit = e->stage_->covering(f, extra, now)) {
        e->kicked_ = true;
        ++n;
        if (kicks_) kicks_->inc();
        const auto msg = e->stage_->message();
        (void)reject_and_audit(f, e->stage_->audit, {reject_code::banned, msg}, "ban_kick",
                               hit->entry.reason.empty() ? std::string_view("banned") : std::string_view(hit->entry.reason),
                               hit->subject);
        if (!e->close_(f, msg) && e->closer_ && e->closer_->end)
          (void)e->closer_->end(e->closer_->owner, msg);  // (false: refused at its next hook, ban_kick::held)
      }
    }
    e = next;
  }
  return n;
}

}  // namespace rproxy::middleware
