// rproxy/observe/error.hpp: errors of the observe area (parsing logging options).
//
//     auto f = rproxy::observe::parse_log_format("yaml");
//     if (!f) f.error() == rproxy::observe::error::unknown_log_format;   // condition::internal
//
// Metric registration mistakes are programmer errors and throw std::invalid_argument instead.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/core/error.hpp>

namespace rproxy::observe {

enum class error {
  unknown_log_format = 1,  ///< not "text" or "json"
  unknown_log_level,       ///< not trace, debug, info, warn, error, critical or off
};

namespace detail {
class error_category_impl final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.observe"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::unknown_log_format: return "unknown log format (expected text or json)";
      case error::unknown_log_level: return "unknown log level (expected trace, debug, info, warn, error, critical or off)";
    }
    return "unknown observe error";
  }
  condition source(int) const noexcept override { return condition::internal; }
  bool retry_safe(int) const noexcept override { return false; }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace rproxy::observe

template <>
struct std::is_error_code_enum<rproxy::observe::error> : std::true_type {};
