// rproxy/health/check_options.hpp: how a health checker (health/checker.hpp) runs its rounds:
// interval, timeout, jitter, rise and fall. Apart from the checker, so that a config block
// (health/check_config.hpp) names it without compiling the checker.
#pragma once

#include <chrono>

namespace rproxy::health {

struct check_options {
  std::chrono::milliseconds interval{5000};  ///< between rounds (at least 1 ms)
  std::chrono::milliseconds timeout{2000};   ///< of one probe
  double jitter = 0.1;                       ///< each interval varies by up to +/- this share (0..1)
  unsigned rise = 2;                         ///< successes in a row that bring a backend back (0 = 1)
  unsigned fall = 3;                         ///< failures in a row that take it out (0 = 1)
};

}  // namespace rproxy::health
