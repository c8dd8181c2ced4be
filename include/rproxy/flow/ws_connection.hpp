// rproxy/flow/ws_connection.hpp: one WebSocket connection's sending side: a bounded queue of
// frames with a declared slow-consumer policy, written with gathered writes.
//
//     flow::ws_send_limits limits{.max_queue_messages = 256, .policy = flow::slow_consumer::drop_oldest};
//     flow::ws_connection c(limits);           // limits (and stats) are shared: they outlive c
//     c.send(payload);                         // any stage, on the connection's worker: never waits
//     c.close(1001, "going away");             // the close handshake starts after what is queued
//     co_await c.run_writer(socket);           // a writer coroutine; or an owner drives flush(socket)
//                                              // (or take() and wrote(): a TLS stream's writer)
//
// The connection does not keep the socket: its owner passes it to the calls that write or close
// (flush, abort, run_writer). So the owner picks the socket's type (a session keeps one on its
// io_context's own executor type: 40 bytes where asio::ip::tcp::socket takes 88), and a
// connection held open by the thousand does not keep a reference to it besides.
//
// A payload is a shared immutable buffer (`ws_payload`): a room broadcast is encoded once and
// the same buffer is queued on every recipient (a reference count each). The frame header (2 to
// 10 bytes: server frames are not masked) is written beside it in the queue entry, and up to
// `max_batch` queued frames go out with one gathered write (one writev(2)).
//
// Writing is non-blocking and never holds a coroutine frame or a timer: an owner (flow/ws.hpp)
// is told by set_notify() when frames wait, calls flush() once the current handler is done (so
// the frames queued by one message's stages go out together), and waits for the socket to turn
// writable when flush() says `blocked`, and for the peer's close when it says `closing`; the
// owner bounds those waits (write_timeout, close_timeout). run_writer() does the same in a
// coroutine, for code that wants one.
//
// The queue is bounded in messages and in bytes. When a data frame would go past a bound:
//   drop_oldest  the oldest queued data frames not being written are dropped until it fits
//                (the newest state wins: chat, presence);
//   drop_newest  the new frame is dropped (what was promised stays in order);
//   close        the connection is closed with 1013 (try again later): the client reconnects
//                and asks for what it missed (history since its last message id).
// Control frames (pong, close) are never dropped; a ping is not answered while the queue is
// full. So one reader that does not read costs its bounded queue and never stalls a sender: a
// send is a push onto a queue. An idle connection's queue holds no memory.
//
// Threads: a connection is used only on its worker's thread (cross-worker sends are posted:
// flow/ws_hub.hpp).
#pragma once

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <span>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/flow/ws_settings.hpp>
#include <rproxy/net/deadline.hpp>

namespace rproxy::flow {

/// One message's bytes, shared by every connection it goes to (and by a room's history).
using ws_payload = std::shared_ptr<const std::string>;

inline ws_payload make_ws_payload(std::string s) { return std::make_shared<const std::string>(std::move(s)); }


struct ws_send_limits {
  std::size_t max_queue_messages = 256;      ///< data frames queued (including the one being written)
  std::size_t max_queue_bytes = 1024 * 1024; ///< their payload bytes (at most max_queue_bytes_limit: 1 GiB)
  slow_consumer policy = slow_consumer::drop_oldest;
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);  ///< a write without progress ends the connection
  std::chrono::milliseconds close_timeout = std::chrono::seconds(5);   ///< after our close frame, the peer's
  std::size_t max_batch = 64;                ///< frames per gathered write
};

/// Counters a connection bumps (any may be null); plain atomics owned by the app.
struct ws_send_stats {
  std::atomic<std::uint64_t>* messages_out = nullptr;
  std::atomic<std::uint64_t>* bytes_out = nullptr;
  std::atomic<std::uint64_t>* dropped_oldest = nullptr;
  std::atomic<std::uint64_t>* dropped_newest = nullptr;
  std::atomic<std::uint64_t>* closed_slow = nullptr;
};

namespace ws_detail {
inline void bump(std::atomic<std::uint64_t>* c, std::uint64_t n = 1) noexcept {
  if (c) c->fetch_add(n, std::memory_order_relaxed);
}
}  // namespace ws_detail

class ws_connection {
public:
  /// What flush() left to do.
  enum class write_state : std::uint8_t {
    idle,     ///< everything queued is written: wait for the next notify
    blocked,  ///< the socket takes no more now: wait until it is writable, then flush again
    closing,  ///< our close frame is out: wait for the peer's (peer_closed()), at most close_timeout
    done,     ///< the writer has ended (stopped, the close handshake done, or a write error)
  };

  /// `l` and `st` (null: nothing counted) are read, not copied: every connection of an adapter
  /// shares them, and they must outlive the connection.
  explicit ws_connection(const ws_send_limits& l, const ws_send_stats* st = nullptr) : lim_(&l), stats_(st ? st : &no_stats) {}
  explicit ws_connection(const ws_send_limits&&, const ws_send_stats* = nullptr) = delete;  // a temporary would dangle
  ws_connection(const ws_connection&) = delete;
  ws_connection& operator=(const ws_connection&) = delete;

  /// The connection's session id (flow/ws_hub.hpp), 0 until attached.
  std::uint64_t id() const noexcept { return id_; }
  void set_id(std::uint64_t id) noexcept { id_ = id; }

  /// Queues a text (or binary) message. False when it was not queued: the connection is
  /// closing, or the policy dropped it (drop_newest) or closed the connection (close).
  bool send(ws_payload p, codec::ws::opcode op = codec::ws::opcode::text) {
    if (closing_ || !p) return false;
    const std::size_t n = p->size();
    if (std::size_t{data_count()} + 1 > lim_->max_queue_messages || queued_bytes() + n > max_bytes()) {
      switch (lim_->policy) {
        case slow_consumer::drop_newest:
          ws_detail::bump(stats_->dropped_newest);
          return false;
        case slow_consumer::close:
          ws_detail::bump(stats_->closed_slow);
          close(codec::ws::close_code::try_again_later, "slow consumer: send queue full");
          return false;
        case slow_consumer::drop_oldest:
          if (n > max_bytes()) {  // it could never fit: it goes, the queue stays
            ws_detail::bump(stats_->dropped_oldest);
            return false;
          }
          if (!b_) {  // nothing queued to drop (a bound of no messages)
            ws_detail::bump(stats_->dropped_oldest);
            return false;
          }
          auto& b = *b_;
          // The front entry may be half written (offset): it stays; drop the oldest of the rest.
          for (std::size_t i = b.head + (b.offset ? 1 : 0); i < b.q.size() && (std::size_t{b.data_count} + 1 > lim_->max_queue_messages ||
                                                                                b.data_bytes + n > max_bytes());) {
            if (!b.q[i].data) {
              ++i;
              continue;
            }
            b.data_bytes -= static_cast<std::uint32_t>(b.q[i].body->size());
            --b.data_count;
            b.q.erase(b.q.begin() + static_cast<std::ptrdiff_t>(i));
            ws_detail::bump(stats_->dropped_oldest);
          }
          if (std::size_t{b.data_count} + 1 > lim_->max_queue_messages || b.data_bytes + n > max_bytes()) {
            ws_detail::bump(stats_->dropped_oldest);  // everything queued is being written
            return false;
          }
          break;
      }
    }
    push(op, std::move(p), true);
    return true;
  }
  bool send_text(std::string s) { return send(make_ws_payload(std::move(s))); }

  /// Answers a ping (not while the data queue is full: a peer that pings and never reads
  /// must not grow it).
  void pong(std::string_view data) {
    if (closing_ || data_count() >= lim_->max_queue_messages) return;
    push(codec::ws::opcode::pong, make_ws_payload(std::string(data)), false);
  }
  void ping(std::string_view data = {}) {
    if (closing_) return;
    push(codec::ws::opcode::ping, make_ws_payload(std::string(data)), false);
  }

  /// Starts the close handshake: nothing more is queued; our close frame goes after the data
  /// already queued (code 1013 by the close policy drops the queue first: the peer is not
  /// reading it). Idempotent.
  void close(std::uint16_t code, std::string_view reason) {
    if (closing_) return;
    closing_ = true;
    close_code_ = code;
    if (code == codec::ws::close_code::try_again_later) drop_unsent();
    std::string frame;
    codec::ws::append_close(frame, code, reason);
    // The whole frame is the payload (header included): pushed raw.
    queue().q.push_back({{}, 0, make_ws_payload(std::move(frame)), false});
    wake();
  }

  bool closing() const noexcept { return closing_; }
  std::uint16_t close_code() const noexcept { return close_code_; }
  /// The peer's close frame arrived (the reader says so): the writer ends after ours.
  void peer_closed() {
    peer_closed_ = true;
    wake();
  }
  /// The reader ended (error, EOF): the writer stops.
  void stop() {
    stopped_ = true;
    wake();
  }
  bool stopped() const noexcept { return stopped_; }
  std::size_t queued() const noexcept { return b_ ? b_->q.size() - b_->head : 0; }
  std::size_t queued_bytes() const noexcept { return b_ ? b_->data_bytes : 0; }
  /// True while frames wait: the queue's block is held only then (an idle connection holds none).
  bool holds_memory() const noexcept { return b_ != nullptr; }
  const ws_send_limits& limits() const noexcept { return *lim_; }

  /// `fn(arg)` is called once when frames wait to be written (or the writer should look at its
  /// state: a close, a stop), and again only after the next flush(). Null: nobody is told.
  void set_notify(void (*fn)(void*), void* arg) noexcept {
    notify_ = fn;
    notify_arg_ = arg;
    notified_ = false;
  }

  /// Writes what is queued to `sock` (the connection's socket, a TCP one) without waiting (the
  /// socket is made non-blocking): gathered writes of up to max_batch frames until the queue
  /// is empty or the socket is full.
  template <class Socket>
  write_state flush(Socket& sock, std::error_code& ec) {
    ec.clear();
    notified_ = false;
    if (done_) return write_state::done;
    if (stopped_) return end();
    if (!nb_) {
      sock.non_blocking(true, ec);
      if (ec) return fail(sock);
      nb_ = true;
    }
    while (b_ && b_->head < b_->q.size()) {
      const auto& q = b_->q;
      // Up to max_batch frames, at most 64 buffers (what one sendmsg(2) takes from asio).
      std::array<asio::const_buffer, 64> bufs;
      std::size_t nb = 0, total = 0, skip = b_->offset;
      auto add = [&](const char* p, std::size_t n) {
        if (skip >= n) {
          skip -= n;
          return;
        }
        bufs[nb++] = asio::buffer(p + skip, n - skip);
        total += n - skip;
        skip = 0;
      };
      for (std::size_t i = b_->head, frames = 0; i < q.size() && frames < lim_->max_batch && nb + 2 <= bufs.size(); ++i, ++frames) {
        const auto& e = q[i];
        if (e.head_len) add(e.head.data(), e.head_len);
        add(e.body->data(), e.body->size());
        if (!e.data && e.head_len == 0) break;  // our close frame: nothing after it
      }
      const std::size_t n = sock.write_some(std::span<const asio::const_buffer>(bufs.data(), nb), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec.clear();
        return write_state::blocked;
      }
      if (ec) return fail(sock);
      consume(n);
      if (n < total) return write_state::blocked;  // a short write: the socket is full
    }
    release_queue();
    if (close_written_) return peer_closed_ ? end() : write_state::closing;
    return write_state::idle;
  }

  /// flush() for a writer over a stream that encrypts from one buffer (asio::ssl::stream, which
  /// gathers nothing): moves up to max_batch queued frames (about `max_bytes` at most; a frame is
  /// never split) to the end of `out`, leaving the queue: the policy cannot drop them any more
  /// and they no longer count against its bounds (so `out` adds at most max_bytes plus one frame
  /// to what a connection holds). `frames`: the data frames moved. The writer writes `out`, then
  /// calls wrote(frames, out.size()) and take() again. Says `blocked` when `out` has bytes to
  /// write, else what flush() would: idle, closing (our close frame was taken), done.
  write_state take(std::string& out, std::size_t max_bytes, std::uint64_t& frames) {
    notified_ = false;
    frames = 0;
    if (done_) return write_state::done;
    if (stopped_) return end();
    const std::size_t start = out.size();
    for (std::size_t n = 0; b_ && b_->head < b_->q.size() && n < lim_->max_batch && (n == 0 || out.size() - start < max_bytes); ++n) {
      auto& b = *b_;
      auto& e = b.q[b.head];
      out.append(e.head.data() + std::min<std::size_t>(b.offset, e.head_len), e.head_len - std::min<std::size_t>(b.offset, e.head_len));
      const std::size_t skip = b.offset > e.head_len ? b.offset - e.head_len : 0;
      out.append(e.body->data() + skip, e.body->size() - skip);
      b.offset = 0;
      if (e.data) {
        b.data_bytes -= static_cast<std::uint32_t>(e.body->size());
        --b.data_count;
        ++frames;
      } else if (e.head_len == 0) {
        close_written_ = true;
      }
      e.body.reset();
      ++b.head;
      if (close_written_) break;  // our close frame: nothing after it
    }
    if (b_ && b_->head == b_->q.size()) release_queue();
    if (out.size() > start) return write_state::blocked;
    if (close_written_) return peer_closed_ ? end() : write_state::closing;
    return write_state::idle;
  }
  /// What take() gave was written: counted (messages and bytes out).
  void wrote(std::uint64_t frames, std::size_t bytes) noexcept {
    ws_detail::bump(stats_->messages_out, frames);
    ws_detail::bump(stats_->bytes_out, bytes);
  }
  bool peer_has_closed() const noexcept { return peer_closed_; }

  /// Ends the writer from outside (a write stalled past write_timeout, the peer's close did not
  /// come within close_timeout): closes `sock` (the connection's socket, or the TCP socket
  /// under its stream), so the reader ends too.
  template <class Socket>
  void abort(Socket& sock) {
    std::error_code ignored;
    sock.close(ignored);
    done_ = true;
    drop_all();
  }

  /// A writer coroutine: writes queued frames to `sock` until the connection ends (flush()
  /// driven by a timer of its own). Completes with the write error, if any. On return the
  /// socket may be closed (a stalled write, or the close handshake timed out).
  template <class Socket>
  asio::awaitable<std::error_code> run_writer(Socket& sock) {
    using asio::experimental::as_tuple;
    asio::steady_timer wake(sock.get_executor());
    set_notify([](void* t) { static_cast<asio::steady_timer*>(t)->cancel(); }, &wake);
    for (;;) {
      std::error_code ec;
      switch (flush(sock, ec)) {
        case write_state::done: set_notify(nullptr, nullptr); co_return ec;
        case write_state::idle:
          wake.expires_at(std::chrono::steady_clock::time_point::max());
          (void)co_await wake.async_wait(as_tuple(asio::use_awaitable));
          break;
        case write_state::closing: {
          wake.expires_after(lim_->close_timeout);
          auto [tec] = co_await wake.async_wait(as_tuple(asio::use_awaitable));
          if (!tec && !peer_closed_ && !stopped_) {  // timed out
            set_notify(nullptr, nullptr);
            abort(sock);
            co_return std::error_code{};
          }
          break;
        }
        case write_state::blocked: {
          auto [wec] = co_await net::with_deadline(sock.async_wait(asio::ip::tcp::socket::wait_write, asio::experimental::deferred),
                                                   lim_->write_timeout);
          if (wec) {
            set_notify(nullptr, nullptr);
            abort(sock);
            co_return wec;
          }
          break;
        }
      }
    }
  }

private:
  struct entry {
    std::array<char, 10> head;
    std::uint8_t head_len;  ///< 0: `body` is a whole frame (our close)
    ws_payload body;
    bool data;              ///< a data frame (counted against the bounds, may be dropped)
  };
  /// What only a connection with frames to write holds (a block made for the first frame and
  /// given back when the queue is empty again: 8 bytes in every idle connection where these
  /// took 40). Counts in 32 bits: ws_block bounds a queue's messages in 32 bits, and each queued
  /// frame takes 48 bytes of entry, so 4 Gi of them is out of reach.
  struct queue_block {
    std::vector<entry> q;             ///< [head, size) queued; the front written up to offset bytes
    std::uint32_t head = 0;
    std::uint32_t data_count = 0;
    std::uint32_t offset = 0;         ///< (an entry is at most max_queue_bytes_limit and a frame header)
    std::uint32_t data_bytes = 0;     ///< (at most max_bytes())
  };


  void push(codec::ws::opcode op, ws_payload p, bool data) {
    entry e{{}, 0, std::move(p), data};
    codec::ws::frame_header h;
    h.fin = true;
    h.op = op;
    h.length = e.body->size();
    std::array<char, codec::ws::max_header_size> head{};
    const std::size_t hs = codec::ws::write_header(head, h);
    std::copy_n(head.data(), hs, e.head.data());
    e.head_len = static_cast<std::uint8_t>(hs);
    auto& b = queue();
    if (data) {
      ++b.data_count;
      b.data_bytes += static_cast<std::uint32_t>(e.body->size());
    }
    b.q.push_back(std::move(e));
    wake();
  }
  /// `n` bytes from the front were written: whole frames leave the queue.
  void consume(std::size_t n) {
    auto& b = *b_;  // (called after a write of queued frames)
    std::uint64_t frames = 0, bytes = n;
    n += b.offset;
    while (b.head < b.q.size()) {
      auto& e = b.q[b.head];
      const std::size_t len = e.head_len + e.body->size();
      if (n < len) break;
      n -= len;
      if (e.data) {
        b.data_bytes -= static_cast<std::uint32_t>(e.body->size());
        --b.data_count;
        ++frames;
      } else if (e.head_len == 0) {
        close_written_ = true;
      }
      e.body.reset();
      ++b.head;
    }
    b.offset = static_cast<std::uint32_t>(n);  // (within the front entry)
    ws_detail::bump(stats_->messages_out, frames);
    ws_detail::bump(stats_->bytes_out, bytes);
    if (b.head == b.q.size()) release_queue();
  }
  /// The queue's block, made when the first frame is queued.
  queue_block& queue() {
    if (!b_) {
      b_ = std::make_unique<queue_block>();
      b_->q.reserve(4);  // (one allocation for a burst of a few frames: a reply and its events)
    }
    return *b_;
  }
  std::uint32_t data_count() const noexcept { return b_ ? b_->data_count : 0; }
  /// An empty queue gives its block back, storage and all: an idle connection holds none.
  void release_queue() { b_.reset(); }
  void drop_unsent() {
    if (!b_) return;
    auto& b = *b_;
    const std::size_t keep = b.head + (b.offset ? 1 : 0);
    while (b.q.size() > keep) {
      if (b.q.back().data) {
        b.data_bytes -= static_cast<std::uint32_t>(b.q.back().body->size());
        --b.data_count;
      }
      b.q.pop_back();
    }
  }
  void drop_all() { b_.reset(); }
  write_state end() {
    done_ = true;
    drop_all();
    return write_state::done;
  }
  template <class Socket>
  write_state fail(Socket& sock) {  // (flush's ec says why)
    std::error_code ignored;
    sock.close(ignored);  // the reader ends too
    return end();
  }
  /// The queue's byte cap: the limits' own, at most max_queue_bytes_limit (the counts are 32-bit).
  std::size_t max_bytes() const noexcept { return std::min(lim_->max_queue_bytes, max_queue_bytes_limit); }
  void wake() {
    if (notify_ && !notified_) {
      notified_ = true;
      notify_(notify_arg_);
    }
  }

  static constexpr ws_send_stats no_stats{};
  const ws_send_limits* lim_;
  const ws_send_stats* stats_;
  std::unique_ptr<queue_block> b_;  ///< null: nothing queued
  std::uint64_t id_ = 0;
  void (*notify_)(void*) = nullptr;
  void* notify_arg_ = nullptr;
  std::uint16_t close_code_ = 0;
  bool closing_ : 1 = false, peer_closed_ : 1 = false, stopped_ : 1 = false;
  bool close_written_ : 1 = false, done_ : 1 = false, notified_ : 1 = false, nb_ : 1 = false;
};

}  // namespace rproxy::flow
