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
// then 24 bits of the worker's attach count and, in the low 24 bits, the connection's slot in
// its worker's table: a plain array of pointers (8 bytes per connection; a free slot holds the
// next free one), so a lookup is an index and a check that the connection there has that id
// (a connection gone, its slot reused, does not match). A delivery is split by worker without a lookup: recipients on the caller's worker get the
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
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/net/idle_sweep.hpp>
#include <rproxy/net/poller.hpp>
#include <rproxy/observe/metrics.hpp>

namespace rproxy::flow {

class ws_hub {
public:
  using session_id = std::uint64_t;
  using recipients = std::shared_ptr<const std::vector<session_id>>;

  explicit ws_hub(std::vector<asio::any_io_executor> workers) : shards_(workers.size()) {
    for (std::size_t i = 0; i < workers.size(); ++i) {
      shards_[i].ex = std::move(workers[i]);
      if (auto* ioc = net::detail::io_context_of(shards_[i].ex)) {
        shards_[i].sweep = &asio::use_service<net::idle_sweep>(*ioc);
        shards_[i].poller = &asio::use_service<net::poller>(*ioc);
      }
    }
  }
  ws_hub(const ws_hub&) = delete;
  ws_hub& operator=(const ws_hub&) = delete;

  static constexpr std::uint16_t worker_of(session_id s) noexcept { return static_cast<std::uint16_t>(s >> 48); }
  std::size_t workers() const noexcept { return shards_.size(); }

  /// The bits of an id that name its slot (the low ones).
  static constexpr unsigned slot_bits = 24;
  /// The most connections one worker holds at once (the slot field of an id); one more is
  /// closed at once with 1013 (far above any open-files limit: fs.nr_open is 2^20 by default).
  static constexpr std::size_t max_per_worker = (std::size_t{1} << slot_bits) - 1;

  /// Registers `c` on worker `w` (the calling thread must be that worker's) and returns its id.
  session_id attach(std::size_t w, ws_connection& c) {
    auto& s = shards_[w];
    std::uint64_t serial;
    do serial = ++s.serial & field_mask;  // 0 never: an id of worker 0, slot 0 would be 0 ("not attached")
    while (serial == 0);
    std::size_t slot = max_per_worker;  // none: finds nothing
    if (s.free != no_slot) {
      slot = s.free;
      s.free = next_free(s.slots[slot]);
      s.slots[slot] = reinterpret_cast<std::uintptr_t>(&c);
    } else if (s.slots.size() < max_per_worker) {
      slot = s.slots.size();
      s.slots.push_back(reinterpret_cast<std::uintptr_t>(&c));
    }
    const session_id id = (static_cast<std::uint64_t>(w) << 48) | (serial << slot_bits) | slot;
    c.set_id(id);
    if (slot == max_per_worker) c.close(codec::ws::close_code::try_again_later, "too many connections");
    else ++s.live;
    if (closing_ready_.load(std::memory_order_acquire)) c.close(close_code_, close_reason_);  // attached after close_all
    return id;
  }
  void detach(session_id id) {
    auto& s = shards_[worker_of(id) % shards_.size()];
    const std::size_t slot = id & field_mask;
    if (slot >= s.slots.size() || !holds(s.slots[slot], id)) return;
    s.slots[slot] = (static_cast<std::uintptr_t>(s.free) << 1) | 1;
    s.free = slot;
    --s.live;
  }

  /// The connection `id` if it lives on worker `w` (the calling thread's), else null.
  ws_connection* find(std::size_t w, session_id id) const {
    const auto& s = shards_[w];
    const std::size_t slot = id & field_mask;
    if (slot >= s.slots.size() || !holds(s.slots[slot], id)) return nullptr;
    return reinterpret_cast<ws_connection*>(s.slots[slot]);
  }
  std::size_t connections(std::size_t w) const noexcept { return shards_[w].live; }
  /// Worker `w`'s idle sweep (net/idle_sweep.hpp: its io_context's), which the sessions on `w`
  /// reach through here rather than each keeping a pointer (8 bytes a connection). Null when
  /// w's executor is not an io_context's.
  net::idle_sweep* sweep(std::size_t w) const noexcept { return shards_[w].sweep; }
  /// Worker `w`'s poller (net/poller.hpp: its io_context's), which watches its sessions' sockets.
  net::poller* poller(std::size_t w) const noexcept { return shards_[w].poller; }

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
        for (const auto v : shards_[i].slots)
          if (!(v & 1)) reinterpret_cast<ws_connection*>(v)->close(code, reason);
      });
  }

private:
  /// One delivery's start, and the workers still to reach.
  struct fanout_clock {
    fanout_clock(std::chrono::steady_clock::time_point s, std::uint32_t n) : start(s), pending(n) {}
    std::chrono::steady_clock::time_point start;
    std::atomic<std::uint32_t> pending;
  };
  static constexpr std::uint64_t field_mask = (std::uint64_t{1} << slot_bits) - 1;
  static constexpr std::size_t no_slot = ~std::size_t{0};
  /// A slot: a connection's address (even), or a free slot's link (odd: the next free slot << 1).
  static std::size_t next_free(std::uintptr_t v) noexcept {
    const std::size_t n = v >> 1;
    return n == (no_slot >> 1) ? no_slot : n;
  }
  static bool holds(std::uintptr_t v, session_id id) noexcept {
    return !(v & 1) && reinterpret_cast<const ws_connection*>(v)->id() == id;
  }
  struct shard {
    asio::any_io_executor ex;
    net::idle_sweep* sweep = nullptr;   ///< ex's io_context's
    net::poller* poller = nullptr;      ///< ex's io_context's
    std::vector<std::uintptr_t> slots;  ///< indexed by the low bits of an id
    std::size_t free = no_slot;         ///< the first free slot
    std::size_t live = 0;
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
