// rproxy/balance/handle.hpp: the guard a balancer returns for one flow on one backend.
//
// Picking counts the flow in the backend's in-flight total; the handle takes it out again when
// released (explicitly, or when destroyed). In between it reports what happened, which feeds
// the backend's latency EWMA (p2c_ewma), its counters, outlier detection and circuit breaker:
//
//     if (auto h = balancer.pick(pool, key)) {
//       connect(h->address());
//       h->observe_latency(connect_time);          // EWMA only; may be called several times
//       ...
//       h->finish(ec);                             // outcome + release, or:
//       // h->succeed(); h->fail(); h->release();
//     }
//
// finish(ec): no error is a success, an error equal to rproxy::condition::upstream is a
// failure, anything else (the client left) ends the flow with no outcome. The first outcome
// counts; later ones are ignored. A handle released without an outcome gives back its circuit
// breaker trial slot, if it held one.
//
// A handle is move-only and belongs to one flow (one thread at a time); the backend it points
// to is shared and thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <rproxy/balance/backend.hpp>
#include <rproxy/core/error.hpp>
#include <rproxy/health/circuit_breaker.hpp>

namespace rproxy::balance {

template <class Backend>
class basic_handle {
public:
  using backend_type = Backend;
  using clock_type = typename Backend::clock_type;
  using time_point = typename clock_type::time_point;

  basic_handle() noexcept = default;
  basic_handle(basic_handle&& o) noexcept
      : b_(std::move(o.b_)), ticket_(o.ticket_), picked_(o.picked_), reported_(o.reported_) {}
  basic_handle& operator=(basic_handle&& o) noexcept {
    if (this != &o) {
      release();
      b_ = std::move(o.b_);
      ticket_ = o.ticket_;
      picked_ = o.picked_;
      reported_ = o.reported_;
    }
    return *this;
  }
  basic_handle(const basic_handle&) = delete;
  basic_handle& operator=(const basic_handle&) = delete;
  ~basic_handle() { release(); }

  /// False once released (or when default-constructed).
  explicit operator bool() const noexcept { return b_ != nullptr; }

  const Backend& backend() const noexcept { return *b_; }
  const Backend* operator->() const noexcept { return b_.get(); }
  const Backend& operator*() const noexcept { return *b_; }
  /// Shares ownership of the backend (it stays valid after release or removal from the pool).
  const std::shared_ptr<Backend>& backend_ptr() const noexcept { return b_; }

  const auto& address() const noexcept { return b_->address(); }
  const std::string& id() const noexcept { return b_->id(); }

  /// When the backend was picked (for latency measurements).
  time_point picked_at() const noexcept { return picked_; }
  /// Whether this flow is a circuit breaker's half-open trial.
  bool trial() const noexcept { return ticket_.kind == health::admission::trial; }
  /// Whether an outcome has been reported.
  bool reported() const noexcept { return reported_; }

  /// Feeds a latency sample (connect time, time to first byte...) to the backend's EWMA.
  void observe_latency(std::chrono::nanoseconds sample) noexcept {
    if (b_) b_->observe_latency(sample);
  }

  /// The flow succeeded (first outcome only). Does not release.
  void succeed(time_point now = clock_type::now()) noexcept {
    if (!b_ || reported_) return;
    reported_ = true;
    b_->on_success(ticket_, now);
  }

  /// The backend failed this flow (first outcome only). Does not release.
  void fail(time_point now = clock_type::now()) noexcept {
    if (!b_ || reported_) return;
    reported_ = true;
    b_->on_failure(ticket_, now);
  }

  /// Reports by error code, observes `latency` if > 0, then releases.
  void finish(const std::error_code& ec, std::chrono::nanoseconds latency = {},
              time_point now = clock_type::now()) noexcept {
    if (!b_) return;
    if (!ec) {
      observe_latency(latency);
      succeed(now);
    } else if (ec == rproxy::condition::upstream) {
      fail(now);
    }
    release();
  }

  /// Ends the flow on this backend: in-flight count down. Idempotent.
  void release() noexcept {
    if (!b_) return;
    if (!reported_) b_->on_cancel(ticket_);
    b_->release();
    b_.reset();
  }

private:
  template <class, class>
  friend class basic_pool;

  basic_handle(std::shared_ptr<Backend> b, health::breaker_ticket t, time_point picked) noexcept
      : b_(std::move(b)), ticket_(t), picked_(picked) {}

  std::shared_ptr<Backend> b_;
  health::breaker_ticket ticket_{};
  time_point picked_{};
  bool reported_ = false;
};

}  // namespace rproxy::balance
