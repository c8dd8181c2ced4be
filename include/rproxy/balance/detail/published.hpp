// rproxy/balance/detail/published.hpp: an immutable value published by a writer and read by
// many threads at the cost of one atomic load (not a public API).
//
//     published<snapshot> p;
//     p.publish(std::make_shared<const snapshot>(...));   // writers (rare)
//     if (auto r = p.read()) use(*r);                      // readers (every pick)
//
// Each reader thread keeps, in a small thread-local table, the last value it saw with its
// generation number; a read compares that number with the current one (one acquire load) and
// only on a change takes the writer's mutex to copy the new shared_ptr. So the hot path has no
// lock and no shared reference-count traffic. A `ref` pins its thread-local slot until it is
// destroyed, so nested reads on the same thread never pull a value from under an outer one.
// Cost of the scheme: a thread keeps the last value it read alive until it reads again or exits.
//
// (std::atomic<std::shared_ptr> would do, but libstdc++ 12's load() unlocks with a relaxed
// order, which is a data race on weakly ordered CPUs and is reported by ThreadSanitizer.)
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

namespace rproxy::balance::detail {

template <class T>
class published {
public:
  /// A read value: valid while the ref lives. Move-only; empty if nothing was published.
  class ref {
  public:
    ref() = default;
    ref(ref&& o) noexcept
        : p_(std::exchange(o.p_, nullptr)), pins_(std::exchange(o.pins_, nullptr)), own_(std::move(o.own_)) {}
    ref& operator=(ref&& o) noexcept {
      if (this != &o) {
        unpin();
        p_ = std::exchange(o.p_, nullptr);
        pins_ = std::exchange(o.pins_, nullptr);
        own_ = std::move(o.own_);
      }
      return *this;
    }
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ~ref() { unpin(); }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    const T& operator*() const noexcept { return *p_; }
    const T* operator->() const noexcept { return p_; }
    const T* get() const noexcept { return p_; }

  private:
    friend class published;
    ref(const T* p, int* pins) noexcept : p_(p), pins_(pins) { ++*pins_; }
    explicit ref(std::shared_ptr<const T> own) noexcept : p_(own.get()), own_(std::move(own)) {}
    void unpin() noexcept {
      if (pins_) --*pins_;
      pins_ = nullptr;
    }

    const T* p_ = nullptr;
    int* pins_ = nullptr;
    std::shared_ptr<const T> own_;
  };

  published() = default;
  explicit published(std::shared_ptr<const T> v) { publish(std::move(v)); }
  // A copy starts empty: it is a different publication.
  published(const published&) noexcept {}
  published& operator=(const published&) noexcept { return *this; }

  void publish(std::shared_ptr<const T> v) {
    std::lock_guard lk(m_);
    cur_ = std::move(v);
    gen_.store(++last_gen_, std::memory_order_release);
  }

  /// A shared copy of the current value (takes the mutex; for callers that keep it).
  std::shared_ptr<const T> load() const {
    std::lock_guard lk(m_);
    return cur_;
  }

  /// The current value, lock-free unless it changed since this thread's last read.
  ref read() const {
    auto& s = local()[id_ % slots];
    const std::uint64_t g = gen_.load(std::memory_order_acquire);
    if (s.owner == id_ && s.gen == g) return ref(s.value.get(), &s.pins);
    std::shared_ptr<const T> v;
    std::uint64_t vg;
    {
      std::lock_guard lk(m_);
      v = cur_;
      vg = last_gen_;
    }
    if (s.pins != 0) return ref(std::move(v));  // slot in use further up this thread's stack
    s.owner = id_;
    s.gen = vg;
    s.value = std::move(v);
    return ref(s.value.get(), &s.pins);
  }

private:
  static constexpr std::size_t slots = 64;  // per value type, per thread
  struct slot {
    std::uint64_t owner = 0;
    std::uint64_t gen = 0;
    std::shared_ptr<const T> value;
    int pins = 0;
  };
  static std::array<slot, slots>& local() noexcept {
    thread_local std::array<slot, slots> s;
    return s;
  }
  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> n{1};
    return n.fetch_add(1, std::memory_order_relaxed);
  }

  const std::uint64_t id_ = next_id();  ///< unique for the process's life: never reused
  mutable std::mutex m_;
  std::shared_ptr<const T> cur_;        ///< guarded by m_
  std::uint64_t last_gen_ = 0;          ///< guarded by m_
  std::atomic<std::uint64_t> gen_{0};
};

}  // namespace rproxy::balance::detail
