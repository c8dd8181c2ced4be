// rproxy/health/breaker_block.hpp: the YAML blocks of a backend group's circuit breaker and
// passive outlier ejection, declared once for every app; they make the pool's health knobs
// (balance::pool_config: every backend of the pool gets its own breaker and detector).
//
//     breaker: { consecutive_failures: 5, cool_down: 5s }          # off when absent
//     outlier: { consecutive_failures: 5, base_ejection: 30s, max_ejected_percent: 10 }
#pragma once

#include <chrono>
#include <cstdint>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/health/circuit_breaker.hpp>
#include <rproxy/health/outlier.hpp>

namespace rproxy::health {

/// `breaker:` per backend: closed -> open after failures -> half-open trial -> closed.
struct breaker_block {
  std::uint32_t consecutive_failures = 5;
  double failure_ratio = 0.0;
  std::uint32_t min_requests = 20;
  std::chrono::milliseconds window = std::chrono::seconds(10);
  std::chrono::milliseconds cool_down = std::chrono::seconds(5);
  std::uint32_t half_open_trials = 1;

  friend bool operator==(const breaker_block&, const breaker_block&) = default;
  static constexpr auto describe() {
    return config::fields(config::doc<&breaker_block::consecutive_failures>("failures in a row that open it (0: off)"),
                          config::doc<&breaker_block::failure_ratio>("open when this share of results in the window failed (0: off)"),
                          config::doc<&breaker_block::min_requests>("results the window needs before failure_ratio counts"),
                          config::doc<&breaker_block::window>("the sliding window of failure_ratio"),
                          config::doc<&breaker_block::cool_down>("how long it stays open before a trial request (half-open)"),
                          config::doc<&breaker_block::half_open_trials>("trial requests at once while half-open"));
  }
  void validate(config::validator& v) const {
    if (!(failure_ratio >= 0.0 && failure_ratio <= 1.0)) v.at(&breaker_block::failure_ratio).error("failure_ratio must be between 0 and 1");
    if (window.count() <= 0) v.at(&breaker_block::window).error("window must be positive");
    if (cool_down.count() <= 0) v.at(&breaker_block::cool_down).error("cool_down must be positive");
    if (half_open_trials == 0) v.at(&breaker_block::half_open_trials).error("half_open_trials must be at least 1");
  }
  breaker_config config() const {
    breaker_config c;
    c.consecutive_failures = consecutive_failures;
    c.failure_ratio = failure_ratio;
    c.min_requests = min_requests;
    c.window = window;
    c.cool_down = cool_down;
    c.half_open_trials = half_open_trials;
    return c;
  }
};

/// `outlier:` passive ejection: a backend that fails in a row is taken out for a while.
struct outlier_block {
  std::uint32_t consecutive_failures = 5;
  std::chrono::milliseconds base_ejection = std::chrono::seconds(30);
  std::chrono::milliseconds max_ejection = std::chrono::seconds(300);
  std::uint32_t max_ejected_percent = 10;

  friend bool operator==(const outlier_block&, const outlier_block&) = default;
  static constexpr auto describe() {
    return config::fields(config::doc<&outlier_block::consecutive_failures>("failures in a row that eject a backend (0: off)"),
                          config::doc<&outlier_block::base_ejection>("the first ejection's length; the n-th recent one lasts n times it"),
                          config::doc<&outlier_block::max_ejection>("the longest ejection"),
                          config::doc<&outlier_block::max_ejected_percent>("share of the group that may be out at once (one always may)"));
  }
  void validate(config::validator& v) const {
    if (base_ejection.count() <= 0) v.at(&outlier_block::base_ejection).error("base_ejection must be positive");
    if (max_ejection < base_ejection) v.at(&outlier_block::max_ejection).error("max_ejection must be at least base_ejection");
    if (max_ejected_percent > 100) v.at(&outlier_block::max_ejected_percent).error("max_ejected_percent must be at most 100");
  }
  outlier_config config() const {
    return {.consecutive_failures = consecutive_failures, .base_ejection = base_ejection, .max_ejection = max_ejection,
            .max_ejected_percent = max_ejected_percent};
  }
};

}  // namespace rproxy::health
