// rproxy/health/check_config.hpp: the config blocks of active health checks and dynamic weights,
// declared once for every app (health/monitor.hpp runs them).
//
//     health_check:            # off when absent
//       type: http             # tcp: connect; http: GET path
//       path: /healthz
//       interval: 5s
//     dynamic_weights:         # off when absent: each backend's load report sets its weight
//       path: /metric
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/health/check_options.hpp>

namespace rproxy::health {

enum class check_kind { tcp, http };
constexpr auto config_enum_names(check_kind) {
  return std::array{config::enum_name{"tcp", check_kind::tcp}, config::enum_name{"http", check_kind::http}};
}

struct check_config {
  check_kind type = check_kind::tcp;
  std::string path = "/";
  std::string host{};
  unsigned expect_status = 200;
  std::string body_contains{};
  std::chrono::milliseconds interval = std::chrono::seconds(5);
  std::chrono::milliseconds timeout = std::chrono::seconds(2);
  unsigned rise = 2;
  unsigned fall = 3;

  friend bool operator==(const check_config&, const check_config&) = default;
  static constexpr auto describe() {
    return config::fields(config::doc<&check_config::type>("tcp (connect) or http (GET path)"),
                          config::doc<&check_config::path>("http: the path to GET"),
                          config::doc<&check_config::host>("http: Host header (default: the backend's address)"),
                          config::doc<&check_config::expect_status>("http: the status a healthy backend answers; 0: any 2xx"),
                          config::doc<&check_config::body_contains>("http: text the body must contain (empty: not checked)"),
                          config::doc<&check_config::interval>("time between checks of a backend (+/- 10% jitter)"),
                          config::doc<&check_config::timeout>("a check that takes longer fails"),
                          config::doc<&check_config::rise>("passed checks in a row that bring a backend back"),
                          config::doc<&check_config::fall>("failed checks in a row that take a backend out"));
  }
  void validate(config::validator& v) const {
    if (!path.starts_with('/')) v.at(&check_config::path).error("path must start with '/'");
    if (expect_status != 0 && (expect_status < 100 || expect_status > 599))
      v.at(&check_config::expect_status).error("expect_status must be 0 or 100..599");
    if (interval.count() <= 0) v.at(&check_config::interval).error("interval must be positive");
    if (timeout.count() <= 0) v.at(&check_config::timeout).error("timeout must be positive");
    if (rise == 0) v.at(&check_config::rise).error("rise must be at least 1");
    if (fall == 0) v.at(&check_config::fall).error("fall must be at least 1");
  }
  check_options options() const { return {.interval = interval, .timeout = timeout, .jitter = 0.1, .rise = rise, .fall = fall}; }
};

struct weights_config {
  std::string path = "/metric";
  std::uint16_t port = 0;
  std::chrono::milliseconds interval = std::chrono::seconds(5);
  std::chrono::milliseconds timeout = std::chrono::seconds(2);

  friend bool operator==(const weights_config&, const weights_config&) = default;
  static constexpr auto describe() {
    return config::fields(config::doc<&weights_config::path>("where each backend publishes its load report (HTTP GET)"),
                          config::doc<&weights_config::port>("port of the report (0: the backend's own port)"),
                          config::doc<&weights_config::interval>("time between polls of a backend"),
                          config::doc<&weights_config::timeout>("a poll that takes longer is counted as failed"));
  }
  void validate(config::validator& v) const {
    if (!path.starts_with('/')) v.at(&weights_config::path).error("path must start with '/'");
    if (interval.count() <= 0) v.at(&weights_config::interval).error("interval must be positive");
    if (timeout.count() <= 0) v.at(&weights_config::timeout).error("timeout must be positive");
  }
};

}  // namespace rproxy::health
