// rproxy/flow/config.hpp: the config blocks of the flow driver, declared once for every app:
// the PROXY protocol (in, from trusted peers; out, to backends) and the byte relay.
//
//     proxy_protocol:
//       accept: optional          # none | optional | required
//       trusted: [10.0.0.0/8]     # the load balancers in front; nobody else is believed
//       send: v2                  # to backends: none | v1 | v2 (a backend's own setting wins)
//     relay:
//       buffer_size: 64KiB
//       splice: true
//       idle_timeout: 10m
//
//     rproxy::flow::options o = rproxy::flow::make_options(cfg.proxy_protocol, cfg.relay);
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <rproxy/config/proxy_mode.hpp>
#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/middleware/ip.hpp>

namespace rproxy::flow {

struct proxy_protocol_config {
  proxy_accept accept = proxy_accept::none;
  std::vector<std::string> trusted{"127.0.0.0/8", "::1"};
  proxy_send send = proxy_send::none;
  static constexpr auto describe() {
    return config::fields(
        config::doc<&proxy_protocol_config::accept>("read a PROXY v1/v2 header from clients: none, optional, required"),
        config::doc<&proxy_protocol_config::trusted>("CIDRs allowed to send one (a load balancer in front); others are never believed"),
        config::doc<&proxy_protocol_config::send>("PROXY header to send backends that set none themselves: none, v1, v2"));
  }
  void validate(config::validator& v) const {
    for (std::size_t i = 0; i < trusted.size(); ++i)
      if (!middleware::cidr::parse(trusted[i]))
        v.at(&proxy_protocol_config::trusted).at(i).error("not a CIDR: '" + trusted[i] + "'");
  }
};

struct relay_config {
  config::byte_size buffer_size = config::byte_size::kib(64);
  bool splice = true;
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(10);
  static constexpr auto describe() {
    return config::fields(config::doc<&relay_config::buffer_size>("buffer per direction per connection (bounds memory; backpressure beyond)"),
                          config::doc<&relay_config::splice>("zero-copy splice(2) between sockets on Linux"),
                          config::doc<&relay_config::idle_timeout>("close connections with no bytes either way for this long"));
  }
  void validate(config::validator& v) const {
    // The relay keeps sizes in 32 bits (net/relay.hpp); far below that, a buffer this large per
    // direction per connection is a typo.
    if (buffer_size.bytes < 1024 || buffer_size.bytes > (std::uint64_t{1} << 30))
      v.at(&relay_config::buffer_size).error("must be between 1KiB and 1GiB");
  }
};

/// The driver's options from the two blocks (timeouts keep their defaults; set them after).
inline options make_options(const proxy_protocol_config& pp, const relay_config& relay) {
  options o;
  o.accept = pp.accept;
  o.send = pp.send;
  for (const auto& t : pp.trusted)
    if (auto c = middleware::cidr::parse(t)) o.trusted.push_back(*c);
  o.relay.buffer_size = relay.buffer_size.bytes;
  o.relay.splice = relay.splice;
  o.relay.idle_timeout = relay.idle_timeout;
  return o;
}

}  // namespace rproxy::flow
