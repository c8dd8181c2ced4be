// rproxy/codec/h3/limits.hpp: the bounds of the HTTP/3 server session, per connection.
// QUIC itself bounds streams and flow-control windows (net/quic/connection.hpp's
// transport_settings); what HTTP/3 adds is bounded here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rproxy::codec::h3 {

struct limits {
  /// SETTINGS_MAX_FIELD_SECTION_SIZE (name + value + 32 per field), on request heads (431) and
  /// trailers (stream reset).
  std::uint64_t max_field_section_size = 64 * 1024;
  /// Fields of one header section, pseudo-header fields included (431).
  std::size_t max_header_count = 100;
  /// Request body bytes per stream (413 before the response started, else a reset).
  std::uint64_t max_body_size = 8 * 1024 * 1024;
  /// QPACK dynamic table the client's encoder may use, and streams it may block.
  std::size_t qpack_max_dtable_capacity = 4096;
  std::size_t qpack_blocked_streams = 100;
};

}  // namespace rproxy::codec::h3
