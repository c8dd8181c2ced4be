// rproxy/net/listener.hpp: a TCP listener with one acceptor per worker (SO_REUSEPORT).
//
// Every worker io_context gets its own acceptor bound to the same address, so the kernel spreads
// new connections over the workers and each flow lives on the worker that accepted it. Each
// accepted socket (TCP_NODELAY set by default) goes to a copy of the handler on that worker,
// called as handler(socket) or, if it takes them, handler(socket, accepted_endpoints) with the
// peer and local addresses (known from accept(2) and the bind: no getpeername/getsockname):
//
//     auto l = rproxy::net::listen(pool, {asio::ip::make_address("::"), 25565},
//                                  [](asio::ip::tcp::socket s) { start_flow(std::move(s)); });
//     if (!l) throw std::system_error(l.error());     // startup: bind failed, ...
//     pool.start();
//     ...
//     l->close();                                     // stop accepting (graceful drain)
//
// When accept runs out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the acceptor
// waits (backoff_min, doubling up to backoff_max) and retries instead of spinning or dying; each
// such failure is counted (stats().exhausted, and process-wide in fd_exhaustion, fd_limit.hpp)
// and logged, rate-limited, by the app kit (app/fd_watch.hpp).
// Per-connection errors the kernel reports through accept (ECONNABORTED, EPROTO, ...) are skipped.
// An IPv6 address listens IPv6-only unless options.v6_only is false. Port 0 picks a free port
// once; every worker then binds that port (see local_endpoint()).
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/net/detail/reactor_wait.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/fd_limit.hpp>
#include <rproxy/net/io_pool.hpp>

namespace rproxy::net {

struct listener_options {
  int backlog = asio::socket_base::max_listen_connections;
  bool reuse_port = true;  ///< SO_REUSEPORT; needed for more than one worker
  bool no_delay = true;    ///< TCP_NODELAY on accepted sockets
  bool v6_only = true;     ///< for IPv6 addresses: "::" takes IPv6 only
  std::chrono::milliseconds backoff_min{10};
  std::chrono::milliseconds backoff_max{1000};
};

/// Counters summed over the workers (read with relaxed atomics: a snapshot, not a barrier).
struct listener_stats {
  std::uint64_t accepted = 0;     ///< sockets handed to the handler
  std::uint64_t exhausted = 0;    ///< accepts that hit a descriptor/memory limit (each backs off)
  std::uint64_t skipped = 0;      ///< per-connection accept errors skipped (ECONNABORTED, ...)
};

/// The addresses of an accepted connection.
struct accepted_endpoints {
  asio::ip::tcp::endpoint remote;  ///< the peer, as accept(2) reported it
  asio::ip::tcp::endpoint local;   ///< the address the client connected to
};

namespace detail {

/// SO_REUSEPORT as an asio socket option (asio has none).
class reuse_port_option {
public:
  explicit reuse_port_option(bool on) noexcept : value_(on ? 1 : 0) {}
  template <class Protocol> int level(const Protocol&) const noexcept { return SOL_SOCKET; }
  template <class Protocol> int name(const Protocol&) const noexcept { return SO_REUSEPORT; }
  template <class Protocol> const int* data(const Protocol&) const noexcept { return &value_; }
  template <class Protocol> std::size_t size(const Protocol&) const noexcept { return sizeof(value_); }

private:
  int value_;
};

/// accept() out of descriptors or memory: retrying at once would spin.
inline bool accept_exhausted(const std::error_code& ec) noexcept {
  switch (system_errno(ec)) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM: return true;
    default: return false;
  }
}

/// Errors of one pending connection that Linux reports through accept(2) (see its man page):
/// skip that connection and accept the next.
inline bool accept_transient(const std::error_code& ec) noexcept {
  switch (system_errno(ec)) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:  // refused by a firewall rule
    case EINTR:
    case EAGAIN:
    case ECONNRESET:
    case ETIMEDOUT: return true;
    default: return false;
  }
}

/// One worker's acceptor and accept loop. Shared with its pending handlers, so the listener can
/// go away while a worker still has an accept in flight.
template <class Handler>
class accept_loop : public std::enable_shared_from_this<accept_loop<Handler>> {
public:
  /// Connections accepted in one turn of the event loop before the worker's flows run. One,
  /// as asio's own accept loop does: with more, a burst of connections (10,000 players logging
  /// in at once) has more flows in flight at a time, and the memory they used while in flight
  /// stays in the process's RSS after they idle (measured: 1,770 -> 2,150 bytes per idle
  /// player with 64). An empty backlog costs one accept4 (EAGAIN) per turn either way.
  static constexpr int max_batch = 1;

  accept_loop(asio::io_context& ctx, Handler handler, const listener_options& opts)
      : socket_(ctx), timer_(ctx), handler_(std::move(handler)), opts_(opts),
        backoff_(opts.backoff_min) {}

  std::error_code open(const asio::ip::tcp::endpoint& ep) {
    std::error_code ec;
    socket_.open(ep.protocol(), ec);
    if (!ec) socket_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && opts_.reuse_port) socket_.set_option(reuse_port_option(true), ec);
    if (!ec && ep.address().is_v6()) socket_.set_option(asio::ip::v6_only(opts_.v6_only), ec);
    // Linux: accepted sockets inherit TCP_NODELAY from the listening socket (one call per
    // listener instead of one per connection).
    if (!ec && opts_.no_delay) socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    if (!ec) socket_.bind(ep, ec);
    if (!ec && ::listen(socket_.native_handle(), opts_.backlog) != 0)
      ec = std::error_code(errno, asio::error::get_system_category());
    if (!ec) socket_.native_non_blocking(true, ec);  // accept4 says EAGAIN when the backlog is empty
    if (ec) {
      std::error_code ignored;
      socket_.close(ignored);
      return ec;
    }
    bound_ = socket_.local_endpoint(ec);
    where_ = bound_.address().is_v6() ? "[" + bound_.address().to_string() + "]" : bound_.address().to_string();
    where_ += ":" + std::to_string(bound_.port());
    return ec;
  }

  asio::ip::tcp::endpoint local_endpoint() const {
    std::error_code ec;
    return socket_.local_endpoint(ec);
  }

  /// Starts the loop on the worker's thread.
  void start() {
    asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->accept(); });
  }

  /// Stops accepting; safe from any thread (runs on the worker).
  void close() {
    asio::post(socket_.get_executor(), [self = this->shared_from_this()] {
      self->closed_ = true;
      std::error_code ignored;
      self->socket_.close(ignored);
      self->timer_.cancel();
    });
  }

  listener_stats stats() const noexcept {
    return {accepted_.load(std::memory_order_relaxed), exhausted_.load(std::memory_order_relaxed),
            skipped_.load(std::memory_order_relaxed)};
  }

private:
  /// Accepts from the backlog (accept4: non-blocking, close-on-exec sockets, so no ioctl per
  /// connection) until EAGAIN, then waits for the next connection without re-arming the
  /// listening socket (detail/reactor_wait.hpp). Every max_batch connections it lets the
  /// worker's other handlers run first (a post).
  void accept() {
    for (int i = 0; i < max_batch; ++i) {
      if (closed_) return;
      sockaddr_storage sa{};
      socklen_t len = sizeof(sa);
      const int fd = ::accept4(socket_.native_handle(), reinterpret_cast<sockaddr*>(&sa), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) return wait();
        if (!on_error(std::error_code(e, asio::error::get_system_category()))) return;  // backing off
        continue;
      }
      asio::ip::tcp::socket s(socket_.get_executor());
      std::error_code ec;
      s.assign(bound_.protocol(), fd, ec);  // (registers it with the reactor)
      if (ec) {
        ::close(fd);
        if (!on_error(ec)) return;
        continue;
      }
      adopt_fresh(s);
      backoff_ = opts_.backoff_min;
      accepted_.fetch_add(1, std::memory_order_relaxed);
      if constexpr (std::is_invocable_v<Handler&, asio::ip::tcp::socket, const accepted_endpoints&>) {
        accepted_endpoints eps{{}, bound_};
        std::memcpy(eps.remote.data(), &sa, std::min<std::size_t>(len, eps.remote.capacity()));
        eps.remote.resize(len);
        if (bound_.address().is_unspecified()) {  // a wildcard bind: ask which address
          std::error_code ignored;
          eps.local = s.local_endpoint(ignored);
        }
        handler_(std::move(s), eps);
      } else {
        handler_(std::move(s));
      }
    }
    asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->accept(); });
  }

  /// accept4 said EAGAIN just now: wait for the next connection.
  void wait() {
    async_wait_drained(socket_, asio::socket_base::wait_read, [self = this->shared_from_this()](std::error_code ec) {
      if (self->closed_ || ec == asio::error::operation_aborted) return;
      if (ec && !self->on_error(ec)) return;
      self->accept();
    });
  }

  /// An accept that failed: true to go on accepting now (one connection's error, skipped);
  /// false when the loop backs off (out of descriptors or memory, or unexpected) and resumes
  /// from the timer.
  bool on_error(const std::error_code& ec) {
    if (accept_transient(ec)) {
      skipped_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    // Out of descriptors or memory, or something unexpected: wait, never spin.
    if (accept_exhausted(ec)) {
      exhausted_.fetch_add(1, std::memory_order_relaxed);
      fd_exhaustion::global().record(ec, where_);
    }
    timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, opts_.backoff_max);
    timer_.async_wait([self = this->shared_from_this()](std::error_code tec) {
      if (!tec) self->accept();
    });
    return false;
  }

  asio::ip::tcp::socket socket_;  // the listening socket (a socket, so that it can wait without re-arming)
  asio::steady_timer timer_;
  Handler handler_;
  listener_options opts_;
  std::chrono::milliseconds backoff_;
  asio::ip::tcp::endpoint bound_;  // the bound address (with the real port)
  std::string where_;              // bound_ for logs
  bool closed_ = false;
  std::atomic<std::uint64_t> accepted_{0}, exhausted_{0}, skipped_{0};
};

}  // namespace detail

namespace detail {
struct listener_key {};  // only listen() builds a listener
}  // namespace detail

/// The acceptors of one listening address, one per worker. Movable; destroying it closes it.
template <class Handler>
class listener {
public:
  using loop_ptr = std::shared_ptr<detail::accept_loop<Handler>>;

  listener(std::vector<loop_ptr> loops, const asio::ip::tcp::endpoint& ep, detail::listener_key)
      : loops_(std::move(loops)), endpoint_(ep) {}
  listener(listener&&) noexcept = default;
  listener& operator=(listener&& o) noexcept {
    if (this != &o) {
      close();
      loops_ = std::move(o.loops_);
      endpoint_ = o.endpoint_;
      open_ = std::exchange(o.open_, false);
    }
    return *this;
  }
  ~listener() { close(); }

  /// The bound address (with the real port when port 0 was asked for).
  const asio::ip::tcp::endpoint& local_endpoint() const noexcept { return endpoint_; }

  /// Stops accepting on every worker; safe from any thread. Takes effect on each worker's next
  /// turn (a connect racing with it may still be accepted); flows already accepted go on.
  void close() {
    if (!std::exchange(open_, false)) return;
    for (auto& l : loops_) l->close();
  }

  bool is_open() const noexcept { return open_; }

  listener_stats stats() const noexcept {
    listener_stats s;
    for (const auto& l : loops_) {
      const auto one = l->stats();
      s.accepted += one.accepted;
      s.exhausted += one.exhausted;
      s.skipped += one.skipped;
    }
    return s;
  }

  /// Sockets accepted by one worker, in the order of the contexts given to listen().
  std::uint64_t accepted(std::size_t worker) const {
    return loops_.at(worker)->stats().accepted;
  }

private:
  std::vector<loop_ptr> loops_;
  asio::ip::tcp::endpoint endpoint_;
  bool open_ = true;
};

/// Binds one acceptor per context to `ep` and starts accepting (the loops run once the contexts
/// run). Each context gets its own copy of `handler`, called as `handler(asio::ip::tcp::socket)`
/// on that context's thread. Fails (nothing left bound) if any bind fails.
template <class Handler>
result<listener<std::decay_t<Handler>>> listen(std::span<asio::io_context* const> contexts,
                                               asio::ip::tcp::endpoint ep, Handler&& handler,
                                               const listener_options& opts = {}) {
  using loop_t = detail::accept_loop<std::decay_t<Handler>>;
  static_assert(std::is_invocable_v<std::decay_t<Handler>&, asio::ip::tcp::socket> ||
                    std::is_invocable_v<std::decay_t<Handler>&, asio::ip::tcp::socket,
                                        const accepted_endpoints&>,
                "rproxy::net::listen: the handler must be callable as handler(asio::ip::tcp::socket) "
                "or handler(asio::ip::tcp::socket, const accepted_endpoints&)");
  static_assert(std::is_copy_constructible_v<std::decay_t<Handler>>,
                "rproxy::net::listen: the handler must be copyable (each worker gets a copy)");
  if (contexts.empty()) return failure(std::make_error_code(std::errc::invalid_argument));
  if (contexts.size() > 1 && !opts.reuse_port)
    return failure(std::make_error_code(std::errc::invalid_argument));

  std::vector<std::shared_ptr<loop_t>> loops;
  for (asio::io_context* ctx : contexts) {
    auto loop = std::make_shared<loop_t>(*ctx, handler, opts);
    if (auto ec = loop->open(ep)) return failure(ec);  // the loops so far close as they die
    if (loops.empty()) ep = loop->local_endpoint();   // fixes port 0 for the other workers
    loops.push_back(std::move(loop));
  }
  for (auto& loop : loops) loop->start();
  return listener<std::decay_t<Handler>>(std::move(loops), ep, detail::listener_key{});
}

/// One acceptor per worker of `pool`.
template <class Handler>
result<listener<std::decay_t<Handler>>> listen(io_pool& pool, const asio::ip::tcp::endpoint& ep,
                                               Handler&& handler, const listener_options& opts = {}) {
  std::vector<asio::io_context*> contexts;
  for (std::size_t i = 0; i < pool.size(); ++i) contexts.push_back(&pool.context(i));
  return listen(std::span<asio::io_context* const>(contexts), ep, std::forward<Handler>(handler),
                opts);
}

/// A single acceptor on one context.
template <class Handler>
result<listener<std::decay_t<Handler>>> listen(asio::io_context& ctx,
                                               const asio::ip::tcp::endpoint& ep,
                                               Handler&& handler, const listener_options& opts = {}) {
  asio::io_context* one[] = {&ctx};
  return listen(std::span<asio::io_context* const>(one), ep, std::forward<Handler>(handler), opts);
}

}  // namespace rproxy::net
