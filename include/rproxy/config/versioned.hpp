// rproxy/config/versioned.hpp: a value replaced while it is read on every operation (limits a
// reload changes), read with one atomic load and no reference count. Every version is kept until
// the holder ends, so a reference taken from get() stays valid for good: meant for small config
// structs and a process that reloads now and then, not for values replaced per request.
//
//     rproxy::config::versioned<rooms_block> limits{cfg.rooms};
//     const rooms_block& now = limits.get();   // any thread, per operation
//     limits.set(next.rooms);                  // the reloader: what reads from now on sees it
//
// config/snapshot.hpp is the other way: a shared_ptr per holder (a flow keeps its version to its
// end, and old versions are freed), at a mutex and a reference count per get().
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

namespace rproxy::config {

template <class T>
class versioned {
public:
  explicit versioned(T first) {
    versions_.push_back(std::move(first));
    current_.store(&versions_.back(), std::memory_order_release);
  }
  versioned(const versioned&) = delete;
  versioned& operator=(const versioned&) = delete;

  /// The current version (valid as long as this object).
  const T& get() const noexcept { return *current_.load(std::memory_order_acquire); }

  /// Installs `next` for what reads from now on.
  void set(T next) {
    std::lock_guard lk(m_);
    versions_.push_back(std::move(next));  // a deque never moves what it holds
    current_.store(&versions_.back(), std::memory_order_release);
  }

  /// How many versions were installed (1: the first only).
  std::size_t versions() const {
    std::lock_guard lk(m_);
    return versions_.size();
  }

private:
  mutable std::mutex m_;
  std::deque<T> versions_;
  std::atomic<const T*> current_{nullptr};
};

}  // namespace rproxy::config
