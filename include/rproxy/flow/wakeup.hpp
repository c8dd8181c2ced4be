// rproxy/flow/wakeup.hpp: a flag one coroutine waits on, with a bound. notify() before wait()
// is not lost: the waiter sees it at once. A bare timer's cancel() is lost when no wait is
// pending (the waiter was busy writing, say), which is the bug this type exists to prevent.
//
//     wakeup w(ex);
//     ... w.notify();                                // from another handler on the same thread
//     if (!co_await w.wait(std::chrono::seconds(5))) // false: the bound passed first
#pragma once

#include <chrono>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

namespace rproxy::flow {

/// A flag one coroutine waits on, with a bound: notify() before wait() is not lost.
class wakeup {
public:
  explicit wakeup(const asio::any_io_executor& ex) : timer_(ex) {}
  void notify() {
    set_ = true;
    timer_.cancel();
  }
  /// True once notified, false when `d` passed first.
  asio::awaitable<bool> wait(std::chrono::milliseconds d) {
    if (!set_) {
      timer_.expires_after(d);
      auto [ec] = co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      (void)ec;
    }
    const bool was = set_;
    set_ = false;
    co_return was;
  }

private:
  asio::steady_timer timer_;
  bool set_ = false;
};

}  // namespace rproxy::flow
