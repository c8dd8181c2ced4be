// rproxy/net/relay_pool.hpp: the per-thread pool of splice pipes and relay buffers.
//
// A relayed connection holds a pipe (splice path) or a buffer (buffered path) only while bytes
// move: the relay takes one when a socket turns readable and gives it back once everything it
// read was written (a pipe with bytes still in it stays with its connection until drained). So
// an idle connection costs its two sockets and no pipe or buffer, and a busy worker reuses a
// few pipes instead of creating and closing two per connection.
//
//     auto& pool = rproxy::net::relay_pool::local();   // this thread's pool: no locks
//     auto p = pool.take_pipe(64 * 1024);              // result<splice_pipe>: reused or new
//     ... splice through *p until it is empty ...
//     pool.give_pipe(std::move(*p));                   // kept (up to max_idle_pipes) or closed
//
// One pool per thread (thread_local): a worker's io_context runs on one thread, so the data
// path takes no lock. A pipe or buffer taken on one thread may be given back on another (a
// strand over several threads); it then simply joins that thread's pool. The pool keeps at most
// limits().max_idle_pipes idle pipes (2 descriptors each) and max_idle_buffers idle buffers and
// closes or frees the rest; set_limits() trims at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/net/splice.hpp>

namespace rproxy::net {

class relay_pool {
public:
  struct limits {
    std::size_t max_idle_pipes = 16;    ///< idle pipes kept per thread (2 descriptors each)
    std::size_t max_idle_buffers = 16;  ///< idle buffers kept per thread
  };

  /// Counters of one thread's pool (for tests and diagnostics).
  struct stats {
    std::size_t idle_pipes = 0;      ///< kept for reuse now
    std::size_t pipes_in_use = 0;    ///< taken and not given back (held by relays)
    std::uint64_t pipes_opened = 0;  ///< pipe2(2) calls that succeeded
    std::uint64_t pipes_closed = 0;  ///< given back past the limit (or trimmed) and closed
    std::size_t idle_buffers = 0;
    std::size_t buffers_in_use = 0;
    std::uint64_t buffers_allocated = 0;
    std::uint64_t pipes_taken = 0;  ///< take_pipe() calls that gave a pipe (reused or new)
  };

  /// A buffer of `size` bytes from the pool (never touched by the pool: no RSS until written).
  struct buffer {
    std::unique_ptr<char[]> data;
    std::size_t size = 0;
    explicit operator bool() const noexcept { return data != nullptr; }
  };

  relay_pool() = default;
  relay_pool(const relay_pool&) = delete;
  relay_pool& operator=(const relay_pool&) = delete;

  /// This thread's pool.
  static relay_pool& local() noexcept {
    thread_local relay_pool pool;
    return pool;
  }

  /// An empty pipe of the capacity asked for: an idle one, or a new one (which may fail, e.g.
  /// EMFILE when the process is out of descriptors).
  result<splice_pipe> take_pipe(std::size_t capacity) {
    for (std::size_t i = pipes_.size(); i-- > 0;) {
      if (pipes_[i].requested() != capacity) continue;
      splice_pipe p = std::move(pipes_[i]);
      pipes_[i] = std::move(pipes_.back());
      pipes_.pop_back();
      ++pipes_in_use_;
      ++pipes_taken_;
      return p;
    }
    auto p = splice_pipe::open(capacity);
    if (!p) return p;
    ++pipes_opened_;
    ++pipes_in_use_;
    ++pipes_taken_;
    return p;
  }

  /// Gives back a pipe taken from a pool. It must be empty (every byte spliced in was spliced
  /// out); a relay closes a pipe that still holds bytes instead (see forget_pipe()).
  void give_pipe(splice_pipe&& p) noexcept {
    if (pipes_in_use_ > 0) --pipes_in_use_;
    if (!p.is_open()) return;
    if (pipes_.size() >= limits_.max_idle_pipes) {
      p.close();
      ++pipes_closed_;
      return;
    }
    try {
      pipes_.push_back(std::move(p));
    } catch (...) {  // out of memory: the pipe closes with p
      ++pipes_closed_;
    }
  }

  /// A pipe taken from a pool that its holder closes itself (it still held bytes).
  void forget_pipe(splice_pipe&& p) noexcept {
    if (pipes_in_use_ > 0) --pipes_in_use_;
    p.close();
  }

  buffer take_buffer(std::size_t size) {
    ++buffers_in_use_;
    for (std::size_t i = buffers_.size(); i-- > 0;) {
      if (buffers_[i].size != size) continue;
      buffer b = std::move(buffers_[i]);
      buffers_[i] = std::move(buffers_.back());
      buffers_.pop_back();
      return b;
    }
    ++buffers_allocated_;
    try {
      return {std::make_unique_for_overwrite<char[]>(size), size};
    } catch (...) {
      --buffers_in_use_;
      throw;
    }
  }

  void give_buffer(buffer&& b) noexcept {
    if (buffers_in_use_ > 0) --buffers_in_use_;
    if (!b || buffers_.size() >= limits_.max_idle_buffers) {
      b = buffer{};
      return;
    }
    try {
      buffers_.push_back(std::move(b));
    } catch (...) {
      b = buffer{};
    }
  }

  /// This thread's scratch space of at least `size` bytes, for a read that is passed on at
  /// once and leaves nothing behind (the splice path's small messages: relay.hpp).
  char* scratch(std::size_t size) {
    if (scratch_size_ < size) {
      scratch_ = std::make_unique_for_overwrite<char[]>(size);
      scratch_size_ = size;
    }
    return scratch_.get();
  }

  const limits& get_limits() const noexcept { return limits_; }
  /// New limits for this thread's pool; idle pipes and buffers past them are closed now.
  void set_limits(const limits& l) {
    limits_ = l;
    while (pipes_.size() > limits_.max_idle_pipes) {
      pipes_.pop_back();
      ++pipes_closed_;
    }
    while (buffers_.size() > limits_.max_idle_buffers) buffers_.pop_back();
  }

  stats get_stats() const noexcept {
    return {pipes_.size(), pipes_in_use_, pipes_opened_, pipes_closed_,
            buffers_.size(), buffers_in_use_, buffers_allocated_, pipes_taken_};
  }

private:
  limits limits_{};
  std::vector<splice_pipe> pipes_;  // idle, empty
  std::vector<buffer> buffers_;
  std::size_t pipes_in_use_ = 0;
  std::size_t buffers_in_use_ = 0;
  std::uint64_t pipes_opened_ = 0;
  std::uint64_t pipes_closed_ = 0;
  std::uint64_t buffers_allocated_ = 0;
  std::uint64_t pipes_taken_ = 0;
  std::unique_ptr<char[]> scratch_;
  std::size_t scratch_size_ = 0;
};

}  // namespace rproxy::net
