// rproxy/flow/ws_hub.hpp: the WebSocket connections of a process by session id, so a stage on
// one worker can send to connections on any worker (a room's members, a private message).
//
//     flow::ws_hub hub(executors);                      // one per process: one executor per worker
//     auto id = hub.attach(worker, conn);               // the flow, on its worker
//     hub.deliver(frame, recipients);                   // any worker: one post per other worker
//     hub.detach(id);                                   // the flow ends, on its worker
//     hub.close_all(1001, "server shutting down");      // shutdown: every connection
//
// A session id carries its worker in the top 16 bits (the same layout as rooms::make_session_id),
// so a delivery is split by worker without a lookup: recipients on the caller's worker get the
// frame at once, and each other worker with recipients gets one posted task that walks the
// shared recipient list. Each worker's table is touched only on that worker's thread: no lock.
// A recipient gone before its task runs is skipped. A connection attached after close_all is
// closed at once (a shutdown racing an upgrade).
//
// Fan-out latency (set_fanout_latency: a histogram, seconds): for each delivery with
// recipients, the time from deliver() to the last recipient's frame being on its connection's
// send queue (its writer woken: the write is issued on that worker's next turn), across workers.
// It is the cost of reaching every member (posting to the other workers, their queues), not of
// the kernel writes. Off (no clock read, no allocation) without a histogram.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/observe/metrics.hpp>

namespace rproxy::flow {

class ws_hub {
public:
  using session_id = std::uint64_t;
  using recipients = std::shared_ptr<const std::vector<session_id>>;

  explicit ws_hub(std::vector<asio::any_io_executor> workers) : shards_(workers.size()) {
    for (std::size_t i = 0; i < workers.size(); ++i) shards_[i].ex = std::move(workers[i]);
  }
  ws_hub(const ws_hub&) = delete;
  ws_hub& operator=(const ws_hub&) = delete;

  static constexpr std::uint16_t worker_of(session_id s) noexcept { return static_cast<std::uint16_t>(s >> 48); }
  std::size_t workers() const noexcept { return shards_.size(); }

  /// Registers `c` on worker `w` (the calling thread must be that worker's) and returns its id.
  session_id attach(std::size_t w, ws_connection& c) {
    auto& s = shards_[w];
    const session_id id = (static_cast<std::uint64_t>(w) << 48) | (++s.serial & 0xFFFF'FFFF'FFFFull);
    s.conns.emplace(id, &c);
    c.set_id(id);
    if (closing_ready_.load(std::memory_order_acquire)) c.close(close_code_, close_reason_);  // attached after close_all
    return id;
  }
  void detach(session_id id) { shards_[worker_of(id) % shards_.size()].conns.erase(id); }

  /// The connection `id` if it lives on worker `w` (the calling thread's), else null.
  ws_connection* find(std::size_t w, session_id id) const {
    const auto& m = shards_[w].conns;
    auto it = m.find(id);
    return it == m.end() ? nullptr : it->second;
  }
  std::size_t connections(std::size_t w) const noexcept { return shards_[w].conns.size(); }

  /// Where deliveries record their fan-out latency (null: not measured). Set before any delivery.
  void set_fanout_latency(observe::histogram* h) noexcept { fanout_latency_ = h; }

  /// Sends `frame` to every recipient; called on worker `w`.
  void deliver(std::size_t w, const ws_payload& frame, const recipients& to) {
    if (to->empty()) return;
    const auto start = fanout_latency_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    std::uint64_t others = 0;  // bit i: worker i has recipients (up to 64 workers; more: all posted)
    for (auto id : *to) {
      const auto ow = worker_of(id);
      if (ow == w) {
        if (auto* c = find(w, id)) c->send(frame);
      } else {
        others |= ow < 64 ? (1ull << ow) : ~0ull;
      }
    }
    const auto posted = [&](std::size_t i) { return i != w && (others & (i < 64 ? (1ull << i) : ~0ull)) != 0; };
    std::shared_ptr<fanout_clock> clock;  // the last worker to finish records the latency
    if (fanout_latency_) {
      std::uint32_t n = 0;
      for (std::size_t i = 0; i < shards_.size(); ++i) n += posted(i) ? 1 : 0;
      if (n == 0) return fanout_latency_->observe(std::chrono::steady_clock::now() - start);
      clock = std::make_shared<fanout_clock>(start, n);
    }
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      if (!posted(i)) continue;
      asio::post(shards_[i].ex, [this, i, frame, to, clock] {
        for (auto id : *to)
          if (worker_of(id) == i)
            if (auto* c = find(i, id)) c->send(frame);
        if (clock && clock->pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
          fanout_latency_->observe(std::chrono::steady_clock::now() - clock->start);
      });
    }
  }

  /// Starts the close handshake on every connection (from any thread: posted to each worker).
  void close_all(std::uint16_t code, std::string reason) {
    if (closing_.exchange(true)) return;
    close_code_ = code;
    close_reason_ = reason;
    closing_ready_.store(true, std::memory_order_release);
    for (std::size_t i = 0; i < shards_.size(); ++i)
      asio::post(shards_[i].ex, [this, i, code, reason] {
        for (auto& [id, c] : shards_[i].conns) c->close(code, reason);
      });
  }

private:
  /// One delivery's start, and the workers still to reach.
  struct fanout_clock {
    fanout_clock(std::chrono::steady_clock::time_point s, std::uint32_t n) : start(s), pending(n) {}
    std::chrono::steady_clock::time_point start;
    std::atomic<std::uint32_t> pending;
  };
  struct shard {
    asio::any_io_executor ex;
    std::unordered_map<session_id, ws_connection*> conns;
    std::uint64_t serial = 0;
  };
  std::vector<shard> shards_;
  observe::histogram* fanout_latency_ = nullptr;
  std::atomic<bool> closing_{false};        ///< close_all was called (once)
  std::atomic<bool> closing_ready_{false};  ///< ... and close_code_, close_reason_ are set
  std::uint16_t close_code_ = 0;
  std::string close_reason_;
};

}  // namespace rproxy::flow
