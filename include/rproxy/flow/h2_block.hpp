// rproxy/flow/h2_block.hpp: the YAML block of the HTTP/2 adapter's own bounds, declared once.
// The timeouts and the header and body sizes are the HTTP/1.1 listener's (http1_block), so
// one `limits:` block bounds both protocols.
//
//     h2: { max_concurrent_streams: 100, stream_window: 256KiB, connection_window: 1MiB }
//
//     rproxy::flow::h2_block h2{};                 // in the app's config struct
//     c.h2.apply(h2_adapter.limits, c.limits);     // codec/h2/limits.hpp
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include <rproxy/codec/h2/limits.hpp>
#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/http1_block.hpp>

namespace rproxy::flow {

struct h2_block {
  std::uint32_t max_concurrent_streams = 100;
  config::byte_size stream_window = config::byte_size::kib(256);
  config::byte_size connection_window = config::byte_size::mib(1);

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&h2_block::max_concurrent_streams>("streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS)"),
        cfg::doc<&h2_block::stream_window>("request body bytes a client may send on a stream ahead of the backend (flow control)"),
        cfg::doc<&h2_block::connection_window>("the same over all streams of a connection"));
  }
  void validate(config::validator& v) const {
    constexpr std::uint64_t max_window = std::numeric_limits<std::int32_t>::max();
    if (max_concurrent_streams == 0) v.at(&h2_block::max_concurrent_streams).error("must be at least 1");
    if (stream_window.bytes < 65535 || stream_window.bytes > max_window)
      v.at(&h2_block::stream_window).error("must be between 64KiB - 1 and 2GiB - 1");
    if (connection_window.bytes < 65535 || connection_window.bytes > max_window)
      v.at(&h2_block::connection_window).error("must be between 64KiB - 1 and 2GiB - 1");
  }
  /// The session's bounds from this block and the listener's `limits:`.
  void apply(codec::h2::limits& l, const http1_block& h1) const {
    l.max_concurrent_streams = max_concurrent_streams;
    l.stream_window = static_cast<std::uint32_t>(stream_window.bytes);
    l.connection_window = static_cast<std::uint32_t>(connection_window.bytes);
    l.max_header_list_size = static_cast<std::uint32_t>(std::min<std::uint64_t>(h1.max_header.bytes, 1u << 24));
    l.max_header_count = h1.max_header_count;
    l.max_body_size = h1.max_body.bytes;
    l.header_timeout = h1.header_timeout;
    l.idle_timeout = h1.idle_timeout;
  }
};

}  // namespace rproxy::flow
