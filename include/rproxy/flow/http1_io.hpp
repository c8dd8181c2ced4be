// rproxy/flow/http1_io.hpp: the byte-level helpers of the HTTP/1.1 flows (flow/http1.hpp, its
// upstream exchange flow/http1_exchange.hpp, and the HTTP/2 flow's backend side, flow/h2.hpp):
// a fixed receive buffer, reads and writes bounded by a deadline, a body piece in its framing,
// a last answer before a close, and the response fields that are not passed on.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/deadline.hpp>

namespace rproxy::flow {

namespace http1_detail {

namespace http1 = codec::http1;

/// A receive buffer of at most `capacity` bytes: [begin, end) is unconsumed. The parser's views
/// point into it, so it is only compacted (or grown) right before a read, when no view is in use.
/// Its storage is not cleared (only bytes read into it are ever looked at): it is sized for the
/// largest head (some 80 KiB): clearing it per HTTP/2 stream took a fifth of the gateway's CPU
/// under h2load. With an `initial` size, the storage starts that small and grows to `capacity`
/// only when it is full and more is wanted (a head larger than `initial`): an HTTP/2 stream's
/// response buffer is then some 20 KiB, not 80, which a heap hands out and takes back cheaply.
/// Storage comes from, and goes back to, a small per-thread cache (storage_cache): an HTTP/2
/// stream or a new connection takes a buffer another one left, instead of a fresh allocation
/// of that size (and the page faults of a heap that grows and shrinks by it).
class recv_buffer {
public:
  explicit recv_buffer(std::size_t capacity) : recv_buffer(capacity, capacity) {}
  recv_buffer(std::size_t capacity, std::size_t initial)
      : initial_(std::min(std::max<std::size_t>(initial, 1), capacity)),
        data_(storage_cache::take(initial_)),
        size_(initial_),
        capacity_(capacity) {}
  recv_buffer(const recv_buffer&) = delete;
  recv_buffer& operator=(const recv_buffer&) = delete;
  ~recv_buffer() { storage_cache::give(std::move(data_), size_); }
  std::string_view view() const noexcept { return {data_.get() + b_, e_ - b_}; }
  /// Holds `capacity` unconsumed bytes: no read can add to them.
  bool full() const noexcept { return b_ == 0 && e_ == capacity_; }
  std::size_t capacity() const noexcept { return capacity_; }
  void consume(std::size_t n) noexcept {
    b_ += n;
    if (b_ == e_) b_ = e_ = 0;
  }
  /// Room for at most n more bytes (compacts first; grows to `capacity` when there is no room).
  std::span<char> prepare(std::size_t n) {
    if (b_ > 0) {
      std::memmove(data_.get(), data_.get() + b_, e_ - b_);
      e_ -= b_;
      b_ = 0;
    }
    if (e_ == size_ && size_ < capacity_) {
      auto bigger = storage_cache::take(capacity_);
      std::memcpy(bigger.get(), data_.get(), e_);
      storage_cache::give(std::exchange(data_, std::move(bigger)), size_);
      size_ = capacity_;
    }
    return {data_.get() + e_, std::min(n, size_ - e_)};
  }
  /// All the room there is (a response head and the body that came with it, in one read).
  std::span<char> prepare() { return prepare(capacity_); }
  void commit(std::size_t n) noexcept { e_ += n; }
  void append(std::string_view s) {
    auto room = prepare(s.size());
    std::memcpy(room.data(), s.data(), room.size());
    commit(room.size());
  }
  /// Empty again, at its initial size (a buffer kept for the next exchange).
  void clear() {
    b_ = e_ = 0;
    if (size_ > initial_) {
      storage_cache::give(std::exchange(data_, storage_cache::take(initial_)), size_);
      size_ = initial_;
    }
  }

  /// Buffers released on this thread, kept for the next buffer of the same size (at most
  /// `slots` of them: a worker keeps at most that many idle buffers, some 1.5 MiB).
  class storage_cache {
  public:
    static constexpr std::size_t slots = 16;
    static std::unique_ptr<char[]> take(std::size_t n) {
      auto* cache = local();
      if (cache == nullptr) return std::unique_ptr<char[]>(new char[n]);
      auto& c = *cache;
      for (std::size_t i = c.count_; i-- > 0;)
        if (c.size_[i] == n) {
          auto out = std::move(c.data_[i]);
          --c.count_;
          c.data_[i] = std::move(c.data_[c.count_]);
          c.size_[i] = c.size_[c.count_];
          return out;
        }
      return std::unique_ptr<char[]>(new char[n]);  // (left uninitialised)
    }
    static void give(std::unique_ptr<char[]> p, std::size_t n) noexcept {
      auto* cache = local();
      if (!p || cache == nullptr) return;
      auto& c = *cache;
      if (c.count_ == slots) return;  // (p is freed)
      c.data_[c.count_] = std::move(p);
      c.size_[c.count_] = n;
      ++c.count_;
    }

    storage_cache() = default;
    storage_cache(const storage_cache&) = delete;
    storage_cache& operator=(const storage_cache&) = delete;
    ~storage_cache() { gone() = true; }

  private:
    /// This thread's cache; null once it is destroyed (a buffer freed later, at thread exit).
    static storage_cache* local() noexcept {
      thread_local storage_cache c;
      return gone() ? nullptr : &c;
    }
    static bool& gone() noexcept {
      thread_local bool g = false;  // (trivial: still there after the cache is destroyed)
      return g;
    }
    std::array<std::unique_ptr<char[]>, slots> data_{};
    std::array<std::size_t, slots> size_{};
    std::size_t count_ = 0;
  };

private:
  std::size_t initial_;
  std::unique_ptr<char[]> data_;
  std::size_t size_;      // of data_: initial_ or capacity_
  std::size_t capacity_;
  std::size_t b_ = 0, e_ = 0;
};

/// Response fields not passed on: hop-by-hop and framing ones (RFC 9110 §7.6.1) and those the
/// sender's Connection names. (Request fields follow http1::forward_rules: upstream_head.)
inline bool hop_by_hop(std::string_view name, const http1::fields_view& all) {
  return http1::is_hop_by_hop_field(name) || all.has_token("connection", name);
}

/// Reads some bytes into `b` within `d` (net/deadline.hpp: the timer never outlives the call).
/// Timeout: net::error::idle_timeout.
template <class Stream>
asio::awaitable<std::pair<std::error_code, std::size_t>> read_for(Stream& s, std::span<char> b,
                                                                     std::chrono::milliseconds d) {
  auto [ec, n] = co_await net::with_deadline(s.async_read_some(asio::buffer(b.data(), b.size()), asio::experimental::deferred), d);
  co_return std::pair{ec, n};
}
/// Writes all of `b` within `d`.
template <class Stream, class Buffers>
asio::awaitable<std::error_code> write_for(Stream& s, const Buffers& b, std::chrono::milliseconds d) {
  auto [ec, n] = co_await net::with_deadline(asio::async_write(s, b, asio::experimental::deferred), d);
  (void)n;
  co_return ec;
}
template <class Stream>
asio::awaitable<std::error_code> write_for(Stream& s, std::string_view text, std::chrono::milliseconds d) {
  co_return co_await write_for(s, asio::buffer(text.data(), text.size()), d);
}
/// A piece of a body: one chunk when the peer gets chunked framing, else as it is.
template <class Stream>
asio::awaitable<std::error_code> write_body(Stream& s, std::string_view data, bool chunked,
                                                   std::chrono::milliseconds d) {
  if (!chunked) co_return co_await write_for(s, data, d);
  if (data.empty()) co_return std::error_code{};
  const http1::chunk_header ch(data.size());
  const std::array<asio::const_buffer, 3> chunk{asio::buffer(ch.view().data(), ch.view().size()),
                                                asio::buffer(data.data(), data.size()), asio::buffer(http1::crlf.data(), 2)};
  co_return co_await write_for(s, chunk, d);
}

/// Sends a final answer and ends the sending side, then reads (and drops) what the client
/// still sends for a moment, so the answer is not lost to a reset.
template <class Stream>
asio::awaitable<void> answer_and_close(Stream& s, std::string_view response, std::chrono::milliseconds d) {
  if (co_await write_for(s, response, d)) co_return;
  std::error_code ignored;
  detail::tcp_of(s).shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::array<char, 4096> sink;
  for (std::size_t total = 0; total < (1u << 20);) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto [ec, n] = co_await read_for(s, sink, left);
    if (ec) break;
    total += n;
  }
}

inline bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
}

}  // namespace http1_detail

}  // namespace rproxy::flow
