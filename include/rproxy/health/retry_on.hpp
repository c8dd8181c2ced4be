// rproxy/health/retry_on.hpp: the failures after which a request may go to another backend, as
// bits: a retry policy's `on:` list (health/retry_block.hpp) and what an HTTP flow's exchange
// may retry (flow::http_flow::retry_on). A header of its own (no dependencies) so that the flow
// driver and the config see the same bits without including each other.
#pragma once

#include <cstdint>

namespace rproxy::health {

/// Bits of a retry policy.
struct retry_on {
  static constexpr std::uint8_t connect_error = 1;  ///< the connect failed: nothing reached the backend
  static constexpr std::uint8_t reset = 2;          ///< the backend closed or reset before its response head
  static constexpr std::uint8_t status_502 = 4;     ///< the backend answered 502
  static constexpr std::uint8_t status_503 = 8;     ///< the backend answered 503
  static constexpr std::uint8_t all = 15;
};

}  // namespace rproxy::health
