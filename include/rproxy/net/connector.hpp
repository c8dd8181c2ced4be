// rproxy/net/connector.hpp: connect to a backend by name or address, within one overall timeout.
//
//     rproxy::net::async_connect(ex, "backend.local", 25565, 3s,
//         [](std::error_code ec, asio::ip::tcp::socket s) {
//           if (ec == rproxy::condition::retry_safe) ...;   // refused, timed out: try another
//         });
//     auto [ec, s] = co_await rproxy::net::async_connect(ex, "127.0.0.1", 80, 1s,
//                                                          asio::experimental::as_tuple(asio::use_awaitable));
//
// A host that parses as an IPv4/IPv6 address is not resolved. A name is resolved (asio
// resolver, both families) and each endpoint is tried in turn until one connects; the timeout
// covers resolving and every attempt. Completes with (error_code, tcp::socket): the codes come from
// net::error (connect_refused, connect_timeout, resolve_failed, ... all upstream + retry_safe), the
// socket is open and has TCP_NODELAY set on success, closed otherwise. Per-operation cancellation
// (asio cancellation slots) completes with asio::error::operation_aborted.
// Cost per connect: the socket is made non-blocking and close-on-exec by socket(2) (no ioctl),
// a handshake done within connect(2) (a backend on this host) is taken without a wait in the
// reactor (one poll(2) with no timeout sees it), and on an io_context's executor the timeout is an entry of its idle_sweep (idle_sweep.hpp),
// not a timer per connect; it may then fire up to timeout/64 late.
#pragma once

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/any_io_executor.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/net/detail/reactor_wait.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>

#if defined(__linux__)
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#endif

namespace rproxy::net {

namespace detail {

/// One connect attempt: owns itself, counts its pending intermediate operations (resolve or
/// connect, and the deadline timer) and completes once it is done and none is pending.
template <class Handler>
class connect_op : private idle_sweep::entry {
public:
  using socket_type = asio::ip::tcp::socket;

  connect_op(const asio::any_io_executor& ex, Handler&& h, std::chrono::steady_clock::duration timeout)
      : ex_(ex), resolver_(ex), socket_(ex), timer_(ex), handler_(std::move(h)),
        work_(asio::get_associated_executor(handler_, ex_)), timeout_(timeout) {}

  void start_resolve(std::string host, std::uint16_t port) {
    host_ = std::move(host);
    port_ = port;
    start();
  }
  void start_endpoints(std::vector<asio::ip::tcp::endpoint> eps) {
    endpoints_ = std::move(eps);
    start();
  }

private:
  void start() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
      slot.assign([this](asio::cancellation_type) {
        if (!done_) finish(asio::error::operation_aborted);
      });
    // Begin on the I/O executor, never completing inside the initiating call.
    ++pending_;
    asio::post(ex_, [this] {
      --pending_;
      if (!done_) begin();  // cancelled before it began: complete at once
      leave();
    });
  }

  /// The deadline: an entry of the io_context's idle_sweep (idle_sweep.hpp: no timer of its
  /// own, so no timerfd_settime(2) per connect; it may fire up to timeout/64 late), or on any
  /// other executor (a strand) a timer of its own.
  void begin() {
    auto* ioc = timeout_ > std::chrono::steady_clock::duration::zero() ? detail::io_context_of(ex_) : nullptr;
    if (ioc) {
      sweep_ = &asio::use_service<idle_sweep>(*ioc);
      sweep_->add(*this, timeout_, std::chrono::steady_clock::now(), [](idle_sweep::entry& e) {
        auto& op = static_cast<connect_op&>(e);
        if (!op.done_) op.finish(make_error_code(error::connect_timeout));  // (a connect is pending: it completes us)
      });
    } else {
      ++pending_;
      timer_.expires_after(timeout_);
      timer_.async_wait([this](std::error_code ec) {
        --pending_;
        if (!ec && !done_) finish(make_error_code(error::connect_timeout));
        leave();
      });
    }
    if (!endpoints_.empty()) return try_next();
    ++pending_;
    resolver_.async_resolve(host_, std::to_string(port_), asio::ip::tcp::resolver::numeric_service,
                            [this](std::error_code ec, asio::ip::tcp::resolver::results_type r) {
                              --pending_;
                              on_resolve(ec, std::move(r));
                              leave();
                            });
  }

  void on_resolve(const std::error_code& ec, asio::ip::tcp::resolver::results_type r) {
    if (done_) return;
    if (ec) return finish(ec == asio::error::operation_aborted ? ec : make_error_code(error::resolve_failed));
    for (const auto& e : r) endpoints_.push_back(e.endpoint());
    if (endpoints_.empty()) return finish(make_error_code(error::no_endpoints));
    try_next();
  }

  void try_next() {
    while (next_ < endpoints_.size()) {
      const auto& ep = endpoints_[next_++];
      std::error_code ec;
      socket_.close(ec);
      open(ep.protocol(), ec);
      if (ec) {
        last_ = ec;
        continue;
      }
      ++pending_;
      start_connect(ep);
      return;
    }
    finish(last_ ? classify_connect(last_) : make_error_code(error::no_endpoints));
  }

  /// The socket, made non-blocking and close-on-exec by socket(2) itself (no ioctl after).
  void open(const asio::ip::tcp& protocol, std::error_code& ec) {
#if defined(__linux__)
    const int fd = ::socket(protocol.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
      ec = std::error_code(errno, asio::error::get_system_category());
      return;
    }
    socket_.assign(protocol, fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    detail::adopt_fresh(socket_);
#else
    socket_.open(protocol, ec);
#endif
  }

  /// A non-blocking connect(2), then, unless it is already done, a wait for writability and
  /// SO_ERROR: what asio's async_connect does, with its poll(2) put to use. A handshake that
  /// completes inside connect(2) (a backend on this host: the kernel runs both ends in the
  /// call) is seen by one poll(2) with no timeout, and the flow goes on without a wait in the
  /// reactor: no EPOLL_CTL_MOD for EPOLLOUT (nor the spurious write edges it brings later), no
  /// loop turn, no getsockopt(2). A backend farther away costs that poll(2) more.
  void start_connect(const asio::ip::tcp::endpoint& ep) {
    auto done = [this](std::error_code ec) {
      --pending_;
      on_connect(ec);
      leave();
    };
#if defined(__linux__)
    std::error_code ec;
    detail::make_non_blocking(socket_, ec);
    if (!ec) {
      const int fd = socket_.native_handle();
      if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) == 0) return asio::post(ex_, [done] { done({}); });
      const int e = errno;
      if (e != EINPROGRESS && e != EINTR)  // EINTR: the connect goes on in the background
        return asio::post(ex_, [done, e] { done(std::error_code(e, asio::error::get_system_category())); });
      auto so_error = [fd] {
        int err = 0;
        socklen_t len = sizeof(err);
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        return err ? std::error_code(err, asio::error::get_system_category()) : std::error_code{};
      };
      if (const int ready = connect_settled(fd); ready > 0) {
        // POLLOUT alone: connected. POLLERR or POLLHUP: refused or reset; SO_ERROR says which.
        const std::error_code result = ready == 1 ? std::error_code{} : so_error();
        return asio::post(ex_, [done, result] { done(result); });
      }
      return socket_.async_wait(asio::socket_base::wait_write, [done, so_error](std::error_code ec) {
        if (!ec) ec = so_error();
        done(ec);
      });
    }
#endif
    socket_.async_connect(ep, done);
  }

#if defined(__linux__)
  /// Whether a connect in progress has settled, without waiting: 0 not yet, 1 connected,
  /// 2 failed (SO_ERROR has the cause).
  static int connect_settled(int fd) {
    ::pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 0) != 1) return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return 2;
    return (p.revents & POLLOUT) ? 1 : 0;
  }
#endif

  void on_connect(const std::error_code& ec) {
    if (done_) return;
    if (!ec) {
      std::error_code ignored;
      socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      return finish({});
    }
    last_ = ec;
    try_next();
  }

  void finish(const std::error_code& ec) {
    done_ = true;
    result_ = ec;
    if (sweep_) sweep_->remove(*this);
    else timer_.cancel();
    resolver_.cancel();
    if (ec) {
      std::error_code ignored;
      socket_.close(ignored);
    }
  }

  /// Last statement of every intermediate handler: completes once done and nothing is pending.
  void leave() {
    if (!done_ || pending_ != 0) return;
    asio::get_associated_cancellation_slot(handler_).clear();
    auto h = std::move(handler_);
    auto work = std::move(work_);
    auto ec = result_;
    auto s = std::move(socket_);
    delete this;  // free before the upcall, as asio does
    auto hex = work.get_executor();
    asio::dispatch(hex, [h = std::move(h), ec, s = std::move(s)]() mutable {
      std::move(h)(ec, std::move(s));
    });
  }

  asio::any_io_executor ex_;
  asio::ip::tcp::resolver resolver_;
  socket_type socket_;
  asio::steady_timer timer_;
  Handler handler_;
  asio::executor_work_guard<asio::associated_executor_t<Handler, asio::any_io_executor>> work_;
  std::chrono::steady_clock::duration timeout_;
  std::string host_;
  std::uint16_t port_ = 0;
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  std::size_t next_ = 0;
  std::error_code last_, result_;
  idle_sweep* sweep_ = nullptr;  // the io_context's sweep, holding our deadline
  int pending_ = 0;
  bool done_ = false;
};

}  // namespace detail

/// Resolves `host` (unless it is an address literal) and connects to the first endpoint that
/// answers, all within `timeout`. Completes with (std::error_code, asio::ip::tcp::socket).
template <class Token>
auto async_connect(const asio::any_io_executor& ex, std::string_view host, std::uint16_t port,
                   std::chrono::steady_clock::duration timeout, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, asio::ip::tcp::socket)>(
      [](auto handler, const asio::any_io_executor& ex, std::string host, std::uint16_t port,
         std::chrono::steady_clock::duration timeout) {
        using op_t = detail::connect_op<decltype(handler)>;
        auto* op = new op_t(ex, std::move(handler), timeout);
        std::error_code ec;
        auto addr = asio::ip::make_address(host, ec);
        if (!ec)
          op->start_endpoints({asio::ip::tcp::endpoint(addr, port)});
        else
          op->start_resolve(std::move(host), port);
      },
      token, ex, std::string(host), port, timeout);
}

/// Connects to one known endpoint within `timeout`. Completes with (error_code, tcp::socket).
template <class Token>
auto async_connect(const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep,
                   std::chrono::steady_clock::duration timeout, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, asio::ip::tcp::socket)>(
      [](auto handler, const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep,
         std::chrono::steady_clock::duration timeout) {
        auto* op = new detail::connect_op<decltype(handler)>(ex, std::move(handler), timeout);
        op->start_endpoints({ep});
      },
      token, ex, ep, timeout);
}

}  // namespace rproxy::net
