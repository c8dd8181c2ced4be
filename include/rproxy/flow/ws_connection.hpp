// rproxy/flow/ws_connection.hpp: one WebSocket connection's sending side: a bounded queue of
// frames with a declared slow-consumer policy, written by one writer with gathered writes.
//
//     flow::ws_connection c(socket, {.max_queue_messages = 256, .policy = flow::slow_consumer::drop_oldest});
//     c.send(payload);                         // any stage, on the connection's worker: never waits
//     c.close(1001, "going away");             // the close handshake starts after what is queued
//     co_await c.run_writer();                 // beside the reader (flow/ws.hpp runs both)
//
// A payload is a shared immutable buffer (`ws_payload`): a room broadcast is encoded once and
// the same buffer is queued on every recipient (a reference count each). The frame header (2 to
// 10 bytes: server frames are not masked) is written beside it in the queue entry, and the
// writer sends up to `max_batch` queued frames with one gathered write (one writev(2)).
//
// The queue is bounded in messages and in bytes. When a data frame would go past a bound:
//   drop_oldest  the oldest queued data frames not being written are dropped until it fits
//                (the newest state wins: chat, presence);
//   drop_newest  the new frame is dropped (what was promised stays in order);
//   close        the connection is closed with 1013 (try again later): the client reconnects
//                and asks for what it missed (history since its last message id).
// Control frames (pong, close) are never dropped; a ping is not answered while the queue is
// full. So one reader that does not read costs its bounded queue and never stalls a sender: a
// send is a push onto a deque. A write that makes no progress for write_timeout ends the
// connection.
//
// Threads: a connection is used only on its worker's thread (cross-worker sends are posted:
// flow/ws_hub.hpp).
#pragma once

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/net/deadline.hpp>

namespace rproxy::flow {

/// One message's bytes, shared by every connection it goes to (and by a room's history).
using ws_payload = std::shared_ptr<const std::string>;

inline ws_payload make_ws_payload(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

/// What a connection does when a data frame would overflow its send queue.
enum class slow_consumer : std::uint8_t { drop_oldest, drop_newest, close };

constexpr std::string_view to_string(slow_consumer p) noexcept {
  switch (p) {
    case slow_consumer::drop_oldest: return "drop_oldest";
    case slow_consumer::drop_newest: return "drop_newest";
    case slow_consumer::close: return "close";
  }
  return "?";
}

struct ws_send_limits {
  std::size_t max_queue_messages = 256;      ///< data frames queued (including the one being written)
  std::size_t max_queue_bytes = 1024 * 1024; ///< their payload bytes
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
  ws_connection(asio::ip::tcp::socket& s, const ws_send_limits& l, const ws_send_stats& st = {})
      : sock_(s), lim_(l), stats_(st), wake_(s.get_executor()) {}
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
    if (data_count_ + 1 > lim_.max_queue_messages || data_bytes_ + n > lim_.max_queue_bytes) {
      switch (lim_.policy) {
        case slow_consumer::drop_newest:
          ws_detail::bump(stats_.dropped_newest);
          return false;
        case slow_consumer::close:
          ws_detail::bump(stats_.closed_slow);
          close(codec::ws::close_code::try_again_later, "slow consumer: send queue full");
          return false;
        case slow_consumer::drop_oldest:
          if (n > lim_.max_queue_bytes) {  // it could never fit: it goes, the queue stays
            ws_detail::bump(stats_.dropped_oldest);
            return false;
          }
          // Entries [0, in_flight_) are being written; drop the oldest of the rest.
          for (std::size_t i = in_flight_; i < q_.size() && (data_count_ + 1 > lim_.max_queue_messages ||
                                                               data_bytes_ + n > lim_.max_queue_bytes);) {
            if (!q_[i].data) {
              ++i;
              continue;
            }
            data_bytes_ -= q_[i].body->size();
            --data_count_;
            q_.erase(q_.begin() + static_cast<std::ptrdiff_t>(i));
            ws_detail::bump(stats_.dropped_oldest);
          }
          if (data_count_ + 1 > lim_.max_queue_messages || data_bytes_ + n > lim_.max_queue_bytes) {
            ws_detail::bump(stats_.dropped_oldest);  // everything queued is being written
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
    if (closing_ || data_count_ >= lim_.max_queue_messages) return;
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
    q_.push_back({{}, 0, make_ws_payload(std::move(frame)), false});
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
  std::size_t queued() const noexcept { return q_.size(); }
  std::size_t queued_bytes() const noexcept { return data_bytes_; }

  /// Writes queued frames until the connection ends. Completes with the write error, if any.
  /// On return the socket may be closed (a stalled write, or the close handshake timed out).
  asio::awaitable<std::error_code> run_writer() {
    using asio::experimental::deferred;
    std::vector<asio::const_buffer> bufs;
    // The batch's frame headers, copied: a drop_oldest erase may move queue entries (std::deque
    // erase shifts the shorter side), the shared bodies they point to never move.
    std::vector<std::array<char, 10>> heads;
    bool close_written = false;
    for (;;) {
      if (stopped_) co_return std::error_code{};
      if (q_.empty()) {
        if (close_written) {
          if (peer_closed_) co_return std::error_code{};
          // Our close is out: wait for the peer's, at most close_timeout.
          wake_.expires_after(lim_.close_timeout);
          auto [ec] = co_await wake_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
          if (!ec && !peer_closed_ && !stopped_) {  // timed out
            std::error_code ignored;
            sock_.close(ignored);
            co_return std::error_code{};
          }
          continue;
        }
        wake_.expires_at(std::chrono::steady_clock::time_point::max());
        (void)co_await wake_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
        continue;
      }
      bufs.clear();
      heads.resize(std::min(q_.size(), lim_.max_batch));
      in_flight_ = 0;
      std::uint64_t data_frames = 0, bytes = 0;
      for (auto& e : q_) {
        if (in_flight_ == lim_.max_batch) break;
        heads[in_flight_] = e.head;
        if (e.head_len) bufs.push_back(asio::buffer(heads[in_flight_].data(), e.head_len));
        bufs.push_back(asio::buffer(e.body->data(), e.body->size()));
        bytes += e.head_len + e.body->size();
        if (e.data) ++data_frames;
        ++in_flight_;
        if (!e.data && e.head_len == 0) {  // our close frame: nothing after it
          close_written = true;
          break;
        }
      }
      auto [ec, n] = co_await net::with_deadline(asio::async_write(sock_, bufs, deferred), lim_.write_timeout);
      (void)n;
      for (std::size_t i = 0; i < in_flight_; ++i) {
        if (q_.front().data) {
          data_bytes_ -= q_.front().body->size();
          --data_count_;
        }
        q_.pop_front();
      }
      in_flight_ = 0;
      if (ec) {
        std::error_code ignored;
        sock_.close(ignored);  // the reader ends too
        co_return ec;
      }
      ws_detail::bump(stats_.messages_out, data_frames);
      ws_detail::bump(stats_.bytes_out, bytes);
      if (close_written) q_.clear();
    }
  }

private:
  struct entry {
    std::array<char, 10> head;
    std::uint8_t head_len;  ///< 0: `body` is a whole frame (our close)
    ws_payload body;
    bool data;              ///< a data frame (counted against the bounds, may be dropped)
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
    if (data) {
      ++data_count_;
      data_bytes_ += e.body->size();
    }
    q_.push_back(std::move(e));
    wake();
  }
  void drop_unsent() {
    while (q_.size() > in_flight_) {
      if (q_.back().data) {
        data_bytes_ -= q_.back().body->size();
        --data_count_;
      }
      q_.pop_back();
    }
  }
  void wake() { wake_.cancel(); }

  asio::ip::tcp::socket& sock_;
  const ws_send_limits& lim_;
  ws_send_stats stats_;
  asio::steady_timer wake_;
  std::deque<entry> q_;
  std::size_t in_flight_ = 0;
  std::size_t data_count_ = 0, data_bytes_ = 0;
  std::uint64_t id_ = 0;
  std::uint16_t close_code_ = 0;
  bool closing_ = false, peer_closed_ = false, stopped_ = false;
};

}  // namespace rproxy::flow
