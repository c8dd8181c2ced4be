// rproxy/net/relay.hpp: relay bytes both ways between a client stream and a backend stream.
//
//     rproxy::net::relay_options o;
//     o.idle_timeout = 5min;
//     o.initial_to_backend = replayed_handshake;             // written to the backend first
//     rproxy::net::async_relay(client, backend, std::move(o),
//         [](std::error_code ec, rproxy::net::relay_stats st) {
//           if (ec == rproxy::condition::upstream) ...;      // backend reset, died mid-stream
//           log(st.bytes_client_to_backend, st.bytes_backend_to_client);
//         });
//
// Semantics (the same on both paths):
// - half-close: eof from one side becomes shutdown(send) on the other, and the other direction
//   goes on until it ends too; the relay succeeds once both directions have ended that way.
//   The streams are then left open (both half-closed) for the caller to close, or closed by
//   the relay (options.close_at_end).
// - backpressure: one buffer per direction (options.buffer_size); a direction reads again only
//   once everything it read was written, so memory per flow is bounded and a slow consumer
//   slows its producer down.
// - between TCP sockets small messages are copied, big ones spliced: a burst (what a direction
//   moves from its source turning readable to the source running dry) starts with one recv(2)
//   of up to relay_copy_below bytes into this thread's scratch space and a send(2) of them
//   (cheaper than splice(2) into a pipe and out again for a request or a small response, and
//   no pipe taken); a read that fills the scratch space turns the rest of the burst to splice.
//   Without splice (options.splice false) every read is copied that way, 16 KiB at a time.
// - idle cost: between TCP sockets a direction holds its pipe or buffer only while bytes move.
//   It takes one from this thread's relay_pool (relay_pool.hpp) when its source turns readable
//   and gives it back once all it read was written; a pipe with bytes still in it stays until
//   drained. An idle relay of two sockets holds no pipe and no buffer (other streams keep one
//   pooled buffer per direction for the relay's life). Slow-consumer policy: a peer that takes no byte for idle_timeout
//   (as any silent flow) ends the relay with error::idle_timeout.
//   The idle timeout holds no timer per relay: when the client stream's executor is an
//   io_context's, the relay is an entry of that io_context's idle_sweep (idle_sweep.hpp: one
//   timer for all, and it may fire up to idle_timeout/64 late); on any other executor (a strand)
//   the relay keeps a timer of its own. With options.close_at_end, two TCP sockets on an
//   io_context's thread are watched straight from the reactor's epoll set
//   (detail/epoll_watch.hpp): an idle relay then holds neither asio's per-socket state nor a
//   pending operation per direction, only its own object.
// - errors: the first I/O error ends the relay at once, closes both streams (cancelling the
//   other side) and completes with client_* (downstream) or backend_* (upstream), see
//   classify() in error.hpp; stats.cause keeps the original error, the counters what was moved.
// - Per-operation cancellation (asio cancellation slots) ends it with operation_aborted.
// - Its state is allocated with the completion handler's associated allocator (a spawned flow
//   gives it room in the flow's own block: flow/serve.hpp), and freed before the handler runs.
// The buffered path works over any AsyncStream (TLS, test::stream). When both streams are TCP
// sockets on Linux it uses splice(2) instead (splice.hpp), unless options.splice is false; if
// a pipe cannot be had or splice(2) refuses the descriptors that direction falls back to copying.
// That path leaves both sockets in non-blocking mode (asio's own operations do not mind).
//
// Both streams must outlive the operation, and their handlers must not run concurrently (one
// io_context per thread, or a strand as the client's executor). Intermediate handlers run on the
// client stream's executor.
#pragma once

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/basic_stream_socket.hpp>
#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>
#include <asio/system_executor.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rproxy/net/detail/epoll_watch.hpp>
#include <rproxy/net/detail/reactor_wait.hpp>
#include <rproxy/net/detail/stream_ops.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>
#include <rproxy/net/relay_options.hpp>
#include <rproxy/net/relay_pool.hpp>
#include <rproxy/net/splice.hpp>

#if defined(__linux__)
#include <sys/socket.h>
#endif

namespace rproxy::net {

/// Splice path: a burst's reads of up to this many bytes are copied (recv + send), a read that
/// fills it turns the rest of the burst to splice(2) (see the top of this file).
inline constexpr std::size_t relay_copy_below = 16 * 1024;

struct relay_stats {
  std::uint64_t bytes_client_to_backend = 0;  ///< client bytes the backend accepted
  std::uint64_t bytes_backend_to_client = 0;  ///< backend bytes the client accepted
  bool spliced = false;  ///< both directions ran on splice(2) to the end
  std::error_code cause;  ///< the unclassified error behind a failed relay, if any
};

/// How the relay half-closes and closes a stream. The default finds shutdown(shutdown_send, ec),
/// close(ec) / close() or next_layer() (see detail/stream_ops.hpp); specialize for a stream that
/// needs more (a TLS stream that should send close_notify).
template <class Stream>
struct stream_traits {
  static void shutdown_send(Stream& s, std::error_code& ec) { detail::shutdown_send(s, ec); }
  static void close(Stream& s) noexcept { detail::close(s); }
};

namespace detail {

struct probe_rw_handler {
  void operator()(std::error_code, std::size_t) const {}
};

template <class S>
concept relay_stream = requires(S& s, asio::mutable_buffer mb, asio::const_buffer cb) {
  s.get_executor();
  s.async_read_some(mb, probe_rw_handler{});
  s.async_write_some(cb, probe_rw_handler{});
};

template <class T>
struct is_tcp_socket : std::false_type {};
template <class Ex>
struct is_tcp_socket<asio::basic_stream_socket<asio::ip::tcp, Ex>> : std::true_type {};

/// Allocates an operation at its own size. asio's default recycles per-thread blocks, and an
/// operation that stays pending (an idle flow's wait) may then hold a block of twice its size.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  friend bool operator==(const exact_allocator&, const exact_allocator&) noexcept { return true; }
};

/// A handler whose operation is allocated with exact_allocator (asio::bind_allocator would add
/// the binder and a second executor to the operation: 64 bytes more).
template <class H>
struct exactly_allocated {
  H handler;
  using allocator_type = exact_allocator<void>;
  allocator_type get_allocator() const noexcept { return {}; }
  template <class... Args>
  void operator()(Args&&... args) { handler(std::forward<Args>(args)...); }
};

#if defined(__linux__)
/// recv(2) and send(2) without blocking, again after a signal: bytes moved, or -1 and errno.
inline ssize_t recv_nowait(int fd, char* p, std::size_t n) noexcept {
  ssize_t r;
  do r = ::recv(fd, p, n, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  return r;
}
inline ssize_t send_nowait(int fd, const char* p, std::size_t n, int flags = 0) noexcept {
  ssize_t r;
  do r = ::send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL | flags);
  while (r < 0 && errno == EINTR);
  return r;
}
#endif

template <class Client, class Backend>
inline constexpr bool both_tcp_sockets = splice_available && is_tcp_socket<Client>::value && is_tcp_socket<Backend>::value;

/// A relay's parts for epoll_watch, between TCP sockets only (N: 0 and 1 its sockets' operations,
/// 2 its place in the set); nothing otherwise.
template <int N>
struct no_watch_part {};
template <class Owner, int N, bool On>
using watch_part = std::conditional_t<!On, no_watch_part<N>,
                                      std::conditional_t<N == 2, epoll_watch::member, epoll_watch::op<Owner, N>>>;

template <class Client, class Backend, class Handler>
class relay_op : private idle_sweep::entry,
                 public watch_part<relay_op<Client, Backend, Handler>, 0, both_tcp_sockets<Client, Backend>>,  // the client's readiness
                 public watch_part<relay_op<Client, Backend, Handler>, 1, both_tcp_sockets<Client, Backend>>,  // the backend's
                 private watch_part<relay_op<Client, Backend, Handler>, 2, both_tcp_sockets<Client, Backend>> {
  using clock = std::chrono::steady_clock;
  static constexpr bool can_splice = both_tcp_sockets<Client, Backend>;
  /// What a direction waits for while its sockets are watched (epoll_watch).
  enum : std::uint8_t { no_wait = 0, wait_in = 1, wait_out = 2 };

  /// A direction's bytes in flight (56 bytes: its sizes in 32 bits, its flags apart, with the
  /// relay's own).
  struct direction {
    std::unique_ptr<char[]> buf;  // buffered path: held while bytes move (see pump); buffer_size_ bytes
    const char* wptr = nullptr;  // bytes read and not yet written
    std::error_code deferred;  // a read error that came with bytes: handled once they are written
    splice_pipe pipe;          // splice path: held while bytes move, or while in_pipe > 0
    std::uint32_t wlen = 0;
    std::uint32_t in_pipe = 0;
  };
  struct direction_flags {
    bool spliced = false;
    bool bulk = false;   // splice path: this burst filled the scratch space, splice the rest
    bool tried = false;  // splice(2) worked once: no falling back after that
    bool counting = true;
    bool done = false;  // eof relayed
    bool read_on = false;  // watched: a short read may leave bytes or the end behind (epoll_watch::read_on)
  };

public:
  relay_op(Client& c, Backend& b, relay_options&& o, Handler&& h)
      : client_(c), backend_(b), opts_(o), handler_(std::move(h)),
        work_(make_work(handler_, c.get_executor())), same_executor_(same_executor(c, b)),
        drained_ok_(same_executor_ && io_context_of(c.get_executor()) != nullptr), splice_(o.splice),
        close_at_end_(o.close_at_end), buffer_size_(static_cast<std::uint32_t>(o.buffer_size)) {}

  ~relay_op() {
    if (own_timer_) delete timer_;
    else if (sweep_) sweep_->remove(*this);
  }
  relay_op(const relay_op&) = delete;
  relay_op& operator=(const relay_op&) = delete;

  void start() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
      slot.assign([this](asio::cancellation_type) { fail(asio::error::operation_aborted, {}); });
    // Started on the client's io_context thread (a flow handing its sockets over): begin now,
    // saving a trip through the event loop. Never complete inside this call, though: a relay
    // that ended already with nothing pending completes from a post.
    if (auto* ioc = io_context_of(client_.get_executor()); ioc && ioc->get_executor().running_in_this_thread()) {
      ++pending_;
      begin();
      --pending_;
      if (finished_ && watched_) unwatch();  // (it posts the end)
      if (finished_ && pending_ == 0) asio::post(client_.get_executor(), wrap([] {}));
      return;
    }
    asio::post(client_.get_executor(), wrap([this] { begin(); }));
  }

private:
  using executor_type = typename Client::executor_type;
  /// A handler with an executor of its own gets a work guard on it; one without runs on the
  /// client's executor, which the relay's pending operations keep busy anyway (as asio's own
  /// operations do): no guard, 64 bytes less per relay.
  static constexpr bool own_executor =
      !std::is_same_v<asio::associated_executor_t<Handler, asio::system_executor>, asio::system_executor>;
  struct no_work {};
  using work_type = std::conditional_t<own_executor,
      asio::executor_work_guard<asio::associated_executor_t<Handler, executor_type>>, no_work>;
  static work_type make_work(const Handler& h, const executor_type& ex) {
    if constexpr (own_executor) return work_type(asio::get_associated_executor(h, ex));
    else return no_work{};
  }

  template <int D> auto& src() noexcept { if constexpr (D == 0) return client_; else return backend_; }
  template <int D> auto& dst() noexcept { if constexpr (D == 0) return backend_; else return client_; }
  template <int D> static constexpr side src_side = D == 0 ? side::downstream : side::upstream;
  template <int D> static constexpr side dst_side = D == 0 ? side::upstream : side::downstream;
  template <int D> std::uint64_t& bytes() noexcept {
    return bytes_[D];
  }

  /// Every intermediate handler: counted while pending, a no-op once the relay has finished,
  /// and completing the relay when it was the last one. It runs where the operation completes:
  /// for the client's socket, the timer and posts, the client's executor (see start_on).
  template <class F>
  auto wrap(F f) {
    return [ref = pending_ref(this), f](auto... args) mutable {
      relay_op* op = ref.release();
      --op->pending_;
      if (!op->finished_) f(args...);
      op->leave();
    };
  }

  /// Starts an operation on stream `s` as start(handler), the handler wrap(f). An operation on
  /// the backend completes on the backend's executor: when that is not the client's, the
  /// handler is bound to the client's. (Unbound, a pending operation holds no executor copy:
  /// about 100 bytes less per idle direction.)
  template <class S, class Start, class F>
  void start_on(S& s, Start start, F f) {
    start_handler_on(s, std::move(start), wrap(std::move(f)));
  }
  template <class S, class Start, class H>
  void start_handler_on(S& s, Start start, H h) {
    if (static_cast<void*>(&s) == static_cast<void*>(&client_) || same_executor_) start(std::move(h));
    else start(asio::bind_executor(client_.get_executor(), std::move(h)));
  }

  /// The same executor, or (executor types that differ, as any_io_executor and
  /// io_context::executor_type) the same io_context: handlers may run on either.
  static bool same_executor(Client& c, Backend& b) {
    if constexpr (std::is_same_v<typename Client::executor_type, typename Backend::executor_type>) {
      return c.get_executor() == b.get_executor();
    } else {
      auto* ioc = io_context_of(c.get_executor());
      return ioc != nullptr && ioc == io_context_of(b.get_executor());
    }
  }

  /// Counts one pending intermediate handler. A handler destroyed without being invoked (its
  /// io_context shut down with the relay still running) abandons the relay: the last one frees
  /// it, and with it the completion handler, uncalled, as asio does with its own operations.
  class pending_ref {
  public:
    explicit pending_ref(relay_op* op) noexcept : op_(op) { ++op_->pending_; }
    pending_ref(pending_ref&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
    pending_ref(const pending_ref&) = delete;
    pending_ref& operator=(const pending_ref&) = delete;
    pending_ref& operator=(pending_ref&&) = delete;
    ~pending_ref() {
      if (op_ && --op_->pending_ == 0) destroy(op_);
    }
    relay_op* release() noexcept { return std::exchange(op_, nullptr); }

  private:
    relay_op* op_;
  };

  /// The handler of a wait, which may pend for as long as the flow idles: wrap()'s work with
  /// nothing but the relay's counted reference (8 bytes, not wrap's 16), so that with asio's
  /// 64-byte reactor_op the operation takes an 80-byte heap block rather than 96.
  template <int D, bool Readable>
  struct wait_handler {
    pending_ref ref;
    void operator()(std::error_code ec) {
      relay_op* op = ref.release();
      --op->pending_;
      if (!op->finished_) op->template on_wait<D, Readable>(ec);
      op->leave();
    }
  };

  void begin() {
    if constexpr (can_splice) {
      if (splice_) setup_splice();
      if (close_at_end_ && drained_ok_) watch();
    }
    if (opts_.idle_timeout > clock::duration::zero()) start_idle();
    if (opts_.initial_to_backend) {
      auto& d = dirs_[0];
      flags_[0].counting = false;
      d.wptr = opts_.initial_to_backend->data();
      d.wlen = static_cast<std::uint32_t>(opts_.initial_to_backend->size());
      write<0>();
    } else {
      pump<0>();
    }
    // The backend has most likely sent nothing yet: wait for it rather than try a read that
    // would fail (a wait re-arms the descriptor, so bytes already there complete it at once;
    // so does watch()'s EPOLL_CTL_MOD).
    if constexpr (can_splice) {
      if (watched_) waiting_[1] = wait_in;
      else wait<1, true>();
    } else {
      pump<1>();
    }
  }

  /// Moves what the source has now: spliced, or read without blocking (TCP), or an async read.
  template <int D> void pump() {
    if (finished_) return;
    if constexpr (can_splice) {
      return flags_[D].bulk ? splice_in<D>() : copy_in<D>();
    } else {
      read<D>();
    }
  }

  relay_pool& pool() noexcept { return relay_pool::local(); }

  /// Gives a direction's pipe or buffer back to the pool (a pipe only when it is empty).
  template <int D> void release() noexcept {
    auto& d = dirs_[D];
    if (d.buf) pool().give_buffer({std::move(d.buf), buffer_size_});
    if (d.pipe.is_open()) {
      if (d.in_pipe == 0) pool().give_pipe(std::move(d.pipe));
      else pool().forget_pipe(std::move(d.pipe));
    }
  }

  // --- buffered path -------------------------------------------------------------------------
  template <int D> void read() {
    auto& d = dirs_[D];
    if (!d.buf) d.buf = pool().take_buffer(buffer_size_).data;
    start_on(src<D>(), [&](auto h) { src<D>().async_read_some(asio::buffer(d.buf.get(), buffer_size_), std::move(h)); },
             [this](std::error_code ec, std::size_t n) { on_read<D>(ec, n); });
  }

  template <int D> void on_read(const std::error_code& ec, std::size_t n) {
    auto& d = dirs_[D];
    if (n == 0) return on_read_end<D>(ec ? ec : asio::error::eof);  // 0 bytes, no error: eof
    touch();
    d.wptr = d.buf.get();
    d.wlen = static_cast<std::uint32_t>(n);
    d.deferred = ec;
    write<D>();
  }

  template <int D> void on_read_end(const std::error_code& ec) {
    if (ec == asio::error::eof) {
      release<D>();
      return half_close<D>();
    }
    fail(classify(ec, src_side<D>), ec);
  }

  template <int D> void write() {
    if constexpr (can_splice)
      if (watched_) return send_now<D>();
    start_on(dst<D>(), [&](auto h) { dst<D>().async_write_some(asio::buffer(dirs_[D].wptr, dirs_[D].wlen), std::move(h)); },
             [this](std::error_code ec, std::size_t n) { on_write<D>(ec, n); });
  }

  template <int D> void on_write(const std::error_code& ec, std::size_t n) {
    auto& d = dirs_[D];
    if (n > 0) {
      touch();
      d.wptr += n;
      d.wlen -= static_cast<std::uint32_t>(n);
      if (flags_[D].counting) bytes<D>() += n;
    }
    if (ec) return fail(classify(ec, dst_side<D>), ec);
    if (d.wlen > 0) return write<D>();
    if (!flags_[D].counting) {  // the initial bytes are out: relay the client from now on
      flags_[D].counting = true;
      opts_.initial_to_backend.reset();
      return pump<D>();
    }
    if (d.deferred) return on_read_end<D>(std::exchange(d.deferred, {}));
    pump<D>();
  }

  template <int D> void half_close() {
    flags_[D].done = true;
    std::error_code ignored;  // a peer already gone shows up on the other direction
    using dst_t = std::remove_reference_t<decltype(dst<D>())>;
    const bool last = flags_[0].done && flags_[1].done;
    if (!(last && close_at_end_ && is_tcp_socket<dst_t>::value))
      stream_traits<dst_t>::shutdown_send(dst<D>(), ignored);
    if (last) {
      finished_ = true;
      stop_idle();
    }
  }

  // --- splice path (both streams are TCP sockets) --------------------------------------------
  /// Pipes are taken per burst (splice_in), so this only makes both sockets non-blocking
  /// (splice(2) on a socket blocks otherwise); asio's connect already did it for a backend.
  void setup_splice() {
    std::error_code ec;
    make_non_blocking(client_, ec);  // (no system call for a socket from accept4 or connect)
    if (!ec) make_non_blocking(backend_, ec);
    if (ec) return;
    for (auto& f : flags_) f.spliced = true;
    ignore_sigpipe();
  }

  template <int D> void splice_in() {
    auto& d = dirs_[D];
    if (!d.pipe.is_open()) {
      auto p = pool().take_pipe(buffer_size_);
      if (!p) return fall_back<D>();  // out of descriptors: copy through a buffer instead
      d.pipe = std::move(*p);
    }
    for (int round = 0; round < 16; ++round) {
      const auto r = splice_some(src<D>().native_handle(), d.pipe.write_fd(), d.pipe.capacity());
      if (r.ec == asio::error::would_block) {
        pool().give_pipe(std::move(d.pipe));  // empty: splice_out drained it
        flags_[D].bulk = false;               // the burst is over: the next starts with a copy
        return wait<D, true, true>();
      }
      if (r.ec && !flags_[D].tried && splice_refused(r.ec)) return fall_back<D>();
      if (r.ec) return fail(classify(r.ec, src_side<D>), r.ec);
      flags_[D].tried = true;
      if (r.bytes == 0) {
        release<D>();
        return half_close<D>();
      }
      touch();
      d.in_pipe = static_cast<std::uint32_t>(r.bytes);  // (at most the pipe's capacity)
      if (!splice_out<D>()) return;  // waiting for room, or failed
    }
    // Moved a lot in one go: let the other flows of this thread run first.
    asio::post(client_.get_executor(), wrap([this] { splice_in<D>(); }));
  }

  /// Between TCP sockets, a burst's small reads (and every read without splice): what the
  /// source has, up to relay_copy_below bytes (or the buffer size, if smaller), read into this
  /// thread's scratch space and sent on at once, so an idle direction holds no buffer. With
  /// splice, a read that fills it turns the rest of the burst to splice(2). Bytes the sink
  /// cannot take now go to a pooled buffer and out as on the buffered path (its completion
  /// pumps again).
  template <int D> void copy_in() {
#if defined(__linux__)
    auto& d = dirs_[D];
    if (d.buf) pool().give_buffer({std::move(d.buf), buffer_size_});  // a write of the rest is done
    const std::size_t size = std::min<std::size_t>(relay_copy_below, buffer_size_);
    char* scratch = pool().scratch(size);
    for (int round = 0; round < 16; ++round) {
      ssize_t n = recv_nowait(src<D>().native_handle(), scratch, size);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return wait<D, true, true>();
      if (n < 0) return on_read_end<D>(std::error_code(errno, asio::error::get_system_category()));
      if (n == 0) return on_read_end<D>(asio::error::eof);
      touch();
      // Watched, a short read emptied the socket: no read to see EAGAIN, the next bytes come as
      // a new edge. Unless the events that woke us said otherwise (the peer had shut, or sent
      // urgent data): then read on, and if that is the end, the last bytes and the shutdown
      // leave in one segment.
      bool drained = false, eof = false;
      if (watched_ && static_cast<std::size_t>(n) < size) {
        if (!flags_[D].read_on) drained = true;
        else if (const auto m = recv_nowait(src<D>().native_handle(), scratch + n, size - static_cast<std::size_t>(n)); m == 0) eof = true;
        else if (m > 0) n += m;  // (anything else: the next read says)
      }
      const ssize_t w = send_nowait(dst<D>().native_handle(), scratch, static_cast<std::size_t>(n), eof ? MSG_MORE : 0);
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        const std::error_code ec(errno, asio::error::get_system_category());
        return fail(classify(ec, dst_side<D>), ec);
      }
      const auto sent = static_cast<std::size_t>(w < 0 ? 0 : w);
      bytes<D>() += sent;
      if (sent < static_cast<std::size_t>(n)) {  // the sink is full: keep the rest, write it when it has room
        d.buf = pool().take_buffer(buffer_size_).data;
        std::memcpy(d.buf.get(), scratch + sent, static_cast<std::size_t>(n) - sent);
        d.wptr = d.buf.get();
        d.wlen = static_cast<std::uint32_t>(static_cast<std::size_t>(n) - sent);
        if (eof) d.deferred = asio::error::eof;  // relayed once the rest is out
        return write<D>();
      }
      if (eof) return on_read_end<D>(asio::error::eof);  // (the shutdown sends what MSG_MORE held)
      if (drained) return wait<D, true, true>();
      if (flags_[D].spliced && static_cast<std::size_t>(n) == size) {  // more than a small message: splice the rest
        flags_[D].bulk = true;
        return splice_in<D>();
      }
    }
    asio::post(client_.get_executor(), wrap([this] { pump<D>(); }));  // let the other flows run
#endif
  }

  /// Drains the pipe into the sink; false if it has to wait for room (or failed).
  template <int D> bool splice_out() {
    auto& d = dirs_[D];
    while (d.in_pipe > 0) {
      const auto r = splice_some(d.pipe.read_fd(), dst<D>().native_handle(), d.in_pipe);
      if (r.ec == asio::error::would_block || (!r.ec && r.bytes == 0)) {
        if (r.ec) wait<D, false, true>();
        else wait<D, false>();
        return false;
      }
      if (r.ec) {
        fail(classify(r.ec, dst_side<D>), r.ec);
        return false;
      }
      touch();
      d.in_pipe -= static_cast<std::uint32_t>(r.bytes);
      bytes<D>() += r.bytes;
    }
    return true;
  }

  /// Waits until the source is readable (Readable) or the sink writable. Drained: the caller
  /// has just seen EAGAIN there, so on a plain io_context the wait needs no re-arm of the
  /// descriptor (detail/reactor_wait.hpp): no system call.
  template <int D, bool Readable, bool Drained = false> void wait() {
    if (watched_) {
      // Drained: the next edge is new and comes to on_ready. Else there may be none: look again
      // after the io_context's other work.
      if constexpr (Drained) {
        waiting_[D] = Readable ? wait_in : wait_out;
        if constexpr (!Readable) watch_output<1 - D>();
      }
      else asio::post(client_.get_executor(), wrap([this] { on_wait<D, Readable>({}); }));
      return;
    }
    auto& s = [this]() -> auto& {
      if constexpr (Readable) return src<D>(); else return dst<D>();
    }();
    constexpr auto what = Readable ? asio::socket_base::wait_read : asio::socket_base::wait_write;
    // (The operation is allocated at its own size, exact_allocator: not in a recycled block of
    // a larger one.)
    start_handler_on(s, [&](auto h) {
                       exactly_allocated<decltype(h)> eh{std::move(h)};
                       if constexpr (Drained && has_reactor_wait && is_tcp_socket<std::remove_reference_t<decltype(s)>>::value) {
                         if (!drained_ok_) return s.async_wait(what, std::move(eh));
                         async_wait_drained(s, what, std::move(eh));
                       } else {
                         s.async_wait(what, std::move(eh));
                       }
                     },
                     wait_handler<D, Readable>{pending_ref(this)});
  }

  template <int D, bool Readable> void on_wait(const std::error_code& ec) {
    if (ec) return fail(classify(ec, Readable ? src_side<D> : dst_side<D>), ec);
    if constexpr (Readable) pump<D>();
    else if (watched_ && dirs_[D].wlen > 0) write<D>();  // (a write waits for room this way only when watched)
    else if (splice_out<D>()) splice_in<D>();
  }

  // --- watched sockets (close_at_end between TCP sockets: detail/epoll_watch.hpp) -----------
  using watch_op0 = epoll_watch::op<relay_op, 0>;
  using watch_op1 = epoll_watch::op<relay_op, 1>;
  friend watch_op0;
  friend watch_op1;

  epoll_watch& watch_set() noexcept { return asio::use_service<epoll_watch>(*io_context_of(client_.get_executor())); }

  /// Takes both sockets out of asio's reactor state into the io_context's epoll_watch: from
  /// now on every wait is a flag (waiting_) and the sockets' readiness comes to on_ready. The
  /// watch holds the relay (one pending count) until unwatch().
  void watch() {
    if constexpr (has_epoll_watch && can_splice) {
      auto& set = watch_set();
      if (!set.take(client_, static_cast<watch_op0&>(*this), backend_, static_cast<watch_op1&>(*this))) return;
      set.join(*this, &relay_op::abandon);
      watched_ = true;
      ++pending_;
    }
  }

  /// The relay has finished: closes both sockets, which takes them out of the epoll set, and
  /// lets go of the watch from a posted handler, so that an event the reactor queued for them
  /// before the close runs (and is ignored) while the relay is still there.
  void unwatch() {
    if constexpr (can_splice) {
      watched_ = false;
      waiting_[0] = waiting_[1] = no_wait;
      stream_traits<Client>::close(client_);
      stream_traits<Backend>::close(backend_);
      watch_set().leave(*this);
      asio::post(client_.get_executor(), wrap([] {}));
      --pending_;  // (the post holds the relay now)
    }
  }

  /// Socket S (0: the client, 1: the backend) turned readable or writable: the direction that
  /// reads it or writes to it, if waiting for that, goes on.
  template <int S> void on_ready(std::integral_constant<int, S>, std::uint32_t events) {
    if (!watched_) return;  // finished: queued before the close
    if (events & epoll_watch::read_on) flags_[S].read_on = true;  // (direction S reads socket S)
    ++pending_;
    if ((events & epoll_watch::input) && waiting_[S] == wait_in) {  // direction S reads socket S
      waiting_[S] = no_wait;
      if (!finished_) on_wait<S, true>({});
    }
    if ((events & epoll_watch::output) && waiting_[1 - S] == wait_out) {  // direction 1 - S writes to socket S
      waiting_[1 - S] = no_wait;
      if (!finished_) on_wait<1 - S, false>({});
    }
    --pending_;
    leave();
  }

  /// Socket S (0: the client, 1: the backend) found full: from now on its readiness to write
  /// comes to on_ready too (one EPOLL_CTL_MOD, the first time). A failure shows on the next write.
  template <int S> void watch_output() noexcept {
    if constexpr (has_epoll_watch && can_splice) {
      if (output_watched_ & (1u << S)) return;
      output_watched_ |= 1u << S;
      if constexpr (S == 0) watch_set().watch_output(client_, static_cast<watch_op0&>(*this));
      else watch_set().watch_output(backend_, static_cast<watch_op1&>(*this));
    }
  }

  /// A watched direction's write: now, or once the sink has room.
  template <int D> void send_now() {
#if defined(__linux__)
    auto& d = dirs_[D];
    const ssize_t w = send_nowait(dst<D>().native_handle(), d.wptr, d.wlen);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      waiting_[D] = wait_out;
      return watch_output<1 - D>();
    }
    if (w < 0) return on_write<D>(std::error_code(errno, asio::error::get_system_category()), 0);
    on_write<D>({}, static_cast<std::size_t>(w));
#endif
  }

  /// The io_context shuts down with the relay watched: let go of the idle sweep, then, as the
  /// io_context destroys its queue, free the relay (its handler uncalled, as asio does with its
  /// own operations).
  static void abandon(epoll_watch::member& m, bool free) {
    auto& self = static_cast<relay_op&>(m);
    if (!free) {
      self.stop_idle();
      if (!self.own_timer_) self.sweep_ = nullptr;
      self.watched_ = false;
      return;
    }
    if (--self.pending_ == 0) destroy(&self);
  }

  template <int D> void fall_back() {
    auto& d = dirs_[D];
    flags_[D].spliced = flags_[D].bulk = false;
    if (d.pipe.is_open()) pool().give_pipe(std::move(d.pipe));  // empty: nothing went through it
    copy_in<D>();
  }

  // --- idle timeout, failure, completion -----------------------------------------------------
  /// The idle timer of a relay that has no sweep, and its last activity.
  struct own_timer {
    asio::basic_waitable_timer<clock, asio::wait_traits<clock>, executor_type> timer;
    clock::time_point last;
  };

  /// The io_context's sweep when the client's executor is one, else a timer of our own.
  void start_idle() {
    const auto now = clock::now();
    if (auto* ioc = io_context_of(client_.get_executor())) {
      sweep_ = &asio::use_service<idle_sweep>(*ioc);
      sweep_->add(*this, opts_.idle_timeout, now, [](idle_sweep::entry& e) {
        static_cast<relay_op&>(e).fail(make_error_code(error::idle_timeout), {});  // (ops pending: they complete it)
      });
    } else {
      timer_ = new own_timer{decltype(own_timer::timer)(client_.get_executor()), now};
      own_timer_ = true;
      arm_timer(now + opts_.idle_timeout);
    }
  }

  void touch() noexcept {
    if (own_timer_) timer_->last = clock::now();
    else if (sweep_) sweep_->touch(*this, clock::now());
  }

  void stop_idle() noexcept {
    if (own_timer_) timer_->timer.cancel();
    else if (sweep_) sweep_->remove(*this);
  }

  void arm_timer(clock::time_point at) {
    timer_->timer.expires_at(at);
    timer_->timer.async_wait(wrap([this](std::error_code ec) {
      if (ec) return;
      const auto deadline = timer_->last + opts_.idle_timeout;
      if (clock::now() >= deadline) return fail(make_error_code(error::idle_timeout), {});
      arm_timer(deadline);  // bytes moved meanwhile: wait for the rest of the idle period
    }));
  }

  void fail(const std::error_code& ec, const std::error_code& cause) {
    if (finished_) return;
    finished_ = true;
    result_ = ec;
    cause_ = cause;
    stream_traits<Client>::close(client_);  // cancels whatever is pending on either side
    stream_traits<Backend>::close(backend_);
    stop_idle();
    if (watched_) unwatch();  // (nothing of asio's is pending to end the relay: its post does)
  }

public:
  /// The relay is allocated with its completion handler's associated allocator (a spawned flow
  /// keeps room for it in its own block: flow/serve.hpp).
  using alloc_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler, std::allocator<void>>>::template rebind_alloc<relay_op>;

  static relay_op* make(Client& c, Backend& b, relay_options&& o, Handler&& h) {
    alloc_type a(asio::get_associated_allocator(h, std::allocator<void>()));
    relay_op* p = std::allocator_traits<alloc_type>::allocate(a, 1);
    try {
      return new (p) relay_op(c, b, std::move(o), std::move(h));
    } catch (...) {
      std::allocator_traits<alloc_type>::deallocate(a, p, 1);
      throw;
    }
  }

private:
  /// Frees the relay without completing it. Its handler goes last: it may own the memory the
  /// relay lives in (a spawned flow's room).
  static void destroy(relay_op* op) noexcept {
    alloc_type a(asio::get_associated_allocator(op->handler_, std::allocator<void>()));
    [[maybe_unused]] Handler h(std::move(op->handler_));  // (destroyed at the end)
    op->~relay_op();
    std::allocator_traits<alloc_type>::deallocate(a, op, 1);
  }

  void leave() {
    if (finished_ && watched_) unwatch();
    if (!finished_ || pending_ != 0) return;
    release<0>();
    release<1>();
    if (close_at_end_) {
      stream_traits<Client>::close(client_);
      stream_traits<Backend>::close(backend_);
    }
    asio::get_associated_cancellation_slot(handler_).clear();
    relay_stats stats;
    stats.bytes_client_to_backend = bytes_[0];
    stats.bytes_backend_to_client = bytes_[1];
    stats.spliced = flags_[0].spliced && flags_[1].spliced;
    stats.cause = cause_;
    alloc_type a(asio::get_associated_allocator(handler_, std::allocator<void>()));
    auto h = std::move(handler_);
    auto work = std::move(work_);
    auto ex = [&] {
      if constexpr (own_executor) return work.get_executor();
      else return client_.get_executor();  // (client_ may belong to h: still alive here)
    }();
    const auto ec = result_;
    this->~relay_op();  // free before the upcall, as asio does
    std::allocator_traits<alloc_type>::deallocate(a, this, 1);
    asio::dispatch(ex, [h = std::move(h), ec, stats]() mutable { std::move(h)(ec, stats); });
  }

  Client& client_;
  Backend& backend_;
  /// relay_options, as the relay keeps them (16 bytes rather than 64: an empty string is 32;
  /// its two flags and the buffer size are with the relay's own, at the end).
  struct settings {
    std::unique_ptr<std::string> initial_to_backend;  // none: empty, or written already
    clock::duration idle_timeout;
    explicit settings(relay_options& o)
        : initial_to_backend(o.initial_to_backend.empty() ? nullptr : std::make_unique<std::string>(std::move(o.initial_to_backend))),
          idle_timeout(o.idle_timeout) {}
  };
  settings opts_;
  union {  // (one or the other: own_timer_ says which)
    idle_sweep* sweep_ = nullptr;  // the io_context's idle sweep (we are its entry), or
    own_timer* timer_;             // our own idle timer (a strand's relay), owned
  };
  Handler handler_;
  [[no_unique_address]] work_type work_;
  direction dirs_[2];
  std::uint64_t bytes_[2] = {0, 0};  // client to backend, backend to client (accepted)
  std::error_code cause_;  // the unclassified error behind a failure
  std::error_code result_;
  int pending_ = 0;
  // (The relay's small fields together: 344 bytes in all for two TCP sockets, with its two
  // watch operations and its place in epoll_watch, a 352-byte heap block.)
  direction_flags flags_[2];
  bool finished_ = false;
  bool same_executor_;  // the backend's executor is the client's (or its io_context the client's)
  bool drained_ok_;     // and an io_context's: handlers may run where the reactor completes them
  bool own_timer_ = false;  // timer_, not sweep_
  bool splice_;             // relay_options::splice
  bool close_at_end_;       // relay_options::close_at_end
  bool watched_ = false;    // both sockets are in epoll_watch (their readiness comes to on_ready)
  std::uint8_t waiting_[2] = {no_wait, no_wait};  // per direction, while watched
  std::uint8_t output_watched_ = 0;  // per socket (bit S), watched for room to write too
  std::uint32_t buffer_size_;  // relay_options::buffer_size (async_relay checks that it fits)
};

}  // namespace detail

/// Relays `client` <-> `backend` until both directions end, an error, the idle timeout or
/// cancellation. Completes with (std::error_code, relay_stats); see the top of this file.
template <class Client, class Backend, class Token>
auto async_relay(Client& client, Backend& backend, relay_options options, Token&& token) {
  static_assert(detail::relay_stream<Client> && detail::relay_stream<Backend>,
                "rproxy::net::async_relay: both streams must be AsyncStreams (get_executor, "
                "async_read_some, async_write_some)");
  if (options.buffer_size == 0 || options.buffer_size > UINT32_MAX)
    throw std::invalid_argument("rproxy::net::async_relay: buffer_size must be 1 byte to 4 GiB");
  if (options.initial_to_backend.size() > UINT32_MAX)
    throw std::invalid_argument("rproxy::net::async_relay: initial_to_backend must be under 4 GiB");
  return asio::async_initiate<Token, void(std::error_code, relay_stats)>(
      [](auto handler, Client* c, Backend* b, relay_options o) {
        using op_t = detail::relay_op<Client, Backend, decltype(handler)>;
        op_t::make(*c, *b, std::move(o), std::move(handler))->start();
      },
      token, &client, &backend, std::move(options));
}

}  // namespace rproxy::net
