// rproxy/config/listen_address.hpp: the check of a listener's endpoint in a config: its host must
// be an IP address (a listener binds; it does not resolve names).
//
//     void validate(rproxy::config::validator& v) const {
//       rproxy::config::validate_listen_address(v.at(&config::listen), listen);
//     }
#pragma once

#include <arpa/inet.h>

#include <string>

#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/validator.hpp>

namespace rproxy::config {

/// Whether `host` is an IPv4 or IPv6 address (a zone id after '%' allowed).
inline bool is_ip_address(const std::string& host) {
  unsigned char buf[4];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || detail::valid_ipv6(host);
}

/// Reports at `v` (the endpoint's place) a host that is not an IP address.
inline void validate_listen_address(const validator& v, const endpoint& ep) {
  if (!is_ip_address(ep.host)) v.error("listen address must be an IP address: '" + ep.host + "'");
}

}  // namespace rproxy::config
