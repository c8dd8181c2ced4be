#include <rproxy/health/retry_budget.hpp>

#include <rproxy/core/error.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <system_error>

using namespace std::chrono_literals;
using rproxy::health::retry_budget;
using rproxy::health::retry_budget_config;

namespace {
using tp = std::chrono::steady_clock::time_point;
const tp t0{std::chrono::hours(1)};

retry_budget_config cfg(double ratio, std::uint32_t floor) {
  retry_budget_config c;
  c.ratio = ratio;
  c.min_retries_per_second = floor;
  c.window = 10s;
  c.buckets = 10;
  return c;
}

// A test error category with chosen source and retry safety.
enum class test_err { refused = 1, reset, client_gone };
class test_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "test"; }
  std::string message(int) const override { return "test"; }
  rproxy::condition source(int c) const noexcept override {
    return static_cast<test_err>(c) == test_err::client_gone ? rproxy::condition::downstream
                                                             : rproxy::condition::upstream;
  }
  bool retry_safe(int c) const noexcept override { return static_cast<test_err>(c) == test_err::refused; }
};
std::error_code ec(test_err e) {
  static const test_category cat;
  return {static_cast<int>(e), cat};
}
}  // namespace

TEST_CASE("retries are allowed up to ratio * requests", "[health][retry]") {
  retry_budget b{cfg(0.2, 0)};
  REQUIRE_FALSE(b.try_retry(t0));  // no traffic, no floor: nothing
  for (int i = 0; i < 100; ++i) b.on_request(t0 + std::chrono::milliseconds(i * 10));
  tp now = t0 + 1s;
  REQUIRE(b.requests(now) == 100);
  REQUIRE(b.allowed(now) == Approx(20.0));
  for (int i = 0; i < 20; ++i) REQUIRE(b.try_retry(now));
  REQUIRE_FALSE(b.try_retry(now));
  REQUIRE(b.retries(now) == 20);

  // More requests earn more retries.
  for (int i = 0; i < 5; ++i) b.on_request(now);
  REQUIRE(b.try_retry(now));
  REQUIRE_FALSE(b.try_retry(now));
}

TEST_CASE("the window slides: old requests and retries expire", "[health][retry]") {
  retry_budget b{cfg(0.5, 0)};
  for (int i = 0; i < 10; ++i) b.on_request(t0);
  for (int i = 0; i < 5; ++i) REQUIRE(b.try_retry(t0));
  REQUIRE_FALSE(b.try_retry(t0 + 5s));
  REQUIRE(b.requests(t0 + 9s) == 10);
  REQUIRE(b.requests(t0 + 10s) == 0);  // the whole window has moved past
  REQUIRE(b.retries(t0 + 10s) == 0);
  REQUIRE_FALSE(b.try_retry(t0 + 10s));
  // Buckets are reused after a full turn of the ring: stale counts must not come back.
  for (int i = 0; i < 4; ++i) b.on_request(t0 + 20s);
  REQUIRE(b.requests(t0 + 20s) == 4);
  REQUIRE(b.retries(t0 + 20s) == 0);
  REQUIRE(b.try_retry(t0 + 20s));
  REQUIRE(b.try_retry(t0 + 20s));
  REQUIRE_FALSE(b.try_retry(t0 + 20s));
}

TEST_CASE("the floor allows min_retries_per_second * window with no traffic", "[health][retry]") {
  retry_budget b{cfg(0.1, 2)};  // 2/s over 10 s: 20 retries
  for (int i = 0; i < 20; ++i) REQUIRE(b.try_retry(t0));
  REQUIRE_FALSE(b.try_retry(t0));
  for (int i = 0; i < 10; ++i) b.on_request(t0);  // + 0.1 * 10 = 1 more
  REQUIRE(b.try_retry(t0));
  REQUIRE_FALSE(b.try_retry(t0));
}

TEST_CASE("idempotent methods", "[health][retry]") {
  using rproxy::health::idempotent;
  for (auto m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) REQUIRE(idempotent(m));
  for (auto m : {"POST", "PATCH", "CONNECT", "get", ""}) REQUIRE_FALSE(idempotent(m));
}

TEST_CASE("retry is safe for connect failures or idempotent requests", "[health][retry]") {
  using rproxy::health::retry_safe;
  REQUIRE_FALSE(retry_safe({}, "GET"));                      // nothing failed
  REQUIRE(retry_safe(ec(test_err::refused), "POST"));        // nothing reached the backend
  REQUIRE(retry_safe(ec(test_err::refused)));                // protocols with no method
  REQUIRE_FALSE(retry_safe(ec(test_err::reset), "POST"));    // may have been processed
  REQUIRE(retry_safe(ec(test_err::reset), "GET"));
  REQUIRE_FALSE(retry_safe(ec(test_err::reset)));
  REQUIRE_FALSE(retry_safe(ec(test_err::client_gone), "GET"));  // the client left: no retry
  REQUIRE(retry_safe(std::make_error_code(std::errc::timed_out), "PUT"));
  REQUIRE_FALSE(retry_safe(std::make_error_code(std::errc::timed_out), "POST"));
}

TEST_CASE("retry policy: safe, under max_retries, within budget", "[health][retry]") {
  retry_budget b{cfg(0.0, 1)};  // 10 retries in the window
  rproxy::health::retry_policy p{.max_retries = 2};
  REQUIRE(p.should_retry(ec(test_err::reset), "GET", 0, b, t0));
  REQUIRE(p.should_retry(ec(test_err::reset), "GET", 1, b, t0));
  REQUIRE_FALSE(p.should_retry(ec(test_err::reset), "GET", 2, b, t0));
  REQUIRE_FALSE(p.should_retry(ec(test_err::reset), "POST", 0, b, t0));
  REQUIRE(b.retries(t0) == 2);  // only granted retries are counted
  for (int i = 0; i < 8; ++i) REQUIRE(p.should_retry(ec(test_err::refused), "POST", 0, b, t0));
  REQUIRE_FALSE(p.should_retry(ec(test_err::refused), "POST", 0, b, t0));  // budget spent
}
