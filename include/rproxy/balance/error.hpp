// rproxy/balance/error.hpp: errors of the balance area (pool updates, picks).
//
//     auto r = pool.update(backends);
//     if (!r) log(r.error().message());    // e.g. "duplicate backend id"
//
// `no_backend` is upstream and retry-safe (nothing was sent anywhere); config errors are internal.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/core/error.hpp>

namespace rproxy::balance {

enum class error {
  no_backend = 1,     ///< no backend is available (all unhealthy, ejected, draining, or none)
  duplicate_backend,  ///< two backends in one update share an id
  empty_backend_id,   ///< a backend has an empty id
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.balance"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::no_backend: return "no backend available";
      case error::duplicate_backend: return "duplicate backend id";
      case error::empty_backend_id: return "empty backend id";
    }
    return "unknown balance error";
  }
  rproxy::condition source(int c) const noexcept override {
    return static_cast<error>(c) == error::no_backend ? rproxy::condition::upstream
                                                      : rproxy::condition::internal;
  }
  bool retry_safe(int c) const noexcept override { return static_cast<error>(c) == error::no_backend; }
};

}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace rproxy::balance

template <>
struct std::is_error_code_enum<rproxy::balance::error> : std::true_type {};
