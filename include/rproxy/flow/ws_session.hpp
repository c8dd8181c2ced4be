// rproxy/flow/ws_session.hpp: one plain-TCP WebSocket connection after the upgrade, driven by
// callbacks rather than a coroutine (flow/ws.hpp's adapter starts it; a TLS stream's session is
// flow/ws_tls_session.hpp). Also what both sessions share: how a refused message is answered
// (on_verdict) and how reading ends (ending::end_reader).
//
// What an idle connection holds, and nothing more: a read-readiness wait on its socket (no
// buffer, no executor: net/detail/reactor_wait.hpp), the session (its flow: context and socket,
// the socket on its io_context's own executor type in a spawned flow; the send queue, empty; the
// frame parser's state, which points to the adapter's options; a pointer to the adapter, whose
// settings every connection shares), and its entry on the worker's idle sweep. When bytes
// arrive it borrows the worker's read buffer, reads, runs each complete message through
// on_message (a message that came whole is not copied) and gives the buffer back; bytes of an
// unfinished frame and a message that came in pieces are kept in a `pending` block allocated
// only while there are any. The frames the stages queued go out together in one non-blocking
// gathered write once the handler is done.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/codec/ws/parser.hpp>
#include <rproxy/flow/ws.hpp>
#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/detail/reactor_wait.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>
#include <rproxy/net/poller.hpp>
#include <rproxy/observe/worker_index.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::flow::ws_detail {

/// A message's verdict: a refusal is noted in the flow (ctx.rejected); a rate-limit refusal
/// under over_limit = drop is counted and the message dropped; any other refusal closes the
/// connection with its code (1008, 1011, 1013, 1009).
template <class Ctx>
void on_verdict(const verdict& v, Ctx& ctx, ws_connection& conn, ws_over_limit over_limit, ws_stats* stats) {
  if (!v.is_reject()) return;
  ctx.rejected = v.reason();
  if (over_limit == ws_over_limit::drop && v.reason().code == reject_code::rate_limited)
    add(stats ? &stats->dropped_over_limit : nullptr);
  else
    conn.close(close_code_for(v.reason().code), v.reason().message);
}

/// How a session's connection ended: which side is done, and the error it ends with (the
/// reader's, else the writer's).
struct ending {
  std::error_code ec;
  bool reader_done = false, writer_done = false;

  /// The reader is done: with `stop`, the writer stops too (an error, EOF); else it ends once
  /// our close frame is out (the close handshake). False: it was done already.
  bool end_reader(ws_connection& conn, std::error_code e, bool stop) {
    if (reader_done) return false;
    reader_done = true;
    if (e) ec = e;  // the reader's error is the flow's
    if (stop) conn.stop();
    else conn.peer_closed();
    return true;
  }
  /// The writer's error, kept unless the reader has one.
  void writer_error(std::error_code e) {
    if (!ec) ec = e;
  }
};

/// The adapter as a session keeps it: a pointer when it outlives the flow, else a copy.
template <class Adapter, bool Copy>
struct adapter_ref {
  const Adapter* p;
  const Adapter& get() const noexcept { return *p; }
};
template <class Adapter>
struct adapter_ref<Adapter, true> {
  Adapter a;
  const Adapter& get() const noexcept { return a; }
};

/// The session's descriptor out of the flow's socket (the flow's executor is an io_context's:
/// the adapter checked). On failure the stream is closed, and the session ends at its start.
inline net::polled_stream adopt(asio::ip::tcp::socket& s) {
  std::error_code ec;
  return net::polled_stream::adopt(s, *net::detail::io_context_of(s.get_executor()), ec);
}

/// A session's owner in a spawned flow: what the flow held, moved in (pipeline, context,
/// socket, done), so the connection is one allocation. The socket's descriptor leaves asio's
/// reactor for the worker's poller (net/poller.hpp: 16 bytes here, and neither asio's
/// descriptor state nor a pending wait per connection); finish() ends the flow as the flow's
/// own finish() would (flow/serve.hpp).
template <class Flow, class Adapter, bool AdapterOutlives>
struct spawned_owner {
  using pipeline_type = std::remove_reference_t<decltype(std::declval<Flow&>().p)>;
  using context_type = decltype(std::declval<Flow&>().ctx);
  using done_type = decltype(std::declval<Flow&>().done);

  spawned_owner(Flow&& f, adapter_ref<Adapter, !AdapterOutlives> ar)
      : p(&f.p), c(std::move(f.ctx)), s(adopt(f.client)), done(std::move(f.done)), a(std::move(ar)) {}
  spawned_owner(spawned_owner&&) = default;

  pipeline_type& pipeline() noexcept { return *p; }
  context_type& ctx() noexcept { return c; }
  net::polled_stream& socket() noexcept { return s; }
  const Adapter& adapter() const noexcept { return a.get(); }
  /// Closes the socket, runs on_close, then tells `done`.
  void finish(const std::error_code& ec) {
    std::error_code ignored;
    s.shutdown(asio::socket_base::shutdown_send, ignored);
    s.close(ignored);
    // Called from a completion, outside any coroutine: a stage's exception here would end
    // the worker's io_context::run(). A bug in one flow must not (as in flow::spawn).
    try {
      p->close(c, ec);
    } catch (const std::exception&) {
    }
    done(ec);
  }

  pipeline_type* p;
  context_type c;
  net::polled_stream s;
  done_type done;
  adapter_ref<Adapter, !AdapterOutlives> a;
};

/// A session's owner in a flow's coroutine (flow::serve): it resumes the coroutine.
template <class Adapter, class Pipeline, class Ctx, class Handler>
struct awaited_owner {
  awaited_owner(const Adapter* ad, Pipeline& pl, Ctx& cx, asio::ip::tcp::socket& sock, Handler hd)
      : a(ad), p(pl), c(cx), s(adopt(sock)), h(std::move(hd)) {}
  awaited_owner(awaited_owner&&) = default;

  const Adapter* a;
  Pipeline& p;
  Ctx& c;
  net::polled_stream s;  ///< the flow's socket's descriptor (adopt(): the flow's socket is left closed)
  Handler h;
  Pipeline& pipeline() noexcept { return p; }
  Ctx& ctx() noexcept { return c; }
  net::polled_stream& socket() noexcept { return s; }
  const Adapter& adapter() const noexcept { return *a; }
  void finish(const std::error_code& ec) { std::move(h)(ec); }
};

/// This thread's read buffer: a session borrows it while it reads and parses, so an idle
/// connection holds none (bytes of an unfinished frame header are kept by the session).
inline std::span<char> read_scratch(std::size_t n) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local std::size_t size = 0;
  if (size < n) {
    buf.reset(new char[n]);
    size = n;
  }
  return {buf.get(), n};
}

/// One WebSocket connection after the upgrade, driven by callbacks: a read-readiness wait
/// (no buffer) while idle, the thread's read buffer while bytes move, the writer flushed in a
/// posted handler after each batch of messages, and every deadline (idle ping, idle close,
/// stalled write, the peer's close) on the io_context's idle sweep (one timer per worker).
/// Pending handlers hold a reference each; the last one gone deletes the session, after
/// finishing the flow (hub detach, on_close) when both sides have ended. The owner gives the
/// adapter (its settings: decoder, hub, stats, timeouts, limits), which outlives the session.
template <class Adapter, class Owner>
class session final : private net::idle_sweep::entry, private net::poller::watcher, private ending {
  using clock = std::chrono::steady_clock;

public:
  session(Owner o, const codec::ws::upgrade_request& up, std::string_view early)
      : owner_(std::move(o)),
        conn_(adapter().send, adapter().stats ? &adapter().stats->send_stats : nullptr),
        parser_(adapter().frames) {
    if (up.deflate) parser_.set_deflate(*up.deflate);
    hold(early.data(), early.size());
  }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() {
    // Still watched only when the io_context is being destroyed with the session (the hub may
    // be gone already): its sweep and poller found through the socket.
    auto& ioc = owner_.socket().get_executor().context();
    if (linked()) asio::use_service<net::idle_sweep>(ioc).remove(*this);
    if (watched()) asio::use_service<net::poller>(ioc).remove(*this);
  }

  void start() {
    auto& s = owner_.socket();  // (non-blocking: reads and writes are tried at once; would_block means wait)
    conn_.set_notify(&session::notified, this);
    auto& ctx = owner_.ctx();
    ctx.worker = static_cast<std::uint16_t>(observe::worker_index() % adapter().hub->workers());  // (its sweep is the socket's: the adapter checked)
    adapter().hub->attach(ctx.worker, conn_);  // (closes it at once if a shutdown has begun)
    ctx.ws = &conn_;
    if (auto* st = adapter().stats) st->open.fetch_add(1, std::memory_order_relaxed);
    std::error_code ec;
    adapter().hub->poller(ctx.worker)->add(s.native_handle(), *this, &session::on_event, ec);
    if (ec) {  // (no descriptor, or none left for the kernel's epoll entry): the first read ends it
      conn_.abort(s);
      ending_().ec = ec;
    }
    arm(lane::idle);
    // A first read at once: frames sent with the upgrade (held), or while the 101 was written.
    asio::post(s.get_executor(), read_handler{keep(this)});
  }

private:
  enum class lane : std::uint8_t { none, idle, write, close };
  enum class step : std::uint8_t { more, paused, ended };

  /// What a connection holds only while bytes wait: read bytes not parsed yet (an unfinished
  /// frame header or control frame), and a message that came in pieces (or waits for an
  /// asynchronous on_message).
  struct pending {
    std::string held, msg;
  };

  /// A pending handler's reference to the session.
  struct keep {
    session* s;
    explicit keep(session* p) noexcept : s(p) { ++s->refs_; }
    /// Takes over a reference counted already (a wait's).
    static keep adopt(session* p) noexcept {
      keep k(p);
      --p->refs_;
      return k;
    }
    keep(keep&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
    keep& operator=(keep&&) = delete;
    ~keep() {
      if (s && --s->refs_ == 0) s->last_ref();
    }
  };
  struct read_handler {
    keep k;
    void operator()(std::error_code ec = {}) { k.s->readable(ec); }
  };
  struct flush_handler {
    keep k;
    void operator()(std::error_code ec = {}) { k.s->write(ec); }
  };

  const Adapter& adapter() const noexcept { return owner_.adapter(); }
  ws_stats* stats() const noexcept { return adapter().stats; }
  /// The worker's idle sweep, the hub's for this worker (the socket's io_context's).
  net::idle_sweep& sweep() noexcept { return *adapter().hub->sweep(owner_.ctx().worker); }

  // --- reading ---------------------------------------------------------------------------
  /// Called only once a read came back short or with would_block (the socket drained, on its
  /// worker's thread): the poller's next edge for the socket resumes the reader (on_event). A
  /// wait is a flag and a reference: nothing allocated.
  void wait_read() {
    if (read_waiting_) return;
    read_waiting_ = true;
    ++refs_;
  }

  /// The poller's events: the waits they end run now (writer first: it frees the queue).
  /// `abandoned`: the io_context is shutting down; the waits' references go, nothing runs.
  static void on_event(net::poller& p, net::poller::watcher& w, std::uint32_t events) {
    auto& s = static_cast<session&>(w);
    if (events == net::poller::abandoned) {
      if (s.linked()) asio::use_service<net::idle_sweep>(p.context()).remove(s);
      keep k(&s);  // (the session may go with the last reference, after both are dropped)
      if (s.take_wait(true)) --s.refs_;
      if (s.take_wait(false)) --s.refs_;
      return;
    }
    keep k(&s);
    if (s.write_waiting_ && (events & net::poller::writable)) {
      s.write_waiting_ = false;
      flush_handler{keep::adopt(&s)}();
    }
    if (s.read_waiting_ && (events & net::poller::readable)) {
      s.read_waiting_ = false;
      read_handler{keep::adopt(&s)}();
    }
  }

  /// The socket was closed (or the writer ended): a pending wait ends with operation_aborted,
  /// in a posted handler (as asio's own waits would).
  void cancel_waits(bool read, bool write) {
    auto ex = owner_.socket().get_executor();
    if (read && take_wait(true))
      asio::post(ex, [h = read_handler{keep::adopt(this)}]() mutable { h(asio::error::operation_aborted); });
    if (write && take_wait(false))
      asio::post(ex, [h = flush_handler{keep::adopt(this)}]() mutable { h(asio::error::operation_aborted); });
  }
  /// Ends the read (or write) wait, if there is one: true if there was (its reference is the caller's).
  bool take_wait(bool read) noexcept {
    const bool was = read ? read_waiting_ : write_waiting_;
    if (read) read_waiting_ = false;
    else write_waiting_ = false;
    return was;
  }
  /// Closes the socket: the connection ends (both sides' waits end).
  void abort() {
    conn_.abort(owner_.socket());
    cancel_waits(true, true);
  }

  void readable(std::error_code ec) {
    if (ending_().reader_done) return;
    if (ec) return end_reader(net::classify(ec, net::side::downstream), true);
    auto& s = owner_.socket();
    const std::size_t held = more_ ? more_->held.size() : 0;
    const std::size_t room = std::max<std::size_t>(adapter().read_buffer, 256);
    auto buf = read_scratch(held + room);
    std::size_t e = held;
    if (held) {
      std::memcpy(buf.data(), more_->held.data(), held);
      more_->held.clear();
    }
    for (int rounds = 0;; ++rounds) {
      std::error_code rec;
      const std::size_t want = buf.size() - e;
      std::size_t n = s.read_some(asio::buffer(buf.data() + e, want), rec);
      if (rec == asio::error::would_block || rec == asio::error::try_again) {
        rec.clear();
        n = 0;
      }
      if (n > 0) {
        e += n;
        owner_.ctx().bytes_from_client += n;
        add(stats() ? &stats()->bytes_in : nullptr, n);
        ping_out_ = false;
        if (lane_ == lane::idle) sweep().touch(*this, clock::now());
      }
      std::size_t b = 0;
      const auto st = parse(buf.data(), b, e);
      if (st == step::ended) return;
      if (st == step::paused) return hold(buf.data() + b, e - b);  // an asynchronous on_message: it resumes
      std::memmove(buf.data(), buf.data() + b, e - b);
      e -= b;
      if (rec) return end_reader(net::classify(rec, net::side::downstream), true);
      if (n < want) break;  // drained (one thread per io_context: later bytes bring a new edge)
      if (rounds == 16) {   // a fast sender: let the worker's other connections run
        hold(buf.data(), e);
        return asio::post(s.get_executor(), read_handler{keep(this)});
      }
    }
    hold(buf.data(), e);
    wait_read();
  }

  /// Parses [b, e) of `buf`, running each complete message through on_message.
  step parse(char* buf, std::size_t& b, std::size_t e) {
    namespace ws = codec::ws;
    for (;;) {
      auto r = parser_.parse(std::span<char>(buf + b, e - b));
      switch (r.what) {
        case ws::event::need_more: b += r.consumed; return step::more;
        case ws::event::data: {
          const bool pieces = more_ && !more_->msg.empty();
          if (!pieces) mop_ = r.op;
          if (conn_.closing()) {
            if (r.last) clear_msg();
            break;
          }
          if (r.last && !pieces) {  // a whole message in the buffer: no copy
            b += r.consumed;
            if (!message(r.data)) return step::ended;
            if (paused_) return step::paused;
            continue;
          }
          pend().msg.append(r.data);
          if (r.last) {
            b += r.consumed;
            if (!message(more_->msg)) return step::ended;
            if (paused_) return step::paused;
            clear_msg();
            continue;
          }
          break;
        }
        case ws::event::ping: conn_.pong(r.data); break;
        case ws::event::pong: ping_out_ = false; break;
        case ws::event::close:
          conn_.close(r.code == ws::close_code::no_status ? 0 : r.code, {});
          end_reader({}, false);  // the writer ends after our close
          return step::ended;
        case ws::event::error:
          add(stats() ? &stats()->protocol_errors : nullptr);
          conn_.close(r.code, make_error_code(r.error).message());
          end_reader(make_error_code(r.error), false);  // no more reading: the connection has failed (RFC 6455 §7.1.7)
          return step::ended;
      }
      b += r.consumed;
      if (paused_) return step::paused;
    }
  }

  /// One message through on_message. False: the flow ended (a stage threw).
  bool message(std::string_view data) {
    add(stats() ? &stats()->messages_in : nullptr);
    using pipeline_type = std::remove_reference_t<decltype(owner_.pipeline())>;
    if constexpr (pipeline_type::is_async(phase::message)) {
      auto& m = pend().msg;
      if (data.data() != m.data()) m.assign(data);
      paused_ = true;
      asio::co_spawn(owner_.socket().get_executor(), run_async(this), [k = keep(this)](std::exception_ptr e, verdict v) {
        k.s->resumed(e, v);
      });
      return true;
    } else {
      try {
        ws_detail::on_verdict(owner_.pipeline().message(owner_.ctx(), adapter().decoder.decode(mop_, data)), owner_.ctx(), conn_,
                              adapter().over_limit, stats());
      } catch (const std::exception&) {
        abort();
        end_reader(make_error_code(net::error::flow_aborted), true);
        return false;
      }
      return true;
    }
  }
  static asio::awaitable<verdict> run_async(session* s) {
    const auto m = s->adapter().decoder.decode(s->mop_, s->more_->msg);
    co_return co_await s->owner_.pipeline().message(s->owner_.ctx(), m);
  }
  void resumed(std::exception_ptr e, verdict v) {
    paused_ = false;
    clear_msg();
    if (e) {
      abort();
      return end_reader(make_error_code(net::error::flow_aborted), true);
    }
    ws_detail::on_verdict(v, owner_.ctx(), conn_, adapter().over_limit, stats());
    readable({});  // what was read behind the message (held), then the socket
  }

  pending& pend() {
    if (!more_) more_ = std::make_unique<pending>();
    return *more_;
  }
  void hold(const char* p, std::size_t n) {
    if (n) pend().held.assign(p, n);
    else release_pending();
  }
  void clear_msg() {
    if (!more_) return;
    more_->msg.clear();
    release_pending();
  }
  /// An empty pending block goes (an idle connection holds none).
  void release_pending() {
    if (more_ && more_->held.empty() && more_->msg.empty()) more_.reset();
  }

  void end_reader(std::error_code ec, bool stop) {
    if (ending_().end_reader(conn_, ec, stop)) more_.reset();
  }

  // --- writing -----------------------------------------------------------------------------
  static void notified(void* p) {
    auto* s = static_cast<session*>(p);
    if (s->write_waiting_) return;  // the writable wait flushes when it completes
    asio::post(s->owner_.socket().get_executor(), flush_handler{keep(s)});
  }

  void write(std::error_code wait_ec) {
    write_waiting_ = false;
    if (ending_().writer_done) return;
    if (wait_ec && wait_ec != asio::error::operation_aborted) {
      abort();
      return end_writer(net::classify(wait_ec, net::side::downstream));
    }
    std::error_code ec;
    switch (conn_.flush(owner_.socket(), ec)) {
      case ws_connection::write_state::done: return end_writer(ec ? net::classify(ec, net::side::downstream) : std::error_code{});
      case ws_connection::write_state::idle: arm(lane::idle); return;
      case ws_connection::write_state::closing: arm(lane::close); return;
      case ws_connection::write_state::blocked:
        arm(lane::write);
        if (!write_waiting_) {  // the poller's next writable edge flushes again (on_event)
          write_waiting_ = true;
          ++refs_;
        }
        return;
    }
  }

  void end_writer(std::error_code ec) {
    ending_().writer_done = true;
    ending_().writer_error(ec);
    arm(lane::none);
    if (!ending_().reader_done) cancel_waits(true, false);  // the writer ended first (a stall, a write error, the close handshake timed out): the read wait completes
  }

  // --- deadlines ---------------------------------------------------------------------------
  /// Puts the session on one lane of the sweep (idle: reads; write: a stalled write; close:
  /// waiting for the peer's close frame), or on none.
  void arm(lane l) {
    if (lane_ == l && l != lane::write) return;
    auto& sw = sweep();
    sw.remove(*this);
    lane_ = l;
    const auto now = clock::now();
    switch (l) {
      case lane::none: break;
      case lane::idle: sw.add(*this, adapter().idle_timeout, now, &session::idle_expired); break;
      case lane::write: sw.add(*this, conn_.limits().write_timeout, now, &session::write_expired); break;
      case lane::close: sw.add(*this, conn_.limits().close_timeout, now, &session::close_expired); break;
    }
  }
  static session& of(net::idle_sweep::entry& e) noexcept { return static_cast<session&>(e); }
  /// No bytes for idle_timeout: a ping; none for another: close 1001.
  static void idle_expired(net::idle_sweep::entry& e) {
    auto& s = of(e);
    s.lane_ = lane::none;
    if (!s.conn_.closing()) {
      if (!s.ping_out_) {
        s.conn_.ping();
        s.ping_out_ = true;
      } else {
        add(s.stats() ? &s.stats()->idle_closes : nullptr);
        s.conn_.close(codec::ws::close_code::going_away, "idle timeout");
      }
    }
    if (s.lane_ == lane::none) s.arm(lane::idle);
  }
  /// A write without progress for write_timeout, or no close frame from the peer within
  /// close_timeout: the connection ends (the socket closed: the pending waits complete).
  static void write_expired(net::idle_sweep::entry& e) {
    of(e).ending_().ec = make_error_code(net::error::idle_timeout);
    of(e).expired();
  }
  static void close_expired(net::idle_sweep::entry& e) { of(e).expired(); }
  void expired() {
    lane_ = lane::none;
    const bool writing = write_waiting_;
    abort();
    if (!writing && !ending_().writer_done) end_writer({});
  }

  // --- the end -----------------------------------------------------------------------------
  void last_ref() {
    if (ending_().reader_done && ending_().writer_done) {
      // Finished: leave the hub and the poller, then on_close (the owner), then the session goes.
      adapter().hub->detach(conn_.id());
      adapter().hub->poller(owner_.ctx().worker)->remove(*this);  // (the owner closes the socket next)
      owner_.ctx().ws = nullptr;
      if (auto* st = stats()) st->open.fetch_sub(1, std::memory_order_relaxed);
      const auto ec = ending_().ec;
      Owner o = std::move(owner_);
      delete this;
      o.finish(ec);
    } else {
      delete this;  // the io_context is being destroyed with the flow: no on_close (as flow::spawn)
    }
  }

  ending& ending_() noexcept { return *this; }

  // The small fields first: they take the tail padding of `ending` (a base, not a member: 8
  // bytes less, and the session one malloc size class smaller), which holds 6 bytes: hence a
  // 16-bit count (a session has a few handlers pending at most) and one byte of flags.
  std::uint16_t refs_ = 0;
  lane lane_ = lane::none;
  codec::ws::opcode mop_ = codec::ws::opcode::text;
  bool ping_out_ : 1 = false, paused_ : 1 = false, write_waiting_ : 1 = false, read_waiting_ : 1 = false;
  Owner owner_;
  std::unique_ptr<pending> more_;  ///< null unless bytes or a message in pieces wait
  ws_connection conn_;
  codec::ws::parser parser_;
};

}  // namespace rproxy::flow::ws_detail

// After `ending` and the plain session, which the TLS session uses.
#include <rproxy/flow/ws_tls_session.hpp>
