// rproxy/flow/h3_upstream_options.hpp: the settings of a group's HTTP/3 backends
// (flow/h3_upstream.hpp), apart from the transport, so that the config block
// (h3_upstream_block.hpp) and code that holds them need not compile QUIC.
#pragma once

#include <chrono>
#include <cstddef>

#include <rproxy/net/quic/transport_settings.hpp>

namespace rproxy::flow {

struct h3_upstream_options {
  std::size_t max_connections = 4;      ///< QUIC connections to the backend, per worker
  std::size_t max_streams = 100;        ///< requests at once on one connection before another opens
  std::size_t max_body_buffer = 1u << 20;  ///< request bytes queued unacknowledged / response bytes held, per request
  std::chrono::milliseconds response_timeout = std::chrono::seconds(60);  ///< no response progress
  net::quic::transport_settings transport = net::quic::client_transport_settings();
};

}  // namespace rproxy::flow
