// rproxy/net/quic/transport_settings.hpp: a QUIC connection's transport settings (flow-control
// windows, stream counts, timeouts), apart from the connection (connection.hpp), so that config
// code can hold them without ngtcp2 and the connection's machinery.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace rproxy::net::quic {

/// Transport settings shared by both sides.
struct transport_settings {
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  std::uint64_t max_data = 16u << 20;                 ///< connection flow-control window
  std::uint64_t max_stream_data_bidi = 1u << 20;      ///< per request stream
  std::uint64_t max_stream_data_uni = 256u << 10;     ///< control and QPACK streams
  std::uint64_t max_streams_bidi = 100;               ///< concurrent requests
  std::uint64_t max_streams_uni = 3;                  ///< HTTP/3 needs 3 (control, QPACK x2)
  std::size_t max_udp_payload = 1452;                 ///< what we send at most (path MTU discovery may go up to it)
  /// Server: accept 0-RTT from resumed clients (TLS early data; tls.hpp). The app sees which
  /// stream data came in it (connection::receiving_early_data). A client that resumes uses
  /// the parameters above as they were when its ticket was issued: they must not shrink while
  /// a ticket key lives (RFC 9000 §7.4.1), so they are set once per endpoint.
  bool early_data = false;
};

/// Transport settings for a client: the server opens no request streams, three (or a few more)
/// unidirectional ones for HTTP/3's control and QPACK streams.
inline transport_settings client_transport_settings() {
  transport_settings ts;
  ts.max_streams_bidi = 0;
  ts.max_streams_uni = 16;
  return ts;
}

}  // namespace rproxy::net::quic
