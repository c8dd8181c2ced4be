// rproxy/flow/h2_upstream_block.hpp: the YAML of a backend group whose backends speak HTTP/2
// with prior knowledge over TCP (h2c; flow/h2_upstream.hpp), declared once.
//
//     groups:
//       - name: grpc
//         proto: h2c
//         h2: { max_connections: 2, max_streams: 100, idle_timeout: 60s, max_body_buffer: 1MiB }
//         backends: [ { address: 10.0.0.5:50051 } ]
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/h2_upstream_options.hpp>

namespace rproxy::flow {

struct h2_upstream_block {
  std::uint32_t max_connections = 4;
  std::uint32_t max_streams = 100;
  std::uint32_t max_queued = 1024;
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  std::chrono::milliseconds response_timeout = std::chrono::seconds(60);
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  config::byte_size max_body_buffer = config::byte_size::mib(1);

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&h2_upstream_block::max_connections>("HTTP/2 connections per backend and worker"),
                       cfg::doc<&h2_upstream_block::max_streams>("requests at once on one connection (the backend's SETTINGS_MAX_CONCURRENT_STREAMS if lower) before another is opened"),
                       cfg::doc<&h2_upstream_block::max_queued>("requests waiting for a stream per backend and worker when all connections are full (503 past it)"),
                       cfg::doc<&h2_upstream_block::connect_timeout>("TCP connect to the backend"),
                       cfg::doc<&h2_upstream_block::response_timeout>("no response progress for this long: 504, or the response is cut"),
                       cfg::doc<&h2_upstream_block::idle_timeout>("a connection with no stream for this long is closed (GOAWAY); the next request opens another"),
                       cfg::doc<&h2_upstream_block::max_body_buffer>("request body bytes queued ahead of the backend's window, per request; a body up to this size is also held until the answer begins, to be sent again after a refusal (16KiB to 64MiB)"));
  }
  void validate(config::validator& v) const {
    if (max_connections == 0) v.at(&h2_upstream_block::max_connections).error("must be at least 1");
    if (max_streams == 0) v.at(&h2_upstream_block::max_streams).error("must be at least 1");
    if (idle_timeout.count() <= 0) v.at(&h2_upstream_block::idle_timeout).error("must be positive");
    if (max_body_buffer < config::byte_size::kib(16) || max_body_buffer > config::byte_size::mib(64))
      v.at(&h2_upstream_block::max_body_buffer).error("must be between 16KiB and 64MiB");
  }
  h2_upstream_options options() const {
    h2_upstream_options o;
    o.max_connections = max_connections;
    o.max_streams = max_streams;
    o.max_queued = max_queued;
    o.connect_timeout = connect_timeout;
    o.response_timeout = response_timeout;
    o.idle_timeout = idle_timeout;
    o.max_body_buffer = static_cast<std::size_t>(max_body_buffer.bytes);
    return o;
  }
  std::string key() const {
    return std::to_string(max_connections) + "|" + std::to_string(max_streams) + "|" + std::to_string(max_queued) + "|" +
           std::to_string(connect_timeout.count()) + "|" + std::to_string(response_timeout.count()) + "|" +
           std::to_string(idle_timeout.count()) + "|" + std::to_string(max_body_buffer.bytes);
  }
};

}  // namespace rproxy::flow
