// rproxy/app/every.hpp: a task an app runs every so often on its control thread (stopping idle
// servers, sweeping expired rooms), until shutdown starts.
//
//     rproxy::app::every(rt, std::chrono::seconds(10), [s] { s->rooms.sweep(std::chrono::system_clock::now()); });
//
// The first run is one period after the call; a run that is due when shutdown starts does not
// happen, and none follows. The task runs on the control thread, so it may read what the app's
// reloads write there (the current world, the app's own state) without locks.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <system_error>
#include <utility>

namespace rproxy::app {

/// A timer that runs a task every `period` until stop(); what every() keeps for the runtime.
template <class Task>
class repeating {
public:
  repeating(const asio::any_io_executor& ex, std::chrono::steady_clock::duration period, Task task)
      : timer_(ex), period_(period), task_(std::move(task)) {}

  /// Arms the first run, one period from now. `self` owns this object (the timer's handler keeps it).
  static void start(const std::shared_ptr<repeating>& self) { self->arm(self); }
  /// No run after this one (a pending wait is cancelled).
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }
  bool stopped() const noexcept { return stopped_; }

private:
  void arm(const std::shared_ptr<repeating>& self) {
    if (stopped_) return;
    timer_.expires_after(period_);
    timer_.async_wait([self](std::error_code ec) {
      if (ec || self->stopped_) return;
      self->task_();
      self->arm(self);
    });
  }

  asio::steady_timer timer_;
  std::chrono::steady_clock::duration period_;
  Task task_;
  bool stopped_ = false;
};

/// Runs `task` every `period` on `rt`'s control thread until shutdown starts (the runtime's
/// on_stop_accepting). Returns the repeating timer, which the runtime also keeps.
template <class Runtime, class Task>
std::shared_ptr<repeating<Task>> every(Runtime& rt, std::chrono::steady_clock::duration period, Task task) {
  auto r = std::make_shared<repeating<Task>>(rt.control().get_executor(), period, std::move(task));
  rt.keep(r);
  rt.on_stop_accepting([r] { r->stop(); });
  repeating<Task>::start(r);
  return r;
}

}  // namespace rproxy::app
