// rproxy/app/tls_block.hpp: the YAML block of a TLS listener, declared once: where it listens
// and its certificates, the one a client's SNI names chosen (net/tls_stream.hpp).
//
//     tls:
//       listen: 127.0.0.1:8443
//       certificates:
//         - { cert: a.pem, key: a.key, server_names: [a.example, "*.a.example"] }
//         - { cert: b.pem, key: b.key }          # names: the certificate's own (SANs)
//
// The first certificate is the default (no SNI, or a name none lists). The files are read when
// the config is loaded (`validate` too: a missing file or a key that does not match its
// certificate is an error at its line) and on every reload (a bad file keeps the previous
// config serving).
#pragma once

#include <asio/ip/address.hpp>

#include <string>
#include <system_error>
#include <vector>

#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/net/tls_stream.hpp>

namespace rproxy::app {

struct tls_certificate_block {
  std::string cert;
  std::string key;
  std::vector<std::string> server_names;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&tls_certificate_block::cert>("PEM file: the certificate, then its chain"),
                       cfg::required<&tls_certificate_block::key>("PEM file: its private key (unencrypted)"),
                       cfg::doc<&tls_certificate_block::server_names>(
                           "SNI names it serves: exact or \"*.example.com\" (empty: the certificate's own names)"));
  }
  void validate(config::validator& v) const {
    net::tls_server_options o;
    o.certificates.push_back({cert, key, server_names});
    if (auto loaded = net::tls_server_context::load(o); !loaded) v.at(&tls_certificate_block::cert).error(loaded.error().message);
  }
};

struct tls_listener_block {
  config::endpoint listen{"127.0.0.1", 8443};
  std::vector<tls_certificate_block> certificates;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&tls_listener_block::listen>("address and port of the TLS listener"),
                       cfg::required<&tls_listener_block::certificates>("certificates; the first is the default"));
  }
  void validate(config::validator& v) const {
    std::error_code ec;
    (void)asio::ip::make_address(listen.host, ec);
    if (ec) v.at(&tls_listener_block::listen).error("listen address must be an IP address: '" + listen.host + "'");
    if (certificates.empty()) v.at(&tls_listener_block::certificates).error("at least one certificate");
  }
};

}  // namespace rproxy::app
