// rproxy/core/error.hpp: project-wide error conditions and the base of every area's category.
//
// Each area (net, codec::http1, config, ...) declares its own `enum class error`, a category
// derived from rproxy::error_category, and `make_error_code`. The category says, per code, where
// the failure came from and whether retrying is safe. Callers then test any error_code against
// the project-wide conditions, whatever area produced it:
//
//     if (ec == rproxy::condition::upstream && ec == rproxy::condition::retry_safe) ...
#pragma once

#include <string>
#include <system_error>

namespace rproxy {

/// Where a failure came from, and whether the operation that failed may be retried.
enum class condition {
  downstream = 1,  ///< the client sent something wrong or went away
  upstream,        ///< a backend failed: refused, timed out, died, answered garbage
  internal,        ///< our own fault or limit: config, resources, a bug
  retry_safe,      ///< nothing reached the backend, so trying another one cannot duplicate work
};

/// Base of every rproxy error category: each code knows its source and retry safety.
class error_category : public std::error_category {
public:
  virtual condition source(int code) const noexcept = 0;
  virtual bool retry_safe(int /*code*/) const noexcept { return false; }
};

namespace detail {

class condition_category final : public std::error_category {
public:
  const char* name() const noexcept override { return "rproxy.condition"; }
  std::string message(int c) const override {
    switch (static_cast<condition>(c)) {
      case condition::downstream: return "downstream (client) failure";
      case condition::upstream: return "upstream (backend) failure";
      case condition::internal: return "internal failure";
      case condition::retry_safe: return "safe to retry";
    }
    return "unknown condition";
  }
  bool equivalent(const std::error_code& ec, int c) const noexcept override {
    const auto* cat = dynamic_cast<const rproxy::error_category*>(&ec.category());
    if (cat == nullptr) return false;
    if (static_cast<condition>(c) == condition::retry_safe) return cat->retry_safe(ec.value());
    return cat->source(ec.value()) == static_cast<condition>(c);
  }
};

}  // namespace detail

inline const std::error_category& condition_category() noexcept {
  static const detail::condition_category c;
  return c;
}

inline std::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

}  // namespace rproxy

template <>
struct std::is_error_condition_enum<rproxy::condition> : std::true_type {};
