// rproxy/net/detail/epoll_watch.hpp: sockets watched straight from asio's own epoll set, with
// no asio state per socket, for connections that may idle for long (the relay's: relay.hpp).
//
// asio keeps, for every socket it knows, a descriptor state (168 bytes, from a pool that gives
// nothing back) and, for every pending wait, an operation (64 bytes and more): over 450 bytes
// for an idle relay of two sockets. A watcher needs neither. take() points each socket's entry
// in the reactor's epoll set (EPOLL_CTL_MOD: one system call per socket) at an operation of the
// watcher's own (`op`, 24 bytes), for input and output, edge-triggered, and gives asio's state
// back. The reactor then queues that operation when the socket turns ready, as it queues its
// own descriptor states (it takes the operation for one: see "the contract" below), and the
// io_context runs it like any handler: on_ready(tag, events) on the watcher. No system call
// and no allocation per wait.
//
//     struct conn : epoll_watch::op<conn, 0>, epoll_watch::op<conn, 1>, epoll_watch::member {
//       void on_ready(std::integral_constant<int, 0>, std::uint32_t events);  // socket a
//       void on_ready(std::integral_constant<int, 1>, std::uint32_t events);  // socket b
//     };
//     if (set.take(a, static_cast<epoll_watch::op<conn, 0>&>(c), b, ...)) set.join(c, &abandon);
//     // ...until the end: close both sockets (which takes them out of the epoll set), set.leave(c),
//     // and free c only from a handler posted after that: an event the reactor queued for c
//     // before the close runs first (the io_context runs its queue in order).
//
// The rules: the sockets are TCP sockets of one io_context run by one thread (the watcher's),
// with nothing pending on them when taken, and only closed (never given back to asio) after.
// While any watcher is joined the set holds work on the io_context, as a pending wait would.
// When the io_context shuts down, every watcher still joined gets abandon(m, false) (let go of
// other services), then abandon(m, true) (free yourself) from the io_context's queue as it is
// destroyed: after the events queued for it, and while every service is still there.
//
// The contract with asio 1.22's epoll_reactor (checked in reactor_wait.hpp's version test):
// the reactor casts an event's data.ptr to descriptor_state*, a class whose only base,
// scheduler_operation, is at offset 0; it writes the events to task_result_ and queues it. A
// scheduler_operation at that address is all it touches. The reactor's epoll descriptor is a
// private member, named here through an explicit instantiation (where access is not checked).
#pragma once

#include <rproxy/net/detail/reactor_wait.hpp>

#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#if defined(RPROXY_NET_REACTOR_WAIT)
#include <asio/detail/scheduler.hpp>
#include <asio/detail/scheduler_operation.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <sys/epoll.h>
#endif

#include <cstddef>
#include <cstdint>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace rproxy::net::detail {

#if defined(RPROXY_NET_REACTOR_WAIT)
inline constexpr bool has_epoll_watch = true;

int asio::detail::epoll_reactor::*reactor_epoll_fd() noexcept;
/// (Explicit instantiation is where a private member may be named: this one hands out
/// epoll_reactor::epoll_fd_.)
template <int asio::detail::epoll_reactor::*Member>
struct reactor_epoll_fd_access {
  friend int asio::detail::epoll_reactor::*reactor_epoll_fd() noexcept { return Member; }
};
template struct reactor_epoll_fd_access<&asio::detail::epoll_reactor::epoll_fd_>;

class epoll_watch final : public asio::execution_context::service {
public:
  static inline asio::execution_context::id id;
  /// The events that end a wait for input, and for room to write (an error or hang-up ends
  /// both: the next read or write says what happened).
  static constexpr std::uint32_t input = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  static constexpr std::uint32_t output = EPOLLOUT | EPOLLHUP | EPOLLERR;
  /// The events after which a read that returns less than asked may not have emptied the socket:
  /// the peer has shut its side or the socket failed (no new edge comes for what is left), or
  /// urgent data came (a read stops short at its mark). Read on until EAGAIN or the end.
  static constexpr std::uint32_t read_on = EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI;

  /// A watcher's operation for its socket N: what the reactor queues when the socket turns
  /// ready. Owner (which derives from it) gets on_ready(std::integral_constant<int, N>, events).
  template <class Owner, int N>
  class op : public asio::detail::scheduler_operation {
  protected:
    op() noexcept : scheduler_operation(&op::run) {}

  private:
    static void run(void* owner, scheduler_operation* base, const std::error_code&, std::size_t events) {
      if (!owner) return;  // the io_context's queue is destroyed: the set frees the watcher later
      // The scheduler counts every operation it runs as a unit of work done; a reactor event is
      // none (as asio's own descriptor states, which compensate the same way).
      static_cast<asio::detail::scheduler*>(owner)->compensating_work_started();
      auto& self = static_cast<Owner&>(static_cast<op&>(*base));
      self.on_ready(std::integral_constant<int, N>{}, static_cast<std::uint32_t>(events));
    }
  };

  /// A watcher's place in the set, for the io_context's shutdown (24 bytes).
  class member {
  public:
    using abandon_fn = void (*)(member&, bool free);
    member() = default;
    member(const member&) = delete;
    member& operator=(const member&) = delete;

  private:
    friend class epoll_watch;
    member* prev_ = nullptr;
    member* next_ = nullptr;
    abandon_fn abandon_ = nullptr;
  };

  explicit epoll_watch(asio::io_context& ioc)
      : asio::execution_context::service(ioc), ioc_(ioc),
        reactor_(asio::use_service<asio::detail::epoll_reactor>(ioc)), epfd_(reactor_.*reactor_epoll_fd()) {}

  /// Takes sockets `a` and `b` out of asio's hands into the set, for operations `oa` and `ob`:
  /// both or neither (false: they stay asio's, nothing changed).
  template <class A, class B>
  bool take(A& a, asio::detail::scheduler_operation& oa, B& b, asio::detail::scheduler_operation& ob) noexcept {
    auto& ia = socket_impl(a);
    auto& ib = socket_impl(b);
    if (shut_down_ || !ia.reactor_data_ || !ib.reactor_data_) return false;
    if (!point(ia.socket_, &oa, false)) return false;
    if (!point(ib.socket_, &ob, false)) {
      point(ia.socket_, ia.reactor_data_, true);  // back to asio's state (its own registration, with output)
      return false;
    }
    give_back(ia);
    give_back(ib);
    return true;
  }

  /// From now on socket `s` (taken, for `o`) also reports room to write. A socket is taken for
  /// input only: a socket that can take bytes (most of the time) would otherwise wake its watcher
  /// when taken and on every change of state (a shutdown) for nothing. A watcher asks for output
  /// once a write found no room (the entry re-checks readiness: room made since comes at once).
  template <class S>
  bool watch_output(S& s, asio::detail::scheduler_operation& o) noexcept {
    return point(s.native_handle(), &o, true);
  }

  /// `m` has sockets in the set: the io_context keeps running for it.
  void join(member& m, member::abandon_fn abandon) noexcept {
    m.abandon_ = abandon;
    m.prev_ = nullptr;
    m.next_ = head_;
    if (head_) head_->prev_ = &m;
    head_ = &m;
    if (!work_) work_.emplace(ioc_.get_executor());
  }

  /// `m`'s sockets are closed.
  void leave(member& m) noexcept {
    if (!m.abandon_) return;
    (m.prev_ ? m.prev_->next_ : head_) = m.next_;
    if (m.next_) m.next_->prev_ = m.prev_;
    m.prev_ = m.next_ = nullptr;
    m.abandon_ = nullptr;
    if (!head_) work_.reset();
  }

  ~epoll_watch() override { free_all(head_); }

private:
  template <class Impl>
  void give_back(Impl& impl) noexcept {
    // closing: asio makes no EPOLL_CTL_DEL (the entry is ours now) and frees the state.
    reactor_.deregister_descriptor(impl.socket_, impl.reactor_data_, true);
    reactor_.cleanup_descriptor_data(impl.reactor_data_);
  }

  bool point(int fd, void* to, bool output) noexcept {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP | EPOLLET | (output ? std::uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = to;
    return ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
  }

  static void free_all(member* list) noexcept {
    while (member* m = list) {
      list = m->next_;
      m->abandon_(*m, true);
    }
  }

  /// Frees the watchers still joined when the io_context destroys the operations in its queue
  /// (at its shutdown, while every service is still there): after the reactor events queued
  /// for them (which the queue holds, and destroys, first), and in time for whatever their
  /// handlers post when destroyed (a coroutine's frames) to be destroyed with the queue too.
  struct reaper {
    member* list;
    reaper(member* l) noexcept : list(l) {}
    reaper(reaper&& o) noexcept : list(std::exchange(o.list, nullptr)) {}
    reaper& operator=(reaper&&) = delete;
    ~reaper() { free_all(list); }
    void operator()() noexcept {}  // (never run: the io_context is shutting down)
  };

  void shutdown() override {
    shut_down_ = true;
    work_.reset();
    for (member* m = head_; m; m = m->next_) m->abandon_(*m, false);
    if (head_) asio::post(ioc_, reaper(std::exchange(head_, nullptr)));
  }

  asio::io_context& ioc_;
  asio::detail::epoll_reactor& reactor_;
  int epfd_;
  member* head_ = nullptr;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  bool shut_down_ = false;
};
#else
inline constexpr bool has_epoll_watch = false;

/// (No epoll reactor here: take() always declines, so watchers use asio's own waits.)
class epoll_watch final : public asio::execution_context::service {
public:
  static inline asio::execution_context::id id;
  static constexpr std::uint32_t input = 0, output = 0, read_on = 0;
  template <class Owner, int N>
  class op {};
  class member {
  public:
    using abandon_fn = void (*)(member&, bool free);
  };
  explicit epoll_watch(asio::io_context& ioc) : asio::execution_context::service(ioc) {}
  template <class A, class OA, class B, class OB>
  bool take(A&, OA&, B&, OB&) noexcept { return false; }
  template <class S, class O>
  bool watch_output(S&, O&) noexcept { return false; }
  void join(member&, member::abandon_fn) noexcept {}
  void leave(member&) noexcept {}

private:
  void shutdown() override {}
};
#endif

}  // namespace rproxy::net::detail
