// rproxy/cluster/redis_client.hpp: one worker's link to Redis: a command connection (pipelined)
// and a subscriber connection (pub/sub), both on the worker's own executor (redis_link.hpp:
// Asio's sockets, plain or TLS, with hiredis formatting commands and parsing replies), with AUTH
// (password or ACL user), timeouts, and reconnect with back-off that re-subscribes by itself.
//
//     rproxy::cluster::redis_client redis(io.get_executor(), opts, &log);
//     redis.start();
//     auto [ec, r] = co_await redis.async_command({"INCR", key}, asio::experimental::as_tuple(asio::use_awaitable));
//     auto id = redis.subscribe("rproxy:room{lobby}", [](std::string_view channel, std::string_view msg) { ... });
//     redis.unsubscribe(id);
//     redis.on_state([](bool up) { ... });   // up after connect + AUTH + PING; down on any failure
//
// Commands: async_command(args, token) completes with (error_code, reply) on the token's
// executor, never inline. When the client is not up, it completes at once with
// error::not_connected (nothing is sent); past max_pending commands awaiting a reply, with
// error::overloaded. An error reply from Redis completes with error::server_error and the reply
// (its text says which error, e.g. "NOSCRIPT ...").
//
// TLS (options.tls set): both connections handshake before AUTH, within connect_timeout. A
// certificate the context refuses (wrong CA, wrong name) is a failed attempt like a refused
// connect: the client stays down, retries with back-off, and logs why ("TLS: server certificate
// refused: ...") once.
//
// Failure: a reply later than command_timeout fails that command with error::timeout and resets
// both connections (a paused or overloaded Redis must not hold a worker's requests); so does a
// closed connection. The client then waits (reconnect_min, doubling up to reconnect_max),
// connects both again, AUTHs, PINGs, re-subscribes every channel and is up. The state handler
// and the log say so once per transition ("redis unavailable", "redis connected"), never with
// the password; on_connect_failed says when an attempt fails before the client is up (e.g.
// nothing listens at start). Messages published while a subscriber is down are lost (pub/sub has no memory:
// use a stream for history).
//
// Not thread-safe: one client per worker io_context; call it only on that executor. Its
// destructor closes both connections, which completes every pending command with
// error::disconnected (posted, as every completion).
#pragma once

#include <hiredis/hiredis.h>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/cluster/error.hpp>
#include <rproxy/cluster/redis_link.hpp>
#include <rproxy/cluster/redis_options.hpp>
#include <rproxy/cluster/reply.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::cluster {

namespace detail {

/// Copies a hiredis reply, spending at most `budget` array elements (over all levels).
inline bool copy_reply(const redisReply* in, reply& out, std::size_t& budget) {
  switch (in->type) {
    case REDIS_REPLY_STRING: out.type = reply::kind::string; out.str.assign(in->str, in->len); return true;
    case REDIS_REPLY_STATUS: out.type = reply::kind::status; out.str.assign(in->str, in->len); return true;
    case REDIS_REPLY_ERROR: out.type = reply::kind::error; out.str.assign(in->str, in->len); return true;
    case REDIS_REPLY_INTEGER: out.type = reply::kind::integer; out.integer = in->integer; return true;
    case REDIS_REPLY_NIL: out.type = reply::kind::nil; return true;
    case REDIS_REPLY_ARRAY: {
      out.type = reply::kind::array;
      if (in->elements > budget) return false;
      budget -= in->elements;
      out.elements.resize(in->elements);
      for (std::size_t i = 0; i < in->elements; ++i)
        if (!copy_reply(in->element[i], out.elements[i], budget)) return false;
      return true;
    }
    default: return false;
  }
}

/// One command awaiting its reply; owned by the link's waiting list until the callback runs.
struct redis_op {
  void (*complete)(redis_op*, std::error_code, reply&&) = nullptr;  // posts the handler; once
  void (*destroy)(redis_op*) = nullptr;
  std::chrono::steady_clock::time_point deadline;
  bool done = false;
};

template <class Handler, class Executor>
struct redis_op_impl final : redis_op {
  Handler handler;
  Executor ex;
  redis_op_impl(Handler&& h, Executor e) : handler(std::move(h)), ex(std::move(e)) {
    complete = &redis_op_impl::do_complete;
    destroy = &redis_op_impl::do_destroy;
  }
  static void do_complete(redis_op* base, std::error_code ec, reply&& r) {
    auto* self = static_cast<redis_op_impl*>(base);
    self->done = true;
    auto hex = asio::get_associated_executor(self->handler, self->ex);
    asio::post(self->ex, asio::bind_executor(hex, [h = std::move(self->handler), ec, r = std::move(r)]() mutable {
                 std::move(h)(ec, std::move(r));
               }));
  }
  static void do_destroy(redis_op* base) { delete static_cast<redis_op_impl*>(base); }
};

}  // namespace detail

class redis_client {
public:
  using executor_type = asio::any_io_executor;
  using message_handler = std::function<void(std::string_view channel, std::string_view payload)>;
  using state_handler = std::function<void(bool up)>;

  struct counters {
    std::uint64_t commands = 0;    ///< sent
    std::uint64_t failed = 0;      ///< completed with an error (not_connected included)
    std::uint64_t timeouts = 0;
    std::uint64_t connects = 0;    ///< times the client came up
    std::uint64_t messages = 0;    ///< pub/sub messages delivered to handlers
  };

  redis_client(executor_type ex, redis_options opts, const observe::logger* log = nullptr)
      : ex_(std::move(ex)), opt_(std::move(opts)), log_(log), timer_(ex_), cmd_timer_(ex_),
        backoff_(opt_.reconnect_min), alive_(std::make_shared<bool>(true)) {}

  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  ~redis_client() {
    *alive_ = false;
    stopping_ = true;
    free_contexts();
  }

  executor_type get_executor() const noexcept { return ex_; }
  const redis_options& options() const noexcept { return opt_; }
  const std::string& key_prefix() const noexcept { return opt_.key_prefix; }
  /// Connected, authenticated and answering: commands are sent.
  bool ready() const noexcept { return phase_ == phase::up; }
  const counters& stats() const noexcept { return stats_; }

  /// Starts connecting (from the executor's thread, or before the executor runs).
  void start() {
    if (phase_ != phase::stopped) return;
    stopping_ = false;
    if (opt_.tls != nullptr && !opt_.tls->verify() && log_ != nullptr)
      log_->warn("redis TLS without verifying the server's certificate (tls.verify: false)", {{"redis", endpoint_text()}});
    connect();
  }

  /// Closes both connections; pending commands complete with error::disconnected, later ones
  /// with error::not_connected.
  void stop() {
    stopping_ = true;
    const bool was_up = phase_ == phase::up;
    phase_ = phase::stopped;
    timer_.cancel();
    cmd_timer_.cancel();
    free_contexts();
    if (was_up) notify(false);
  }

  /// Called with true when the client comes up, false when it goes down (not for each failed attempt).
  void on_state(state_handler h) { state_handlers_.push_back(std::move(h)); }

  /// Called with the reason each time an attempt to come up fails while the client is not up
  /// (the first connect at start included; each retry of the back-off too).
  void on_connect_failed(std::function<void(std::string_view why)> h) { failed_handlers_.push_back(std::move(h)); }

  /// Called with a channel's name each time Redis confirms its SUBSCRIBE (after subscribe(),
  /// and again after each reconnect): from then on, what is published there reaches this client.
  void on_subscribed(std::function<void(std::string_view channel)> h) { subscribed_handlers_.push_back(std::move(h)); }

  /// Sends one command (pipelined with the others of this loop pass). Completion: (error_code, reply).
  template <class Token>
  auto async_command(std::span<const std::string_view> args, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, reply)>(
        [self = this](auto handler, std::span<const std::string_view> a) { self->start_command(std::move(handler), a); }, token, args);
  }
  template <class Token>
  auto async_command(std::initializer_list<std::string_view> args, Token&& token) {
    return async_command(std::span<const std::string_view>(args.begin(), args.size()), std::forward<Token>(token));
  }

  /// Calls `h(channel, payload)` for each message on `channel` (full name, prefix included).
  /// The first subscription to a channel sends SUBSCRIBE; a reconnect sends it again.
  std::uint64_t subscribe(std::string channel, message_handler h) {
    const std::uint64_t id = ++last_sub_id_;
    auto& ids = channels_[channel];
    const bool first = ids.empty();
    ids.push_back(id);
    subs_.emplace(id, sub_entry{channel, std::move(h)});
    if (first && sub_ != nullptr && sub_ready_) send_sub("SUBSCRIBE", {&channel, 1});
    return id;
  }

  /// Ends one subscription; the last one of a channel sends UNSUBSCRIBE.
  void unsubscribe(std::uint64_t id) {
    auto it = subs_.find(id);
    if (it == subs_.end()) return;
    std::string channel = std::move(it->second.channel);
    subs_.erase(it);
    auto c = channels_.find(channel);
    if (c == channels_.end()) return;
    std::erase(c->second, id);
    if (!c->second.empty()) return;
    channels_.erase(c);
    if (sub_ != nullptr && sub_ready_) send_sub("UNSUBSCRIBE", {&channel, 1});
  }

  /// Channels with at least one local subscription.
  std::size_t channel_count() const noexcept { return channels_.size(); }

private:
  enum class phase : std::uint8_t { stopped, connecting, up, backoff };

  struct sub_entry {
    std::string channel;
    message_handler handler;
  };

  template <class Handler>
  void start_command(Handler&& handler, std::span<const std::string_view> args) {
    using op_t = detail::redis_op_impl<std::decay_t<Handler>, executor_type>;
    auto* op = new op_t(std::move(handler), ex_);
    auto fail = [&](error e) {
      ++stats_.failed;
      op->complete(op, e, reply{});
      op->destroy(op);
    };
    if (phase_ != phase::up || cmd_ == nullptr) return fail(error::not_connected);
    if (pending_.size() >= opt_.max_pending) return fail(error::overloaded);
    op->deadline = std::chrono::steady_clock::now() + opt_.command_timeout;
    if (!cmd_->send(args, &redis_client::on_reply, op)) return fail(error::disconnected);
    ++stats_.commands;
    pending_.push_back(op);
    arm_command_timer();
  }

  // A user command's reply (r == nullptr: the context is being freed).
  static void on_reply(detail::redis_link& link, const redisReply* r, void* priv) {
    auto* self = static_cast<redis_client*>(link.owner());
    auto* op = static_cast<detail::redis_op*>(priv);
    if (self != nullptr) {
      if (!self->pending_.empty() && self->pending_.front() == op) self->pending_.pop_front();
      else std::erase(self->pending_, op);
    }
    if (!op->done) {
      reply out;
      std::error_code ec;
      if (r == nullptr) ec = error::disconnected;
      else {
        std::size_t budget = self != nullptr ? self->opt_.max_reply_elements : 0;
        if (!detail::copy_reply(r, out, budget)) ec = error::bad_reply;
        else if (out.is_error()) ec = error::server_error;
      }
      if (ec && self != nullptr) ++self->stats_.failed;
      op->complete(op, ec, std::move(out));
    }
    op->destroy(op);
  }

  void arm_command_timer() {
    if (timer_armed_ || pending_.empty()) return;
    timer_armed_ = true;
    cmd_timer_.expires_at(pending_.front()->deadline);
    cmd_timer_.async_wait([this, alive = alive_](std::error_code) {
      if (!*alive) return;
      timer_armed_ = false;
      check_deadlines();
    });
  }

  void check_deadlines() {
    const auto now = std::chrono::steady_clock::now();
    bool late = false;
    for (detail::redis_op* op : pending_) {
      if (op->deadline > now) break;
      if (!op->done) {
        ++stats_.timeouts;
        ++stats_.failed;
        op->complete(op, error::timeout, reply{});
      }
      late = true;
    }
    if (late) return lost("no reply within command_timeout");
    arm_command_timer();
  }

  // An address, or a name resolved here (start-up, and again only while it does not resolve),
  // never on a worker's hot path.
  bool resolve() {
    if (resolved_) return true;
    std::error_code ec;
    auto addr = asio::ip::make_address(opt_.host, ec);
    if (ec) {
      asio::ip::tcp::resolver res(ex_);
      auto results = res.resolve(opt_.host, std::to_string(opt_.port), ec);
      if (ec || results.empty()) return false;
      addr = results.begin()->endpoint().address();
    }
    endpoint_ = asio::ip::tcp::endpoint(addr, opt_.port);
    return resolved_ = true;
  }

  void connect() {
    if (stopping_) return;
    phase_ = phase::connecting;
    cmd_ok_ = sub_ready_ = false;
    if (!resolve()) return lost("cannot resolve " + opt_.host);
    cmd_ = open_link();
    sub_ = open_link();
    handshake(*cmd_, &redis_client::on_cmd_handshake);
    handshake(*sub_, &redis_client::on_sub_handshake);
    timer_.expires_after(opt_.connect_timeout);
    timer_.async_wait([this, alive = alive_](std::error_code ec) {
      if (!*alive || ec || phase_ != phase::connecting) return;
      lost("no answer within connect_timeout");
    });
  }

  std::shared_ptr<detail::redis_link> open_link() {
    const detail::redis_link::hooks h{.owner = this, .push = &redis_client::on_push, .lost = &redis_client::on_link_lost};
    auto l = std::make_shared<detail::redis_link>(ex_, opt_.tls.get(), opt_.tls_name, h);
    l->open(endpoint_);
    return l;
  }

  void handshake(detail::redis_link& l, detail::redis_link::reply_fn fn) {
    if (!opt_.password.empty()) {
      const std::string_view with_user[] = {"AUTH", opt_.user, opt_.password};
      const std::string_view alone[] = {"AUTH", opt_.password};
      if (!opt_.user.empty()) l.send(with_user, fn, nullptr);
      else l.send(alone, fn, nullptr);
    }
    static char ping_tag = 0;
    const std::string_view ping[] = {"PING"};
    l.send(ping, fn, &ping_tag);
  }

  // Handshake replies: privdata null for AUTH, non-null for the PING that ends the handshake.
  static void handshake_reply(detail::redis_link& link, const redisReply* rep, void* priv, bool is_sub) {
    auto* self = static_cast<redis_client*>(link.owner());
    if (self == nullptr || rep == nullptr) return;
    if (&link != (is_sub ? self->sub_ : self->cmd_).get()) return;
    if (rep->type == REDIS_REPLY_ERROR) {
      std::string text(rep->str, std::min<std::size_t>(rep->len, 200));
      const bool auth = priv == nullptr || text.find("NOAUTH") != std::string::npos;
      self->post_lost(auth ? "AUTH refused: " + text : "handshake refused: " + text);
      return;
    }
    if (priv == nullptr) return;  // AUTH ok; PING follows
    if (is_sub) {
      self->sub_ready_ = true;
      self->resubscribe();
    } else {
      self->cmd_ok_ = true;
    }
    self->maybe_up();
  }
  static void on_cmd_handshake(detail::redis_link& l, const redisReply* r, void* priv) { handshake_reply(l, r, priv, false); }
  static void on_sub_handshake(detail::redis_link& l, const redisReply* r, void* priv) { handshake_reply(l, r, priv, true); }

  void resubscribe() {
    std::vector<std::string> batch;
    for (const auto& [channel, ids] : channels_) {
      batch.push_back(channel);
      if (batch.size() == 256) {
        send_sub("SUBSCRIBE", batch);
        batch.clear();
      }
    }
    if (!batch.empty()) send_sub("SUBSCRIBE", batch);
  }

  void send_sub(std::string_view verb, std::span<const std::string> channels) {
    std::vector<std::string_view> args;
    args.reserve(channels.size() + 1);
    args.push_back(verb);
    for (const auto& c : channels) args.push_back(c);
    sub_->send(args, nullptr, nullptr);  // (no callback: the confirmation comes as a push, on_push)
  }

  // A reply no command waits for: on the subscriber, a SUBSCRIBE confirmation or a message; on
  // the command connection, a protocol fault.
  static void on_push(void* owner, detail::redis_link& link, const redisReply& r) {
    auto* self = static_cast<redis_client*>(owner);
    if (&link != self->sub_.get()) return self->post_lost("a reply no command waited for");
    const redisReply* rep = &r;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) return;
    const redisReply* kind = rep->element[0];
    const redisReply* chan = rep->element[1];
    const redisReply* data = rep->element[2];
    if (kind->type == REDIS_REPLY_STRING && chan->type == REDIS_REPLY_STRING &&
        std::string_view(kind->str, kind->len) == "subscribe") {
      auto alive = self->alive_;
      for (auto& h : self->subscribed_handlers_) {
        h(std::string_view(chan->str, chan->len));
        if (!*alive) return;
      }
      return;
    }
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING || data->type != REDIS_REPLY_STRING) return;
    if (std::string_view(kind->str, kind->len) != "message") return;
    std::string_view channel(chan->str, chan->len), payload(data->str, data->len);
    auto it = self->channels_.find(std::string(channel));
    if (it == self->channels_.end()) return;
    // Handlers may (un)subscribe: call them by id from a copy of the list.
    const std::vector<std::uint64_t> ids = it->second;
    auto alive = self->alive_;
    for (std::uint64_t id : ids) {
      auto s = self->subs_.find(id);
      if (s == self->subs_.end()) continue;
      ++self->stats_.messages;
      s->second.handler(channel, payload);
      if (!*alive) return;
    }
  }

  void maybe_up() {
    if (phase_ != phase::connecting || !cmd_ok_ || !sub_ready_) return;
    phase_ = phase::up;
    timer_.cancel();
    backoff_ = opt_.reconnect_min;
    ++stats_.connects;
    if (log_ != nullptr && (logged_down_ || stats_.connects == 1))
      log_->info("redis connected", {{"redis", endpoint_text()}});
    logged_down_ = false;
    notify(true);
  }

  // A connection failed (refused, TLS refused, EOF, error): the client resets both.
  static void on_link_lost(void* owner, detail::redis_link& link, std::string why) {
    auto* self = static_cast<redis_client*>(owner);
    if (&link != self->cmd_.get() && &link != self->sub_.get()) return;
    self->post_lost(std::move(why));
  }

  void post_lost(std::string why) {
    asio::post(ex_, [this, alive = alive_, why = std::move(why), gen = gen_] {
      if (!*alive || gen != gen_) return;
      lost(why);
    });
  }

  // Any failure: drop both connections, fail what is pending, wait, try again.
  void lost(std::string_view why) {
    if (stopping_ || phase_ == phase::backoff || phase_ == phase::stopped) return;
    const bool was_up = phase_ == phase::up;
    ++gen_;
    phase_ = phase::backoff;
    free_contexts();
    if (log_ != nullptr && !logged_down_) {
      log_->warn("redis unavailable: using local state until it returns",
                 {{"redis", endpoint_text()}, {"reason", why}});
      logged_down_ = true;
    }
    if (was_up) notify(false);
    else
      for (auto& h : failed_handlers_) h(why);
    timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, opt_.reconnect_max);
    timer_.async_wait([this, alive = alive_](std::error_code ec) {
      if (!*alive || ec || phase_ != phase::backoff) return;
      connect();
    });
  }

  void free_contexts() {
    sub_ready_ = cmd_ok_ = false;
    if (auto c = std::exchange(cmd_, nullptr)) c->close();  // fails pending commands
    if (auto s = std::exchange(sub_, nullptr)) s->close();
    pending_.clear();
    cmd_timer_.cancel();
  }

  void notify(bool up) {
    for (auto& h : state_handlers_) h(up);
  }

  std::string endpoint_text() const { return opt_.host + ":" + std::to_string(opt_.port); }

  executor_type ex_;
  redis_options opt_;
  const observe::logger* log_;
  asio::steady_timer timer_;      // connect timeout, back-off
  asio::steady_timer cmd_timer_;  // the oldest pending command's deadline
  std::chrono::milliseconds backoff_;
  std::shared_ptr<bool> alive_;
  bool resolved_ = false;
  asio::ip::tcp::endpoint endpoint_;
  std::shared_ptr<detail::redis_link> cmd_;
  std::shared_ptr<detail::redis_link> sub_;
  phase phase_ = phase::stopped;
  std::uint64_t gen_ = 0;
  bool cmd_ok_ = false, sub_ready_ = false, stopping_ = false, timer_armed_ = false;
  bool logged_down_ = false;
  std::deque<detail::redis_op*> pending_;
  std::unordered_map<std::string, std::vector<std::uint64_t>> channels_;
  std::unordered_map<std::uint64_t, sub_entry> subs_;
  std::uint64_t last_sub_id_ = 0;
  std::vector<state_handler> state_handlers_;
  std::vector<std::function<void(std::string_view)>> subscribed_handlers_;
  std::vector<std::function<void(std::string_view)>> failed_handlers_;
  counters stats_;
};

}  // namespace rproxy::cluster
