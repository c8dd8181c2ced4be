// rproxy/config/error.hpp: what can be wrong with a config file, as std::error_code values.
//
// Every config diagnostic (see diagnostics.hpp) carries one of these codes next to its
// file:line:col message, so code can test the kind of failure without parsing text:
//
//     for (const auto& d : r.error()) if (d.code == rproxy::config::error::unknown_key) ...
//
// All of them are internal failures (our configuration, not a client or a backend) and none is
// retry-safe in the rproxy::condition sense.
#pragma once

#include <string>
#include <system_error>

#include <rproxy/core/error.hpp>

namespace rproxy::config {

enum class error {
  syntax = 1,        ///< the YAML itself does not parse
  unreadable,        ///< the file or directory cannot be read
  unknown_key,       ///< a key no field has (usually a typo)
  duplicate_key,     ///< the same key twice in one mapping
  wrong_type,        ///< e.g. a list where a number is expected
  bad_value,         ///< right shape, wrong text: "5x" as a duration, "host" as an endpoint
  out_of_range,      ///< a number outside its type's range
  missing_required,  ///< a required field is absent
  invalid,           ///< rejected by a struct's validate() hook
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.config"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::syntax: return "YAML syntax error";
      case error::unreadable: return "cannot read config";
      case error::unknown_key: return "unknown key";
      case error::duplicate_key: return "duplicate key";
      case error::wrong_type: return "wrong type";
      case error::bad_value: return "bad value";
      case error::out_of_range: return "value out of range";
      case error::missing_required: return "missing required key";
      case error::invalid: return "invalid configuration";
    }
    return "unknown config error";
  }
  condition source(int) const noexcept override { return condition::internal; }
  bool retry_safe(int) const noexcept override { return false; }
};

}  // namespace detail

/// Why one value was refused, before it has a position: what scalar parsers return.
struct value_error {
  error code = error::bad_value;
  std::string message;
};

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace rproxy::config

template <>
struct std::is_error_code_enum<rproxy::config::error> : std::true_type {};
