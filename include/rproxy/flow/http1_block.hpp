// rproxy/flow/http1_block.hpp: the YAML block of the HTTP/1.1 adapter's time and size bounds,
// declared once.
//
//     limits: { header_timeout: 10s, idle_timeout: 60s, max_header: 16KiB, max_body: 8MiB }
//
//     rproxy::flow::http1_block limits{};           // in the app's config struct
//     c.limits.apply(adapter, options);             // a flow::http1_adapter (flow/http1.hpp), flow::options
//
// The apply() functions take the adapter as a template parameter, so that a config header that
// lists these blocks does not include the HTTP/1.1 driver.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/duration.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/middleware/ip.hpp>

namespace rproxy::flow {

struct http1_block {
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds connect_timeout{5'000};
  config::byte_size max_header = config::byte_size::kib(16);
  std::uint32_t max_header_count = 100;
  config::byte_size max_body = config::byte_size::mib(8);
  config::byte_size buffer_size = config::byte_size::kib(16);

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&http1_block::header_timeout>("a request head must arrive whole within this (slowloris); also the keep-alive wait"),
        cfg::doc<&http1_block::idle_timeout>("no progress on a body or a response for this long ends the connection"),
        cfg::doc<&http1_block::connect_timeout>("give up on a backend after this long, try the next"),
        cfg::doc<&http1_block::max_header>("request header section (431 beyond)"),
        cfg::doc<&http1_block::max_header_count>("request header lines (431 beyond)"),
        cfg::doc<&http1_block::max_body>("request body (413 beyond)"),
        cfg::doc<&http1_block::buffer_size>("body buffer per direction per connection (bounds memory)"));
  }

  /// Sets the adapter's limits (a flow::http1_adapter) and the driver's timeouts from this block.
  template <class Http1Adapter>
  void apply(Http1Adapter& a, options& o) const {
    a.request_limits.max_header_bytes = max_header.bytes;
    a.request_limits.max_header_count = max_header_count;
    a.request_limits.max_body_size = max_body.bytes;
    a.buffer_size = buffer_size.bytes;
    a.idle_timeout = idle_timeout;
    o.hello_timeout = header_timeout;
    o.rejected_hello_timeout = std::min(header_timeout, o.rejected_hello_timeout);
    o.connect_timeout = connect_timeout;
  }
};

/// `forwarding:` which request headers and trailers reach the backends.
struct http1_forwarding_block {
  std::vector<std::string> trusted_proxies;
  bool allow_underscore_headers = false;
  std::vector<std::string> allow_trailers;
  std::vector<std::string> upgrades{"websocket"};

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&http1_forwarding_block::trusted_proxies>(
                           "CIDRs of proxies in front: their X-Forwarded-For, Forwarded, X-Real-IP, X-Forwarded-Host/Proto "
                           "are extended; anyone else's are replaced"),
                       cfg::doc<&http1_forwarding_block::allow_underscore_headers>("forward request headers whose names contain '_'"),
                       cfg::doc<&http1_forwarding_block::allow_trailers>("request trailers forwarded (others are dropped)"),
                       cfg::doc<&http1_forwarding_block::upgrades>(
                           "HTTP/1.1 Upgrade protocols passed through to the backend (its 101 relayed, then bytes both ways "
                           "under the idle timeout); others get 501. [] turns upgrades off"));
  }
  void validate(config::validator& v) const {
    for (std::size_t i = 0; i < trusted_proxies.size(); ++i)
      if (!middleware::cidr::parse(trusted_proxies[i]))
        v.at(&http1_forwarding_block::trusted_proxies).at(i).error("not a CIDR: '" + trusted_proxies[i] + "'");
    for (std::size_t i = 0; i < allow_trailers.size(); ++i)
      if (!codec::http1::is_valid_field_name(allow_trailers[i]))
        v.at(&http1_forwarding_block::allow_trailers).at(i).error("not a header name");
    for (std::size_t i = 0; i < upgrades.size(); ++i)
      if (!codec::http1::is_valid_field_name(upgrades[i]))  // a protocol name is a token
        v.at(&http1_forwarding_block::upgrades).at(i).error("not a protocol name (a token, like websocket)");
  }
  template <class Http1Adapter>
  void apply(Http1Adapter& a) const {
    a.trusted_proxies.clear();
    for (const auto& t : trusted_proxies)
      if (auto c = middleware::cidr::parse(t)) a.trusted_proxies.push_back(*c);
    a.allow_underscore_headers = allow_underscore_headers;
    a.allow_trailers = allow_trailers;
    a.upgrades = upgrades;
  }
};

}  // namespace rproxy::flow
