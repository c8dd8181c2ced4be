// rproxy/balance/pool.hpp: a pool of backends, shared by every worker thread.
//
//     auto pool = std::make_shared<rproxy::balance::pool>(rproxy::balance::pool_config{
//         .slow_start = std::chrono::seconds(30)});
//     std::vector<rproxy::balance::pool::config_type> cfg{{"a", ep_a, 5}, {"b", ep_b, 1}};
//     if (auto r = pool->update(cfg); !r) fail(r.error());   // startup / reload
//
//     rproxy::balance::least_conn lc;
//     if (auto h = lc.pick(*pool)) ... h->finish(ec);        // any worker thread
//
//     pool->set_health("a", false);    // an active probe's verdict (extension point)
//     pool->set_weight("a", 3);        // dynamic weights (extension point)
//
// Readers see an immutable snapshot (the backend list), replaced as a whole by update(); the
// mutable bits of each backend are atomics. So a pick takes no lock (some balancers keep a small
// lock of their own, see each): current() costs one atomic load while nothing changes.
// update() keeps backends by identity (id + address) with their counters and in-flight flows;
// a removed backend leaves the snapshot at once, is marked draining, and stays listed in
// draining() until its last flow ends (collect() forgets it).
// Backends of the first update start at full weight; later additions ramp up (slow start).
//
// Time comes from `Clock::now()` (a template parameter, so tests can drive it).
#pragma once

#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <rproxy/balance/backend.hpp>
#include <rproxy/balance/detail/published.hpp>
#include <rproxy/balance/error.hpp>
#include <rproxy/balance/handle.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/health/circuit_breaker.hpp>

namespace rproxy::balance {

/// An immutable view of a pool's active backends. Never changes once published.
template <class Backend>
struct basic_snapshot {
  std::uint64_t version = 0;  ///< increases with every update()
  std::vector<std::shared_ptr<Backend>> backends;

  std::size_t size() const noexcept { return backends.size(); }
  bool empty() const noexcept { return backends.empty(); }
  const Backend& operator[](std::size_t i) const noexcept { return *backends[i]; }
};

template <class Address, class Clock = std::chrono::steady_clock>
class basic_pool {
public:
  using address_type = Address;
  using clock_type = Clock;
  using time_point = typename Clock::time_point;
  using backend_type = basic_backend<Address, Clock>;
  using backend_ptr = std::shared_ptr<backend_type>;
  using handle_type = basic_handle<backend_type>;
  using snapshot_type = basic_snapshot<backend_type>;
  using config_type = backend_config<Address>;
  using snapshot_ref = typename detail::published<snapshot_type>::ref;

  explicit basic_pool(const pool_config& cfg = {})
      : shared_(std::make_shared<detail::pool_shared<Clock>>(cfg)),
        snap_(std::make_shared<const snapshot_type>()) {}

  basic_pool(const basic_pool&) = delete;
  basic_pool& operator=(const basic_pool&) = delete;

  const pool_config& config() const noexcept { return shared_->config; }

  /// The current backends, to keep (observers, admin). Takes a short lock.
  std::shared_ptr<const snapshot_type> snapshot() const { return snap_.load(); }

  /// The current backends for the pick path: one atomic load when nothing changed since this
  /// thread last looked. Valid while the returned ref lives; do not keep it across flows.
  snapshot_ref current() const { return snap_.read(); }

  /// Bumped on any change of weights or membership: balancers key their caches on it.
  std::uint64_t weights_epoch() const noexcept { return shared_->weights_epoch.load(std::memory_order_acquire); }
  /// An upper bound of the configured weights of the current backends.
  std::uint32_t max_weight() const noexcept { return shared_->max_weight.load(std::memory_order_acquire); }

  /// Replaces the backend list. Keeps backends by identity (their counters, health and flows);
  /// removed ones drain. Fails, changing nothing, on an empty or duplicate id.
  result<void> update(std::span<const config_type> backends) {
    std::unordered_set<std::string_view> ids;
    for (const auto& c : backends) {
      if (c.id.empty()) return failure(make_error_code(error::empty_backend_id));
      if (!ids.insert(c.id).second) return failure(make_error_code(error::duplicate_backend));
    }

    std::lock_guard lk(write_);
    const auto now = Clock::now();
    auto old = snapshot();
    std::unordered_map<std::string_view, backend_ptr> known;
    for (const auto& b : old->backends) known.emplace(b->id(), b);
    for (const auto& b : draining_) known.emplace(b->id(), b);  // removed earlier, maybe coming back

    // Raise the weight bound before any weight grows (samplers rely on it being an upper bound).
    std::uint32_t bound = max_weight();
    for (const auto& c : backends) bound = std::max(bound, c.weight);
    shared_->max_weight.store(bound, std::memory_order_release);

    auto next = std::make_shared<snapshot_type>();
    next->version = old->version + 1;
    next->backends.reserve(backends.size());
    std::unordered_set<const backend_type*> kept;
    for (const auto& c : backends) {
      auto it = known.find(c.id);
      if (it != known.end() && it->second->address() == c.address) {
        auto& b = it->second;
        b->set_weight(c.weight);
        b->set_flag(detail::flag_removed, false);
        kept.insert(b.get());
        next->backends.push_back(b);
      } else {
        std::int64_t ramp = updated_once_ ? detail::to_ns<Clock>(now) : detail::no_time;
        next->backends.push_back(std::make_shared<backend_type>(c.id, c.address, c.weight, shared_, ramp));
      }
    }

    std::vector<backend_ptr> still_draining;
    auto retire = [&](const backend_ptr& b) {
      if (kept.contains(b.get())) return;
      b->set_flag(detail::flag_removed, true);
      if (b->in_flight() > 0) still_draining.push_back(b);
    };
    for (const auto& b : old->backends) retire(b);
    for (const auto& b : draining_) retire(b);
    draining_ = std::move(still_draining);

    shared_->total.store(next->backends.size(), std::memory_order_relaxed);
    std::shared_ptr<const snapshot_type> published = std::move(next);
    snap_.publish(published);
    refresh_weights(*published);
    updated_once_ = true;
    return {};
  }

  result<void> update(const std::vector<config_type>& backends) {
    return update(std::span<const config_type>(backends));
  }
  result<void> update(std::initializer_list<config_type> backends) {
    return update(std::span<const config_type>(backends.begin(), backends.size()));
  }

  /// Starts a flow on `b` if it is available and its breaker admits it (used by balancers).
  std::optional<handle_type> acquire(const backend_ptr& b, time_point now = Clock::now()) const noexcept {
    if (!b || !b->available(now)) return std::nullopt;
    health::breaker_ticket t;
    if (!b->try_admit(now, t)) return std::nullopt;
    return handle_type(b, t, now);
  }

  /// The current backend with this id, or null.
  backend_ptr find(std::string_view id) const {
    auto s = snapshot();
    for (const auto& b : s->backends)
      if (b->id() == id) return b;
    return nullptr;
  }

  /// Extension point for active probes (TCP, HTTP, mc status): feeds a probe's verdict. A
  /// down -> up change also ends an outlier ejection in progress (the probe saw it recover).
  /// Returns false when no current backend has this id.
  bool set_health(std::string_view id, bool healthy, time_point now = Clock::now()) {
    auto b = find(id);
    if (!b) return false;
    b->set_probe_health(healthy, now);
    return true;
  }

  /// Extension point for dynamic weights (admin API, load reports). Takes effect on the next pick.
  bool set_weight(std::string_view id, std::uint32_t weight) {
    std::lock_guard lk(write_);
    auto b = find(id);
    if (!b) return false;
    if (weight > max_weight()) shared_->max_weight.store(weight, std::memory_order_release);
    b->set_weight(weight);
    refresh_weights(*snapshot());
    return true;
  }

  /// Operator drain: no new flows, current ones finish. undrain() reverses it.
  bool drain(std::string_view id) { return set_drained(id, true); }
  bool undrain(std::string_view id) { return set_drained(id, false); }

  /// Removed backends that still have flows in flight.
  std::vector<backend_ptr> draining() const {
    std::lock_guard lk(write_);
    std::vector<backend_ptr> out;
    for (const auto& b : draining_)
      if (b->in_flight() > 0) out.push_back(b);
    return out;
  }

  /// Forgets removed backends whose flows have all ended; returns how many still drain.
  std::size_t collect() {
    std::lock_guard lk(write_);
    std::erase_if(draining_, [](const backend_ptr& b) { return b->in_flight() == 0; });
    return draining_.size();
  }

private:
  bool set_drained(std::string_view id, bool on) {
    auto b = find(id);
    if (!b) return false;
    b->set_flag(detail::flag_drained, on);
    return true;
  }

  void refresh_weights(const snapshot_type& s) noexcept {
    std::uint32_t m = 0;
    for (const auto& b : s.backends) m = std::max(m, b->weight());
    shared_->max_weight.store(m, std::memory_order_release);
    shared_->weights_epoch.fetch_add(1, std::memory_order_acq_rel);
  }

  std::shared_ptr<detail::pool_shared<Clock>> shared_;
  detail::published<snapshot_type> snap_;
  mutable std::mutex write_;             ///< serialises writers; readers never take it
  std::vector<backend_ptr> draining_;    ///< removed, flows still in flight; guarded by write_
  bool updated_once_ = false;            ///< guarded by write_
};

/// The everyday pool: backends at TCP endpoints.
using pool = basic_pool<asio::ip::tcp::endpoint>;

}  // namespace rproxy::balance
