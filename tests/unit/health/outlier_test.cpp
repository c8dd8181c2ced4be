#include <rproxy/health/outlier.hpp>

#include <catch2/catch.hpp>

#include <chrono>

using namespace std::chrono_literals;
using rproxy::health::ejection_allowed;
using rproxy::health::outlier_config;
using rproxy::health::outlier_detector;

namespace {
using tp = std::chrono::steady_clock::time_point;
const tp t0{std::chrono::hours(1)};

outlier_config cfg() {
  outlier_config c;
  c.consecutive_failures = 3;
  c.base_ejection = 10s;
  c.max_ejection = 35s;
  c.max_ejected_percent = 50;
  return c;
}
}  // namespace

TEST_CASE("N consecutive failures reach the ejection threshold", "[health][outlier]") {
  outlier_detector od{cfg()};
  REQUIRE_FALSE(od.on_failure(t0));
  REQUIRE_FALSE(od.on_failure(t0));
  od.on_success();  // breaks the run
  REQUIRE(od.consecutive_failures() == 0);
  REQUIRE_FALSE(od.on_failure(t0));
  REQUIRE_FALSE(od.on_failure(t0));
  REQUIRE(od.on_failure(t0));
  REQUIRE_FALSE(od.ejected(t0));  // the caller decides (guard), then ejects
  od.eject(t0);
  REQUIRE(od.ejected(t0));
  REQUIRE(od.ejected(t0 + 9s));
  REQUIRE_FALSE(od.ejected(t0 + 10s));
  REQUIRE(od.ejections() == 1);
  REQUIRE(od.consecutive_failures() == 0);
}

TEST_CASE("repeat ejections back off: base * count, capped", "[health][outlier]") {
  outlier_detector od{cfg()};
  REQUIRE(od.backoff(1) == 10s);
  REQUIRE(od.backoff(2) == 20s);
  REQUIRE(od.backoff(3) == 30s);
  REQUIRE(od.backoff(4) == 35s);
  REQUIRE(od.backoff(1000000) == 35s);

  tp t = t0;
  std::chrono::seconds expected[] = {10s, 20s, 30s, 35s, 35s};
  for (auto d : expected) {
    auto until = od.eject(t);
    REQUIRE(until - t == d);
    REQUIRE(od.ejected(until - 1ns));
    t = until + 1s;  // fails again soon after coming back
  }
  REQUIRE(od.ejections() == 5);

  // Staying in for max_ejection resets the back-off.
  auto until = od.eject(t + 35s);
  REQUIRE(until - (t + 35s) == 10s);
}

TEST_CASE("failures while ejected do not re-trigger", "[health][outlier]") {
  outlier_detector od{cfg()};
  od.eject(t0);
  for (int i = 0; i < 10; ++i) REQUIRE_FALSE(od.on_failure(t0 + 1s));
  REQUIRE(od.on_failure(t0 + 10s));  // back in, and the run continued
}

TEST_CASE("max ejected percent guard", "[health][outlier]") {
  STATIC_REQUIRE(ejection_allowed(0, 10, 10));
  STATIC_REQUIRE_FALSE(ejection_allowed(1, 10, 10));
  STATIC_REQUIRE(ejection_allowed(2, 10, 30));
  STATIC_REQUIRE_FALSE(ejection_allowed(3, 10, 30));
  STATIC_REQUIRE(ejection_allowed(0, 3, 10));  // at least one, whatever the percentage
  STATIC_REQUIRE_FALSE(ejection_allowed(1, 3, 10));
  STATIC_REQUIRE_FALSE(ejection_allowed(0, 3, 0));  // 0%: off
  STATIC_REQUIRE_FALSE(ejection_allowed(0, 0, 100));
  STATIC_REQUIRE_FALSE(ejection_allowed(4, 4, 250));
}

TEST_CASE("a disabled detector never asks to eject", "[health][outlier]") {
  outlier_config c = cfg();
  c.consecutive_failures = 0;
  outlier_detector od{c};
  for (int i = 0; i < 100; ++i) REQUIRE_FALSE(od.on_failure(t0));
}
