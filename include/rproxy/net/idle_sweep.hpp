// rproxy/net/idle_sweep.hpp: the idle deadlines of many flows on one timer per io_context.
//
// A timer per relayed connection costs memory while the connection idles (the timer and its
// pending wait) and, when it is the earliest, a timerfd_settime(2) per connection. Instead each
// flow is an entry in its io_context's sweep: one lane per idle timeout and callback, each lane a
// list in order of last activity (touch() moves an entry to the back), so a lane's front is
// the next to expire and one timer, armed for the earliest front, serves them all.
//
//     struct my_flow : rproxy::net::idle_sweep::entry { ... };
//     auto& sweep = asio::use_service<rproxy::net::idle_sweep>(ioc);
//     sweep.add(flow, 5min, clock::now(), [](idle_sweep::entry& e) { static_cast<my_flow&>(e).fail(); });
//     sweep.touch(flow, clock::now());   // bytes moved
//     sweep.remove(flow);                // the flow ended (also fine if it expired)
//
// The connector (connector.hpp) puts its connect deadlines here too: one lane per timeout, so
// a connect costs no timer of its own either (no timerfd_settime(2) while others are pending).
// An entry expires (its callback runs, from the sweep's timer handler, once, after it has been
// unlinked) once it has had no touch() for its timeout; the timer fires late by at most
// timeout/64 (capped at one second), so that a burst of expiries takes one wake-up.
// The sweep belongs to one io_context and is used from the thread that runs it (as the flows
// it serves are). With no entry left the timer is cancelled: an io_context with no flows runs
// out of work as before.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/wait_traits.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <type_traits>
#include <vector>

namespace rproxy::net {

class idle_sweep final : public asio::execution_context::service {
public:
  using clock = std::chrono::steady_clock;
  static inline asio::execution_context::id id;

  /// One flow's place in the sweep (a base or member of the flow: 32 bytes).
  class entry {
  public:
    entry() = default;
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    bool linked() const noexcept { return lane_ != no_lane; }
    clock::time_point last_active() const noexcept { return last_; }

  private:
    friend class idle_sweep;
    static constexpr std::uint32_t no_lane = ~std::uint32_t{0};
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
    clock::time_point last_{};
    std::uint32_t lane_ = no_lane;
  };

  explicit idle_sweep(asio::io_context& ioc) : asio::execution_context::service(ioc), timer_(ioc.get_executor()) {}

  /// Starts watching `e` (not linked yet): after `timeout` (> 0) with no touch(), expire(e).
  void add(entry& e, clock::duration timeout, clock::time_point now, void (*expire)(entry&)) {
    std::uint32_t i = 0;
    while (i < lanes_.size() && (lanes_[i].timeout != timeout || lanes_[i].expire != expire)) ++i;
    if (i == lanes_.size()) lanes_.push_back({timeout, expire});
    e.lane_ = i;
    e.last_ = now;
    const bool was_empty = lanes_[i].front == nullptr;
    link_back(lanes_[i], e);
    ++size_;
    if (was_empty) arm(now + timeout + slack(timeout));  // (a lane's later entries expire later)
  }

  /// Whether add(e, timeout, now, expire) may be called without a new lane past max_lanes
  /// (a caller whose timeouts vary widely keeps a timer of its own instead).
  static constexpr std::size_t max_lanes = 32;
  bool takes(clock::duration timeout, void (*expire)(entry&)) const noexcept {
    if (shut_down_) return false;
    if (lanes_.size() < max_lanes) return true;
    for (const auto& l : lanes_)
      if (l.timeout == timeout && l.expire == expire) return true;
    return false;
  }

  /// `e` was active at `now`: its deadline moves to now + its timeout. No-op if not linked.
  void touch(entry& e, clock::time_point now) noexcept {
    if (!e.linked()) return;
    e.last_ = now;
    auto& l = lanes_[e.lane_];
    if (l.back == &e) return;
    unlink(l, e);
    link_back(l, e);
  }

  /// Stops watching `e`. No-op if not linked (never added, expired or removed).
  void remove(entry& e) noexcept {
    if (!e.linked()) return;
    unlink(lanes_[e.lane_], e);
    e.lane_ = entry::no_lane;
    if (--size_ == 0 && !shut_down_) {
      timer_.cancel();
      armed_ = clock::time_point::max();
    }
  }

  std::size_t size() const noexcept { return size_; }

private:
  struct lane {  // (the callback is per lane, not per entry: 8 bytes less per flow)
    clock::duration timeout;
    void (*expire)(entry&);
    entry* front = nullptr;
    entry* back = nullptr;
  };

  static clock::duration slack(clock::duration timeout) noexcept {
    return std::min<clock::duration>(timeout / 64, std::chrono::seconds(1));
  }

  static void link_back(lane& l, entry& e) noexcept {
    e.prev_ = l.back;
    e.next_ = nullptr;
    (l.back ? l.back->next_ : l.front) = &e;
    l.back = &e;
  }
  static void unlink(lane& l, entry& e) noexcept {
    (e.prev_ ? e.prev_->next_ : l.front) = e.next_;
    (e.next_ ? e.next_->prev_ : l.back) = e.prev_;
    e.prev_ = e.next_ = nullptr;
  }

  /// The timer fires at `at` unless it is armed earlier already.
  void arm(clock::time_point at) {
    if (at >= armed_) return;
    armed_ = at;
    timer_.expires_at(at);  // (cancels the wait for the later time)
    timer_.async_wait([this](const std::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;  // re-armed or cancelled: `this` may be gone
      on_timer();
    });
  }

  /// Expires every lane's fronts past their deadline, then arms for the earliest left.
  void on_timer() {
    armed_ = clock::time_point::max();
    const auto now = clock::now();
    auto next = clock::time_point::max();
    for (std::uint32_t i = 0; i < lanes_.size(); ++i) {
      // (an expiry's callback may add entries: index the lanes, do not hold a reference)
      while (entry* e = lanes_[i].front) {
        if (e->last_ + lanes_[i].timeout > now) {
          next = std::min(next, e->last_ + lanes_[i].timeout + slack(lanes_[i].timeout));
          break;
        }
        unlink(lanes_[i], *e);
        e->lane_ = entry::no_lane;
        --size_;
        lanes_[i].expire(*e);
      }
    }
    if (size_ == 0) {
      timer_.cancel();
      armed_ = clock::time_point::max();
    } else if (next != clock::time_point::max()) {
      arm(next);
    }
  }

  void shutdown() override { shut_down_ = true; }  // (the timer's wait is destroyed, not run)

  asio::basic_waitable_timer<clock, asio::wait_traits<clock>, asio::io_context::executor_type> timer_;
  std::vector<lane> lanes_;
  std::size_t size_ = 0;
  clock::time_point armed_ = clock::time_point::max();
  bool shut_down_ = false;
};

namespace detail {

/// The io_context behind an executor, if it is a plain io_context executor (the sweep's
/// handler then runs on the same thread as the relay's); null for a strand or anything else.
template <class Executor>
asio::io_context* io_context_of(const Executor& ex) noexcept {
  if constexpr (std::is_same_v<Executor, asio::io_context::executor_type>) {
    return &ex.context();
  } else if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    const auto* t = ex.template target<asio::io_context::executor_type>();
    return t ? &t->context() : nullptr;
  } else {
    return nullptr;
  }
}

}  // namespace detail

}  // namespace rproxy::net
