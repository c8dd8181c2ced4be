// rproxy/flow/upstream_tls_block.hpp: the YAML block of TLS to backends, declared once: a
// backend group (or any upstream list) that has it is reached over TLS (flow/upstream.hpp).
//
//     tls:
//       sni: api.internal        # sent (SNI) and checked against the certificate
//       ca: /etc/gw/backend-ca.pem   # trusted CAs (default: the system's store)
//       verify: true             # false only for a test backend: logged as a warning
//
// Without `sni` no SNI is sent and the certificate must name the backend's IP address (an IP
// SAN). The CA file is read when the config is loaded (`validate` too: a missing or empty file
// is an error at its line) and on every reload.
#pragma once

#include <asio/ip/address.hpp>

#include <string>
#include <string_view>
#include <system_error>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/net/tls_client_context.hpp>

namespace rproxy::flow {

struct upstream_tls_block {
  std::string sni;
  std::string ca;
  bool verify = true;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&upstream_tls_block::sni>("name sent as SNI and verified in the certificate (empty: the backend's IP address is verified)"),
        cfg::doc<&upstream_tls_block::ca>("PEM file of the CAs to trust (empty: the system's CA store)"),
        cfg::doc<&upstream_tls_block::verify>("verify the backend's certificate chain and name (false: logged as a warning)"));
  }
  void validate(config::validator& v) const {
    if (!sni.empty() && !valid_name(sni))
      v.at(&upstream_tls_block::sni).error("sni must be a host name or an IP address: '" + sni + "'");
    if (!ca.empty())
      if (auto loaded = net::tls_client_context::load(options()); !loaded) v.at(&upstream_tls_block::ca).error(loaded.error().message);
  }
  net::tls_client_options options() const { return {.ca_file = ca, .verify = verify}; }

  /// A DNS name (letters, digits, '-', dots; labels of 1..63) or an IP address.
  static bool valid_name(std::string_view n) {
    std::error_code ec;
    (void)asio::ip::make_address(std::string(n), ec);
    if (!ec) return true;
    if (n.empty() || n.size() > 253) return false;
    std::size_t label = 0;
    for (char c : n) {
      if (c == '.') {
        if (label == 0) return false;
        label = 0;
        continue;
      }
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok || ++label > 63) return false;
    }
    return label > 0;
  }
};

}  // namespace rproxy::flow
