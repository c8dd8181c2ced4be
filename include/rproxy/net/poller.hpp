// rproxy/net/poller.hpp: long-lived connections watched by one epoll set per io_context, outside
// asio's reactor, so that an idle connection costs only its own object.
//
// asio keeps, for every socket it watches, a descriptor state (168 bytes, from a pool that
// gives nothing back) and, for every pending wait, an operation (64 bytes and more). A
// connection that idles for minutes (a WebSocket session) needs neither: it joins the worker's
// poller, whose one epoll set reports readiness straight to the connection (registered once,
// edge-triggered, for input and output), and asio watches only the set's own descriptor.
//
//     struct conn : net::poller::watcher { net::polled_stream s; ... };
//     auto& p = asio::use_service<net::poller>(ioc);
//     p.add(c.s.native_handle(), c, &conn::on_event, ec);   // EPOLL_CTL_ADD
//     // on_event(p, c, events): EPOLLIN / EPOLLOUT / EPOLLHUP / EPOLLERR / EPOLLRDHUP bits;
//     // the watcher reads or writes until EAGAIN, as with any edge-triggered descriptor
//     p.remove(c);  c.s.close(ec);                         // the end (same call chain)
//
// The costs against asio's own registration: EPOLL_CTL_DEL when a socket leaves asio
// (polled_stream::adopt), EPOLL_CTL_ADD when it joins, and one epoll_wait(2) per batch of
// events. A watcher that is removed during a batch gets no event still in that batch. When the
// io_context shuts down, every watcher still in the set gets on_event(abandoned) once (it lets go
// of what its waits held, posts nothing); with no watcher left the set's wait is cancelled, so an
// io_context with no connections runs out of work as before. One io_context, its own thread.
#pragma once

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <rproxy/net/detail/reactor_wait.hpp>

#if !defined(RPROXY_NET_REACTOR_WAIT)
#include <asio/posix/stream_descriptor.hpp>
#endif

namespace rproxy::net {

class poller final : public asio::execution_context::service {
public:
  static inline asio::execution_context::id id;
  /// The event a watcher gets once when the io_context shuts down with it still in the set.
  static constexpr std::uint32_t abandoned = 0;
  /// Events that end a wait for input, and for room to write (an error or hang-up ends both:
  /// the next read or write says what happened).
  static constexpr std::uint32_t readable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  static constexpr std::uint32_t writable = EPOLLOUT | EPOLLHUP | EPOLLERR;

  /// A connection's place in the set (a base of the connection: 24 bytes).
  class watcher {
  public:
    using callback = void (*)(poller&, watcher&, std::uint32_t events);
    watcher() = default;
    watcher(const watcher&) = delete;
    watcher& operator=(const watcher&) = delete;
    bool watched() const noexcept { return on_event_ != nullptr; }

  private:
    friend class poller;
    watcher* prev_ = nullptr;
    watcher* next_ = nullptr;
    callback on_event_ = nullptr;
  };

  explicit poller(asio::io_context& ioc)
      : asio::execution_context::service(ioc), ioc_(ioc), epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
#if defined(RPROXY_NET_REACTOR_WAIT)
    reactor_ = &asio::use_service<asio::detail::epoll_reactor>(ioc);
    if (reactor_->register_descriptor(epfd_, reactor_data_) != 0) {
      ::close(epfd_);
      throw std::system_error(errno, std::generic_category(), "poller: registering its epoll descriptor");
    }
#else
    desc_.assign(epfd_);
#endif
  }
  poller(const poller&) = delete;
  poller& operator=(const poller&) = delete;
  ~poller() override {
#if defined(RPROXY_NET_REACTOR_WAIT)
    if (epfd_ >= 0) ::close(epfd_);  // (its reactor registration went at shutdown)
#endif
  }

  asio::io_context& context() noexcept { return ioc_; }

  /// Watches `fd` (a non-blocking socket) for `w` (not watched yet): on_event(*this, w, events)
  /// for every edge until remove(w). On failure (ec) `w` is not watched.
  void add(int fd, watcher& w, watcher::callback on_event, std::error_code& ec) {
    ec.clear();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &w;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ec.assign(errno, asio::error::get_system_category());
      return;
    }
    w.on_event_ = on_event;
    w.prev_ = nullptr;
    w.next_ = head_;
    if (head_) head_->prev_ = &w;
    head_ = &w;
    wait();
  }

  /// Stops watching `w`. Its descriptor must be closed (or removed with EPOLL_CTL_DEL) before
  /// the io_context runs anything else; events for it still in the batch being delivered are dropped.
  void remove(watcher& w) noexcept {
    if (!w.watched()) return;
    if (w.prev_) w.prev_->next_ = w.next_;
    else head_ = w.next_;
    if (w.next_) w.next_->prev_ = w.prev_;
    w.prev_ = w.next_ = nullptr;
    w.on_event_ = nullptr;
    for (int i = cursor_ + 1; i < batch_size_; ++i)
      if (batch_[i].data.ptr == &w) batch_[i].data.ptr = nullptr;
    if (!head_ && waiting_) cancel_wait();  // nothing to watch: the io_context may run out of work
  }

private:
  /// Waits for the set to have events (it has none now: the last epoll_wait drained it).
  void wait() {
    if (waiting_ || !head_ || shut_down_) return;
    waiting_ = true;
#if defined(RPROXY_NET_REACTOR_WAIT)
    // The set was drained by the last epoll_wait (or is new), so its next edge is new: the
    // reactor's own operation, queued without a re-arm (net/detail/reactor_wait.hpp).
    auto* op = new detail::drained_wait_op<ready_handler>(ready_handler{this});
    detail::drained_wait_starting = static_cast<asio::detail::reactor_op*>(op);
    reactor_->start_op(asio::detail::epoll_reactor::read_op, epfd_, reactor_data_, op, false, true);
    detail::drained_wait_starting = nullptr;
#else
    desc_.async_wait(asio::posix::descriptor_base::wait_read, ready_handler{this});
#endif
  }
  void cancel_wait() noexcept {
#if defined(RPROXY_NET_REACTOR_WAIT)
    reactor_->cancel_ops(epfd_, reactor_data_);
#else
    std::error_code ignored;
    desc_.cancel(ignored);
#endif
  }

  struct ready_handler {
    poller* p;
    void operator()(std::error_code ec) const {
      p->waiting_ = false;
      // Cancelled (no watcher was left) and one joined since: the reactor may have seen the
      // set's edge while no wait was queued, so look rather than wait.
      if (!ec || p->head_) p->deliver();
    }
  };

  /// One batch of events to their watchers. A full batch may have more behind it: the rest is
  /// delivered in a posted handler, after the io_context's other ready work.
  void deliver() {
    int n;
    do n = ::epoll_wait(epfd_, batch_.data(), static_cast<int>(batch_.size()), 0);
    while (n < 0 && errno == EINTR);
    batch_size_ = n > 0 ? n : 0;
    for (cursor_ = 0; cursor_ < batch_size_; ++cursor_) {
      auto* w = static_cast<watcher*>(batch_[cursor_].data.ptr);
      if (w) w->on_event_(*this, *w, batch_[cursor_].events);
    }
    batch_size_ = 0;
    cursor_ = -1;
    if (n == static_cast<int>(batch_.size())) asio::post(ioc_, [this] { deliver(); });
    else wait();
  }

  void shutdown() override {
    shut_down_ = true;
    while (head_) {
      watcher& w = *head_;
      const auto cb = w.on_event_;
      remove(w);
      cb(*this, w, abandoned);
    }
#if defined(RPROXY_NET_REACTOR_WAIT)
    reactor_->deregister_descriptor(epfd_, reactor_data_, true);  // (the pending wait is freed, not run)
    reactor_->cleanup_descriptor_data(reactor_data_);
#else
    std::error_code ignored;
    desc_.close(ignored);
    epfd_ = -1;
#endif
  }

  asio::io_context& ioc_;
  int epfd_;
#if defined(RPROXY_NET_REACTOR_WAIT)
  asio::detail::epoll_reactor* reactor_ = nullptr;
  asio::detail::epoll_reactor::per_descriptor_data reactor_data_ = nullptr;
#else
  asio::posix::stream_descriptor desc_{ioc_};
#endif
  watcher* head_ = nullptr;
  bool waiting_ = false, shut_down_ = false;
  int cursor_ = -1, batch_size_ = 0;
  std::array<epoll_event, 64> batch_{};
};

/// A connected stream socket's descriptor outside asio (what a poller watcher reads and writes):
/// non-blocking system calls with asio's error codes (would_block, eof, the system's), and the
/// io_context it belongs to. Closed on destruction. 16 bytes.
class polled_stream {
public:
  polled_stream() = default;
  /// Takes `s`'s descriptor (open and connected) out of asio's reactor, non-blocking (one
  /// EPOLL_CTL_DEL; none more if it was non-blocking already); `s` is left closed. On failure
  /// (ec) the stream is closed, on `ioc`.
  static polled_stream adopt(asio::ip::tcp::socket& s, asio::io_context& ioc, std::error_code& ec) {
    detail::make_non_blocking(s, ec);
    const int fd = ec ? -1 : s.release(ec);
    return polled_stream(ec ? -1 : fd, ioc);
  }
  polled_stream(polled_stream&& o) noexcept : fd_(std::exchange(o.fd_, -1)), ioc_(o.ioc_) {}
  polled_stream& operator=(polled_stream&& o) noexcept {
    if (this != &o) {
      std::error_code ignored;
      close(ignored);
      fd_ = std::exchange(o.fd_, -1);
      ioc_ = o.ioc_;
    }
    return *this;
  }
  ~polled_stream() {
    if (fd_ >= 0) ::close(fd_);
  }

  int native_handle() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  asio::io_context::executor_type get_executor() const noexcept { return ioc_->get_executor(); }

  std::size_t read_some(asio::mutable_buffer b, std::error_code& ec) {
    for (;;) {
      const ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
      if (n > 0) return ec.clear(), static_cast<std::size_t>(n);
      if (n == 0 && b.size() > 0) return ec = asio::error::eof, 0;
      if (n == 0) return ec.clear(), 0;
      if (errno == EINTR) continue;
      return fail(ec), 0;
    }
  }
  /// One sendmsg(2) of up to 64 buffers (MSG_NOSIGNAL: a closed peer is an error, not a signal).
  template <class Buffers>
  std::size_t write_some(const Buffers& bufs, std::error_code& ec) {
    std::array<iovec, 64> iov;
    std::size_t n = 0;
    for (const asio::const_buffer& b : bufs) {
      if (n == iov.size()) break;
      iov[n++] = {const_cast<void*>(b.data()), b.size()};
    }
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = n;
    for (;;) {
      const ssize_t w = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
      if (w >= 0) return ec.clear(), static_cast<std::size_t>(w);
      if (errno == EINTR) continue;
      return fail(ec), 0;
    }
  }
  /// The descriptor is non-blocking already (adopt made it so).
  void non_blocking(bool, std::error_code& ec) noexcept { ec.clear(); }
  void shutdown(asio::socket_base::shutdown_type what, std::error_code& ec) noexcept {
    if (::shutdown(fd_, static_cast<int>(what)) != 0) fail(ec);
    else ec.clear();
  }
  void close(std::error_code& ec) noexcept {
    ec.clear();
    if (fd_ < 0) return;
    ::close(std::exchange(fd_, -1));  // (the descriptor is released whatever close(2) says)
  }

private:
  polled_stream(int fd, asio::io_context& ioc) noexcept : fd_(fd), ioc_(&ioc) {}
  static void fail(std::error_code& ec) noexcept { ec.assign(errno, asio::error::get_system_category()); }

  int fd_ = -1;
  asio::io_context* ioc_ = nullptr;
};

}  // namespace rproxy::net
