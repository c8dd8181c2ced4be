// rproxy/health/error.hpp: errors of the health area (active probes, load reports).
//
//     auto r = co_await rproxy::health::http_probe{.path = "/healthz"}.check(ex, ep, 2s);
//     if (r.error == rproxy::health::error::bad_status) ...   // the backend answered, not 2xx
//     if (r.error == rproxy::condition::upstream) ...          // every probe failure is upstream
//
// Connect failures keep their net::error code (connect_refused, connect_timeout, ...); a
// malformed HTTP reply keeps its codec::http1 code (upstream category). The codes here are what
// is left: the backend answered in time, but not as expected.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/core/error.hpp>

namespace rproxy::health {

enum class error {
  probe_timeout = 1,   ///< connected, but no complete answer within the probe timeout
  bad_status,          ///< the HTTP status is not the expected one
  body_mismatch,       ///< the body does not contain the expected text
  response_too_large,  ///< the answer is over the probe's size bound
  closed_early,        ///< the backend closed before a complete answer
  bad_load_report,     ///< a load report is not a number or {"weight": n} / {"load": x}
  invalid_probe,       ///< the probe's own settings are invalid (bad path or host); internal
  probe_failed,        ///< the probe threw (a bug or a resource limit in the probe)
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.health"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::probe_timeout: return "health probe timed out";
      case error::bad_status: return "unexpected HTTP status";
      case error::body_mismatch: return "response body does not contain the expected text";
      case error::response_too_large: return "response over the size bound";
      case error::closed_early: return "backend closed before a complete answer";
      case error::bad_load_report: return "malformed load report";
      case error::invalid_probe: return "invalid probe settings";
      case error::probe_failed: return "health probe failed";
    }
    return "unknown rproxy.health error";
  }
  rproxy::condition source(int c) const noexcept override {
    return static_cast<error>(c) == error::invalid_probe ? rproxy::condition::internal
                                                         : rproxy::condition::upstream;
  }
};

}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace rproxy::health

template <>
struct std::is_error_code_enum<rproxy::health::error> : std::true_type {};
