// rproxy/flow/h2_upstream_options.hpp: the settings of a group's HTTP/2 backends
// (flow/h2_upstream.hpp), apart from the transport, so that the config block
// (h2_upstream_block.hpp) and code that holds them need not compile it.
#pragma once

#include <chrono>
#include <cstddef>

#include <rproxy/codec/h2/client_session.hpp>

namespace rproxy::flow {

struct h2_upstream_options {
  std::size_t max_connections = 4;         ///< HTTP/2 connections to the backend, per worker
  std::size_t max_streams = 100;           ///< streams at once per connection (the backend's limit if lower)
  std::size_t max_queued = 1024;           ///< requests waiting for a stream, per worker (503 past it)
  std::size_t max_body_buffer = 1u << 20;  ///< request bytes queued ahead of the backend's window, per request
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  std::chrono::milliseconds response_timeout = std::chrono::seconds(60);  ///< no response progress
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);      ///< no stream: the connection is closed
  codec::h2::client_limits limits{};
};

}  // namespace rproxy::flow
