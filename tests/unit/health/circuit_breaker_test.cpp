#include <rproxy/health/circuit_breaker.hpp>

#include <catch2/catch.hpp>

#include <chrono>

using namespace std::chrono_literals;
using rproxy::health::admission;
using rproxy::health::breaker_config;
using rproxy::health::breaker_state;
using rproxy::health::circuit_breaker;

namespace {

using tp = std::chrono::steady_clock::time_point;
const tp t0{std::chrono::hours(1)};

breaker_config consecutive(std::uint32_t n, std::uint32_t trials = 1) {
  breaker_config c;
  c.consecutive_failures = n;
  c.cool_down = 5s;
  c.half_open_trials = trials;
  return c;
}

void fail_n(circuit_breaker& cb, int n, tp now) {
  for (int i = 0; i < n; ++i) cb.on_failure(cb.try_acquire(now), now);
}

}  // namespace

TEST_CASE("breaker opens after N consecutive failures, a success resets the run", "[health][breaker]") {
  circuit_breaker cb{consecutive(3)};
  REQUIRE(cb.state(t0) == breaker_state::closed);
  fail_n(cb, 2, t0);
  cb.on_success(cb.try_acquire(t0), t0);
  fail_n(cb, 2, t0);
  REQUIRE(cb.state(t0) == breaker_state::closed);
  REQUIRE(cb.would_admit(t0));
  fail_n(cb, 1, t0);
  REQUIRE(cb.state(t0) == breaker_state::open);
  REQUIRE_FALSE(cb.would_admit(t0));
  REQUIRE(cb.try_acquire(t0).kind == admission::denied);
  REQUIRE(cb.opens() == 1);
}

TEST_CASE("breaker goes half-open after the cool-down and limits trials", "[health][breaker]") {
  circuit_breaker cb{consecutive(1, 2)};
  fail_n(cb, 1, t0);
  REQUIRE(cb.try_acquire(t0 + 4s).kind == admission::denied);
  REQUIRE(cb.state(t0 + 5s) == breaker_state::half_open);

  auto a = cb.try_acquire(t0 + 5s);
  auto b = cb.try_acquire(t0 + 5s);
  auto c = cb.try_acquire(t0 + 5s);
  REQUIRE(a.kind == admission::trial);
  REQUIRE(b.kind == admission::trial);
  REQUIRE(c.kind == admission::denied);  // the trial limit
  REQUIRE_FALSE(cb.would_admit(t0 + 5s));
  REQUIRE(cb.trials_in_flight() == 2);

  cb.on_cancel(b);  // a trial that ended with no outcome gives its slot back
  REQUIRE(cb.would_admit(t0 + 5s));
  auto d = cb.try_acquire(t0 + 5s);
  REQUIRE(d.kind == admission::trial);

  SECTION("a trial success closes") {
    cb.on_success(a, t0 + 6s);
    REQUIRE(cb.state(t0 + 6s) == breaker_state::closed);
    REQUIRE(cb.try_acquire(t0 + 6s).kind == admission::allowed);
    // The other trial ends later: its ticket belongs to a finished half-open period, ignored.
    cb.on_failure(d, t0 + 6s);
    REQUIRE(cb.state(t0 + 6s) == breaker_state::closed);
  }
  SECTION("a trial failure opens again for a new cool-down") {
    cb.on_failure(a, t0 + 6s);
    REQUIRE(cb.state(t0 + 6s) == breaker_state::open);
    REQUIRE(cb.try_acquire(t0 + 10s).kind == admission::denied);
    REQUIRE(cb.state(t0 + 11s) == breaker_state::half_open);
    cb.on_success(d, t0 + 11s);  // a trial of the earlier half-open period: ignored
    REQUIRE(cb.state(t0 + 11s) == breaker_state::half_open);
    REQUIRE(cb.opens() == 2);
  }
}

TEST_CASE("breaker opens on the failure ratio over the window", "[health][breaker]") {
  breaker_config cfg = breaker_config::disabled();
  cfg.failure_ratio = 0.5;
  cfg.min_requests = 10;
  cfg.window = 10s;
  cfg.window_buckets = 10;
  circuit_breaker cb{cfg};
  REQUIRE(cfg.enabled());

  // 4 failures of 8: under min_requests.
  for (int i = 0; i < 4; ++i) {
    cb.on_success(cb.try_acquire(t0), t0);
    cb.on_failure(cb.try_acquire(t0), t0);
  }
  REQUIRE(cb.state(t0) == breaker_state::closed);
  // 12 s later those have left the window: 9 more results with 4 failures stay closed.
  tp later = t0 + 12s;
  for (int i = 0; i < 5; ++i) cb.on_success(cb.try_acquire(later), later);
  for (int i = 0; i < 4; ++i) cb.on_failure(cb.try_acquire(later), later);
  REQUIRE(cb.state(later) == breaker_state::closed);
  // The 10th result is a failure: 5 of 10 = 0.5: open.
  cb.on_failure(cb.try_acquire(later), later);
  REQUIRE(cb.state(later) == breaker_state::open);
}

TEST_CASE("a disabled breaker never opens", "[health][breaker]") {
  circuit_breaker cb{breaker_config::disabled()};
  fail_n(cb, 1000, t0);
  REQUIRE(cb.state(t0) == breaker_state::closed);
  REQUIRE(cb.try_acquire(t0).kind == admission::allowed);
}
