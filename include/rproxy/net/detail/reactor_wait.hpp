// rproxy/net/detail/reactor_wait.hpp: socket state and waits that cost no system call, for the
// per-connection path (accept, connect, relay). Linux epoll with asio 1.22's reactor.
//
// asio keeps per socket a few flags and the reactor's registration (epoll, edge-triggered).
// Three of its habits cost a system call per connection that a proxy can do without:
// - a socket not known to be non-blocking gets an ioctl(FIONBIO) before its first async
//   operation; a descriptor from accept4(2) or socket(2) with SOCK_NONBLOCK already is:
//   adopt_fresh() records that (and that the descriptor is not a dup, so closing it needs no
//   EPOLL_CTL_DEL: the kernel drops a closed descriptor from the epoll set itself).
// - async_wait re-arms the descriptor (EPOLL_CTL_MOD) on every wait, because readiness seen
//   while no operation was queued is forgotten. A caller that has just seen EAGAIN on the
//   socket knows the next readiness is a new edge, which epoll reports to whatever waits then:
//   async_wait_drained() queues its wait without the re-arm (and without a speculative try).
//   Use it only right after the socket said EAGAIN, with no return to the event loop between.
// Elsewhere (no epoll, another asio) has_reactor_wait is false and callers use asio's own calls.
//
// These reach into asio's detail namespace (base_implementation_type's state_ and
// reactor_data_, epoll_reactor::start_op, reactor_op): the asio version is checked below.
#pragma once

#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/socket_base.hpp>
#include <asio/version.hpp>

#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

#if defined(__linux__) && !defined(ASIO_DISABLE_EPOLL) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT) && \
    ASIO_VERSION >= 102200 && ASIO_VERSION < 102300
#include <asio/detail/epoll_reactor.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/detail/socket_ops.hpp>
#define RPROXY_NET_REACTOR_WAIT 1
#endif

namespace rproxy::net::detail {

#if defined(RPROXY_NET_REACTOR_WAIT)
inline constexpr bool has_reactor_wait = true;

/// The implementation (descriptor, state flags, reactor registration) of an asio socket: a
/// pointer to the protected member, formed in a derived class (no object of it is made).
template <class Socket>
struct socket_access : Socket {
  static auto& impl(Socket& s) noexcept { return (s.*(&socket_access::impl_)).get_implementation(); }
  static auto& service(Socket& s) noexcept { return (s.*(&socket_access::impl_)).get_service(); }
};

template <class Socket>
auto& socket_impl(Socket& s) noexcept {
  return socket_access<Socket>::impl(s);
}

/// Moves `from`'s descriptor, state and reactor registration into `to` (closed), a socket of
/// the same protocol with another executor type on the same io_context (asio's converting move
/// needs an executor convertible to the other; io_context::executor_type is 48 bytes smaller
/// than any_io_executor). No system call. `from` is left closed.
template <class To, class From>
void move_socket(To& to, From& from) noexcept {
  socket_access<To>::service(to).move_assign(socket_impl(to), socket_access<From>::service(from), socket_impl(from));
}

/// `s` was just given a descriptor made with SOCK_NONBLOCK by accept4(2) or socket(2), not a
/// dup of another: asio makes no ioctl to make it non-blocking for its async operations and
/// no EPOLL_CTL_DEL when closing it. (Synchronous operations still block: asio polls.)
template <class Socket>
void adopt_fresh(Socket& s) noexcept {
  auto& impl = socket_impl(s);
  impl.state_ |= asio::detail::socket_ops::internal_non_blocking;
  impl.state_ &= ~asio::detail::socket_ops::possible_dup;
}

/// Puts `s` in non-blocking mode for the caller's own system calls (splice, recv): no system
/// call when its descriptor is non-blocking already.
template <class Socket>
void make_non_blocking(Socket& s, std::error_code& ec) {
  ec = {};
  if (s.native_non_blocking()) return;
  auto& impl = socket_impl(s);
  if (impl.state_ & asio::detail::socket_ops::internal_non_blocking) {
    impl.state_ |= asio::detail::socket_ops::user_set_non_blocking;
    return;
  }
  s.native_non_blocking(true, ec);
}

/// The operation being started on this thread by async_wait_drained (see do_perform).
inline thread_local const void* drained_wait_starting = nullptr;

/// The wait of async_wait_drained: done at the next readiness the reactor reports, never at
/// once. (The reactor may try an operation speculatively while starting it, on the starting
/// thread: that try says "not yet". Any later try comes from a readiness event: done.)
template <class Handler>
class drained_wait_op : public asio::detail::reactor_op {
public:
  explicit drained_wait_op(Handler&& h)
      : reactor_op(std::error_code(), &drained_wait_op::do_perform, &drained_wait_op::do_complete),
        handler_(std::move(h)) {}

private:
  static status do_perform(reactor_op* base) {
    return drained_wait_starting == base ? not_done : done;
  }

  /// Runs the handler (owner set) or only frees the operation (the io_context shuts down).
  static void do_complete(void* owner, asio::detail::scheduler_operation* base, const std::error_code&, std::size_t) {
    std::unique_ptr<drained_wait_op> o(static_cast<drained_wait_op*>(base));
    if (!owner) return;
    auto h = std::move(o->handler_);
    const std::error_code ec = o->ec_;
    o.reset();  // free before the upcall, as asio does
    std::move(h)(ec);
  }

  Handler handler_;
};

/// Waits until `s` (on an io_context executor, used from that io_context's thread) is readable
/// or writable again after the caller saw EAGAIN: handler(error_code) runs on the io_context,
/// never inside this call; operation_aborted when the socket is closed. No system call.
template <class Socket, class Handler>
void async_wait_drained(Socket& s, asio::socket_base::wait_type w, Handler&& handler) {
  using op_t = drained_wait_op<std::decay_t<Handler>>;
  auto& impl = socket_impl(s);
  asio::execution_context& ctx = asio::query(s.get_executor(), asio::execution::context);
  auto& reactor = asio::use_service<asio::detail::epoll_reactor>(ctx);
  const int type = w == asio::socket_base::wait_write ? asio::detail::epoll_reactor::write_op
                                                      : asio::detail::epoll_reactor::read_op;
  auto* op = new op_t(std::forward<Handler>(handler));
  if (!(impl.state_ & asio::detail::socket_ops::non_blocking)) {
    std::error_code ec;  // (as asio's own start: a wait needs the descriptor non-blocking)
    asio::detail::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, ec);
  }
  drained_wait_starting = static_cast<asio::detail::reactor_op*>(op);
  reactor.start_op(type, impl.socket_, impl.reactor_data_, op, false, true);
  drained_wait_starting = nullptr;
}
#else
inline constexpr bool has_reactor_wait = false;

template <class Socket>
void adopt_fresh(Socket&) noexcept {}

template <class Socket>
void make_non_blocking(Socket& s, std::error_code& ec) {
  ec = {};
  if (!s.native_non_blocking()) s.native_non_blocking(true, ec);
}

template <class Socket, class Handler>
void async_wait_drained(Socket& s, asio::socket_base::wait_type w, Handler&& handler) {
  s.async_wait(w, std::forward<Handler>(handler));
}

template <class To, class From>
void move_socket(To& to, From& from) noexcept {  // (two system calls: deregister, register)
  std::error_code ec;
  if (!from.is_open()) return;
  const auto protocol = from.local_endpoint(ec).protocol();
  const auto fd = from.release(ec);
  if (!ec) to.assign(protocol, fd, ec);
}
#endif

}  // namespace rproxy::net::detail
