// rproxy/flow/drain.hpp: counts live flows so shutdown can wait for them.
//
// Each flow holds a `drain_tracker::guard` for its lifetime. On SIGTERM the app stops accepting,
// calls begin(), and waits until active() == 0 or the deadline passes:
//
//     auto g = tracker.track();            // in the flow; released when the flow ends
//     if (tracker.draining()) close_keepalive();
#pragma once

#include <atomic>
#include <cstddef>
#include <utility>

namespace rproxy::flow {

class drain_tracker {
public:
  class guard {
  public:
    guard() = default;
    explicit guard(drain_tracker* t) noexcept : t_(t) {}
    guard(guard&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    guard& operator=(guard&& o) noexcept {
      if (this != &o) {
        release();
        t_ = std::exchange(o.t_, nullptr);
      }
      return *this;
    }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    ~guard() { release(); }

    void release() noexcept {
      if (t_) t_->active_.fetch_sub(1, std::memory_order_acq_rel);
      t_ = nullptr;
    }

  private:
    drain_tracker* t_ = nullptr;
  };

  [[nodiscard]] guard track() noexcept {
    active_.fetch_add(1, std::memory_order_acq_rel);
    return guard{this};
  }
  std::size_t active() const noexcept { return active_.load(std::memory_order_acquire); }
  void begin() noexcept { draining_.store(true, std::memory_order_release); }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }

private:
  std::atomic<std::size_t> active_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace rproxy::flow
