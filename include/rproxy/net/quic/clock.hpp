// rproxy/net/quic/clock.hpp: ngtcp2's clock. ngtcp2 takes timestamps in nanoseconds from a
// monotonic clock of the caller's choosing; rproxy uses std::chrono::steady_clock, so a
// connection's expiry converts straight into an asio::steady_timer deadline.
//
//     ngtcp2_conn_read_pkt(conn, &path, &pi, data, n, rproxy::net::quic::now());
//     timer.expires_at(rproxy::net::quic::to_time_point(ngtcp2_conn_get_expiry(conn)));
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <chrono>
#include <cstdint>
#include <limits>

namespace rproxy::net::quic {

using clock = std::chrono::steady_clock;

/// Now, as an ngtcp2 timestamp (nanoseconds of steady_clock).
inline ngtcp2_tstamp now() noexcept {
  return static_cast<ngtcp2_tstamp>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count());
}

/// An ngtcp2 timestamp as a steady_clock time point (UINT64_MAX, "never": time_point::max()).
inline clock::time_point to_time_point(ngtcp2_tstamp t) noexcept {
  if (t == std::numeric_limits<ngtcp2_tstamp>::max() ||
      t > static_cast<ngtcp2_tstamp>(std::numeric_limits<std::chrono::nanoseconds::rep>::max()))
    return clock::time_point::max();
  return clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(static_cast<std::int64_t>(t))));
}

/// A duration as ngtcp2 counts it (nanoseconds).
template <class Rep, class Period>
constexpr ngtcp2_duration to_duration(std::chrono::duration<Rep, Period> d) noexcept {
  return static_cast<ngtcp2_duration>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace rproxy::net::quic
