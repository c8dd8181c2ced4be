// rproxy/flow/h3_block.hpp: the YAML block of an HTTP/3 (QUIC) listener, declared once.
//
//     quic:
//       listen: 127.0.0.1:8443     # UDP; unset: the tls: listener's address and port
//       retry: false               # address validation (Retry) for every new connection
//       retry_above: 0             # else Retry once more connections than this start in a second
//       max_streams: 100           # concurrent requests per connection
//       idle_timeout: 30s
//       early_data: false          # accept 0-RTT: safe methods forwarded with Early-Data: 1, others 425
//
// The certificates are the tls: block's (the same names, the same reloads). Timeouts and
// sizes of requests are the listener's `limits:` (http1_block), as for HTTP/2.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <asio/ip/address.hpp>

#include <rproxy/codec/h3/limits.hpp>
#include <rproxy/config/duration.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/http1_block.hpp>
#include <rproxy/net/quic/server_endpoint.hpp>

namespace rproxy::flow {

struct h3_block {
  std::optional<config::endpoint> listen;
  bool retry = false;
  std::uint32_t retry_above = 0;
  std::uint32_t max_streams = 100;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  bool early_data = false;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&h3_block::listen>("UDP address and port (unset: the tls: listener's)"),
                       cfg::doc<&h3_block::retry>("validate every new client's address with a Retry (one more round trip)"),
                       cfg::doc<&h3_block::retry_above>("else validate once more connections than this start in a second (0: never)"),
                       cfg::doc<&h3_block::max_streams>("concurrent requests per connection"),
                       cfg::doc<&h3_block::idle_timeout>("a connection with no packet for this long is closed"),
                       cfg::doc<&h3_block::handshake_timeout>("a handshake not done in this time is dropped"),
                       cfg::doc<&h3_block::early_data>("accept 0-RTT requests from resumed clients: GET, HEAD and OPTIONS are forwarded "
                                                       "with Early-Data: 1, any other method is answered 425 Too Early (replay risk: "
                                                       "docs/h3-gateway.md)"));
  }
  void validate(config::validator& v) const {
    if (listen) {
      std::error_code ec;
      (void)asio::ip::make_address(listen->host, ec);
      if (ec) v.at(&h3_block::listen).error("listen address must be an IP address: '" + listen->host + "'");
    }
    if (max_streams == 0) v.at(&h3_block::max_streams).error("must be at least 1");
  }
  /// The endpoint's settings and the session's bounds from this block and `limits:`.
  void apply(net::quic::endpoint_settings& e, codec::h3::limits& l, const http1_block& h1) const {
    e.retry = retry;
    e.retry_above = retry_above;
    e.transport.max_streams_bidi = max_streams;
    e.transport.idle_timeout = idle_timeout;
    e.transport.handshake_timeout = handshake_timeout;
    e.transport.early_data = early_data;
    l.max_field_section_size = h1.max_header.bytes;
    l.max_header_count = h1.max_header_count;
    l.max_body_size = h1.max_body.bytes;
  }
};

}  // namespace rproxy::flow
