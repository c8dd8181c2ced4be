// rproxy/config/endpoint.hpp: a network endpoint as written in config, "host:port".
//
//     listen: 0.0.0.0:25565        # IPv4 address
//     listen: "[::1]:25565"        # IPv6 address, in brackets (quoted: '[' starts a YAML list)
//     backend: lobby.internal:25566
//
//     auto ep = rproxy::config::parse_endpoint("[::1]:8080");   // {host "::1", port 8080}
//     ep->to_string();                                           // "[::1]:8080"
//
// The host is kept as text (an address or a name to resolve later); only its shape is checked.
// Port 0 is accepted (bind to any free port).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <string_view>

#include <rproxy/config/error.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

struct endpoint {
  std::string host;
  std::uint16_t port = 0;

  /// True when the host is an IPv6 address (written in brackets).
  bool is_ipv6() const noexcept { return host.find(':') != std::string::npos; }

  /// "host:port", or "[v6]:port" for an IPv6 address; parse_endpoint() reads it back.
  std::string to_string() const {
    std::string s = is_ipv6() ? "[" + host + "]" : host;
    s += ':';
    s += std::to_string(port);
    return s;
  }

  friend bool operator==(const endpoint&, const endpoint&) = default;
};

namespace detail {

inline bool valid_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

inline bool valid_ipv6(std::string_view h) {
  std::string addr(h.substr(0, h.find('%')));  // a zone id ("%eth0") follows the address
  unsigned char buf[16];
  return ::inet_pton(AF_INET6, addr.c_str(), buf) == 1;
}

}  // namespace detail

/// Reads "host:port", "1.2.3.4:port" or "[v6]:port". The error says what is wrong.
inline result<endpoint, value_error> parse_endpoint(std::string_view text) {
  const std::string quoted = "bad endpoint '" + std::string(text) + "': ";
  auto bad = [&](std::string why, error code = error::bad_value) {
    return failure(value_error{code, quoted + why});
  };
  endpoint ep;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    const auto host = text.substr(1, close - 1);
    if (!detail::valid_ipv6(host)) return bad("'" + std::string(host) + "' is not an IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing port, expected [ipv6]:port");
    ep.host = std::string(host);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port, expected host:port or [ipv6]:port");
    const auto host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      return bad("write an IPv6 address in brackets, e.g. [::1]:8080");
    if (host.empty()) return bad("missing host (use 0.0.0.0 or [::] for every address)");
    if (!detail::valid_host_name(host)) return bad("'" + std::string(host) + "' is not a valid host name");
    ep.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty()) return bad("missing port number");
  unsigned long port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return bad("port '" + std::string(port_text) + "' is not a number");
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) return bad("port " + std::string(port_text) + " out of range (0..65535)", error::out_of_range);
  }
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

}  // namespace rproxy::config
