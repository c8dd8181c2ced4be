// rproxy/flow/h3_upstream_block.hpp: the YAML of a backend group whose backends speak HTTP/3
// (flow/h3_upstream.hpp), declared once.
//
//     groups:
//       - name: edge
//         proto: h3
//         h3: { ca_file: ca.pem, server_name: backend.example, max_connections: 2 }
//         backends: [ { address: 10.0.0.5:443 } ]
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/h3_upstream_options.hpp>

namespace rproxy::flow {

/// How a group's backends are spoken to.
enum class upstream_proto { http, h3, h2c, h2 };
constexpr auto config_enum_names(upstream_proto) {
  return std::array{config::enum_name{"http", upstream_proto::http}, config::enum_name{"h3", upstream_proto::h3},
                    config::enum_name{"h2c", upstream_proto::h2c}, config::enum_name{"h2", upstream_proto::h2}};
}

struct h3_upstream_block {
  std::string ca_file;       ///< empty: the system's trust store
  bool verify = true;
  std::string server_name;   ///< empty: the backend's address
  std::uint32_t max_connections = 4;
  std::uint32_t max_streams = 100;
  std::chrono::milliseconds response_timeout = std::chrono::seconds(60);
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  config::byte_size max_body_buffer = config::byte_size::mib(1);

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&h3_upstream_block::ca_file>("PEM trust anchors for the backends' certificates (empty: the system's)"),
                       cfg::doc<&h3_upstream_block::verify>("check the backends' certificates and names (off only for tests)"),
                       cfg::doc<&h3_upstream_block::server_name>("TLS name (SNI) of the backends and the :authority of requests without Host (empty: the address)"),
                       cfg::doc<&h3_upstream_block::max_connections>("QUIC connections per backend and worker"),
                       cfg::doc<&h3_upstream_block::max_streams>("requests at once on one QUIC connection before another is opened"),
                       cfg::doc<&h3_upstream_block::response_timeout>("no response progress for this long: 504, or the response is cut"),
                       cfg::doc<&h3_upstream_block::idle_timeout>("an unused QUIC connection closes after this"),
                       cfg::doc<&h3_upstream_block::max_body_buffer>("request body bytes sent and not yet acknowledged (and held for a retry), and response bytes held, per request; a response with a content-length up to this size is read whole first, so its trailers can follow (16KiB to 64MiB)"));
  }
  void validate(config::validator& v) const {
    if (max_connections == 0) v.at(&h3_upstream_block::max_connections).error("must be at least 1");
    if (max_streams == 0) v.at(&h3_upstream_block::max_streams).error("must be at least 1");
    if (max_body_buffer < config::byte_size::kib(16) || max_body_buffer > config::byte_size::mib(64))
      v.at(&h3_upstream_block::max_body_buffer).error("must be between 16KiB and 64MiB");
  }
  h3_upstream_options options() const {
    h3_upstream_options o;
    o.max_connections = max_connections;
    o.max_streams = max_streams;
    o.response_timeout = response_timeout;
    o.transport.idle_timeout = idle_timeout;
    o.max_body_buffer = static_cast<std::size_t>(max_body_buffer.bytes);
    return o;
  }
};

}  // namespace rproxy::flow
