// rproxy/health/retry_block.hpp: the YAML block of a retry policy (a route's `retry:`), declared
// once for every app; health/retry_stage.hpp applies it.
//
//     retry:
//       count: 2                          # retries per request, on top of the first attempt
//       on: [ connect_error, reset, http_502, http_503 ]
//       budget: { ratio: 0.2, min_per_second: 5, window: 10s }
//       retry_after: 1                    # Retry-After seconds when the budget sheds a request
//
// A request goes to another backend only when that is safe: a failed connect (nothing reached
// a backend), or an idempotent request without a body (GET, HEAD, OPTIONS, TRACE) whose backend
// reset or answered 502/503 before anything reached the client. A POST whose body was sent
// never is.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/health/retry_budget.hpp>
#include <rproxy/health/retry_on.hpp>

namespace rproxy::health {

/// One entry of a retry policy's `on:` list.
enum class retry_condition : std::uint8_t {
  connect_error = retry_on::connect_error,
  reset = retry_on::reset,
  status_502 = retry_on::status_502,
  status_503 = retry_on::status_503,
};
constexpr auto config_enum_names(retry_condition) {
  return std::array{config::enum_name{"connect_error", retry_condition::connect_error}, config::enum_name{"reset", retry_condition::reset},
                    config::enum_name{"http_502", retry_condition::status_502}, config::enum_name{"http_503", retry_condition::status_503}};
}

/// `budget:` retries allowed over a sliding window (health/retry_budget.hpp).
struct retry_budget_block {
  double ratio = 0.2;
  std::uint32_t min_per_second = 10;
  std::chrono::milliseconds window = std::chrono::seconds(10);

  friend bool operator==(const retry_budget_block&, const retry_budget_block&) = default;
  static constexpr auto describe() {
    return config::fields(config::doc<&retry_budget_block::ratio>("retries allowed per original request in the window (0.2: one in five)"),
                          config::doc<&retry_budget_block::min_per_second>("retries allowed per second of the window whatever the traffic"),
                          config::doc<&retry_budget_block::window>("the sliding window the budget counts over"));
  }
  void validate(config::validator& v) const {
    if (!(ratio >= 0.0 && ratio <= 10.0)) v.at(&retry_budget_block::ratio).error("ratio must be between 0 and 10");
    if (window.count() < 100) v.at(&retry_budget_block::window).error("window must be at least 100ms");
  }
  retry_budget_config config() const {
    return {.ratio = ratio, .min_retries_per_second = min_per_second, .window = window, .buckets = 10};
  }
};

/// `retry:` one route's retry policy.
struct retry_block {
  std::uint32_t count = 2;
  std::vector<retry_condition> on{retry_condition::connect_error, retry_condition::reset};
  retry_budget_block budget{};
  std::uint32_t retry_after = 1;

  friend bool operator==(const retry_block&, const retry_block&) = default;
  static constexpr auto describe() {
    return config::fields(
        config::doc<&retry_block::count>("retries per request on top of the first attempt (0: none)"),
        config::doc<&retry_block::on>("failures that are retried: connect_error, reset (before the response), http_502, http_503; "
                                      "all but connect_error only for idempotent requests without a body"),
        config::doc<&retry_block::budget>("caps retries to a share of the traffic, so a failing backend cannot multiply the load"),
        config::doc<&retry_block::retry_after>("Retry-After seconds of the 503 when the budget refuses a retry (0: none)"));
  }
  void validate(config::validator& v) const {
    if (count > 10) v.at(&retry_block::count).error("count must be at most 10");
  }
  /// The `on:` list as retry_on bits.
  std::uint8_t mask() const noexcept {
    std::uint8_t m = 0;
    for (auto c : on) m |= static_cast<std::uint8_t>(c);
    return m;
  }
};

}  // namespace rproxy::health
