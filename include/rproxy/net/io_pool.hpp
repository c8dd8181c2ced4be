// rproxy/net/io_pool.hpp: one asio::io_context per worker thread (DESIGN.md §3).
//
// Each worker runs its own io_context, so everything a flow touches stays on one thread and the
// data path needs no locks. Reach another worker only with asio::post.
//
//     rproxy::net::io_pool pool{4};          // 0 (the default): one per hardware thread
//     auto l = rproxy::net::listen(pool, ep, handler);   // one acceptor per worker
//     pool.start();
//     asio::post(pool.next(), [] { ... });  // round-robin
//     ...
//     pool.stop(); pool.join();             // or release_work() to let workers run dry
//
// A handler that throws stops the whole pool; join() rethrows the first such exception.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <rproxy/observe/worker_index.hpp>

namespace rproxy::net {

class io_pool {
public:
  /// `threads == 0` means one worker per hardware thread (at least one).
  explicit io_pool(std::size_t threads = 0) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers_.push_back(std::make_unique<worker>());
  }

  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  /// Stops and joins the workers; exceptions from handlers are dropped here (call join() first
  /// to see them).
  ~io_pool() {
    stop();
    join_threads();
  }

  std::size_t size() const noexcept { return workers_.size(); }

  asio::io_context& context(std::size_t i) { return workers_.at(i)->ctx; }
  asio::io_context::executor_type executor(std::size_t i) { return context(i).get_executor(); }

  /// The next worker's context, round-robin; safe from any thread.
  asio::io_context& next() noexcept {
    return workers_[next_.fetch_add(1, std::memory_order_relaxed) % workers_.size()]->ctx;
  }

  /// Spawns one thread per worker, each running its context until stop() or, after
  /// release_work(), until it runs out of work. Throws std::logic_error if already running.
  void start() {
    if (running_) throw std::logic_error("rproxy::net::io_pool::start: already running");
    running_ = true;
    {
      std::lock_guard lock{mutex_};
      first_exception_ = nullptr;
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      worker& w = *workers_[i];
      w.ctx.restart();
      w.guard.emplace(w.ctx.get_executor());
      w.thread = std::thread([this, &w, i] { run(w, i); });
    }
  }

  /// Stops every context now: handlers not yet run are dropped (and destroyed with the pool).
  void stop() noexcept {
    release_work();
    stop_contexts();
  }

  /// Lets each worker return once its context has no more work (graceful drain: close listeners
  /// and let flows finish first). Call start(), stop(), release_work() and join() from one
  /// controlling thread.
  void release_work() noexcept {
    for (auto& w : workers_) w->guard.reset();
  }

  /// Waits for every worker thread; rethrows the first exception a handler threw. Must not be
  /// called from a worker thread.
  void join() {
    join_threads();
    std::exception_ptr e;
    {
      std::lock_guard lock{mutex_};
      e = std::exchange(first_exception_, nullptr);
    }
    if (e) std::rethrow_exception(e);
  }

  bool running() const noexcept { return running_; }

private:
  struct worker {
    asio::io_context ctx{1};  // concurrency hint: one thread runs it
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::thread thread;
  };

  void run(worker& w, std::size_t i) {
    const std::string name = "rproxy-w" + std::to_string(i);
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    observe::set_worker_index(i);  // this thread's metric shard, and its per-worker state
    try {
      w.ctx.run();
    } catch (...) {
      {
        std::lock_guard lock{mutex_};
        if (!first_exception_) first_exception_ = std::current_exception();
      }
      stop_contexts();
    }
  }

  void stop_contexts() noexcept {
    for (auto& w : workers_) w->ctx.stop();
  }

  void join_threads() noexcept {
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    for (auto& w : workers_) w->guard.reset();
    running_ = false;
  }

  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> running_{false};
  std::mutex mutex_;
  std::exception_ptr first_exception_;
};

}  // namespace rproxy::net
