// rproxy/net/quic/client_tls.hpp: the TLS side of a QUIC client on GnuTLS (ngtcp2's GnuTLS
// crypto glue). One `client_tls_context` holds the trust store, shared by every connection of a
// worker; `client_tls_context::new_session` makes a connection's session: TLS 1.3 only, ALPN
// "h3" (mandatory), SNI, and the server's certificate checked against the name unless
// verification is switched off.
//
//     auto tls = rproxy::net::quic::client_tls_context::make({.ca_file = "ca.pem"});
//     if (!tls) return tls.error();                       // client_error::ca_file
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include <asio/ip/address.hpp>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <rproxy/core/result.hpp>
#include <rproxy/net/quic/client_error.hpp>

namespace rproxy::net::quic {

struct client_tls_options {
  std::string ca_file;      ///< PEM trust anchors; empty: the system's trust store
  bool verify = true;       ///< check the server's certificate chain and name
  std::string alpn = "h3";  ///< the one protocol offered (mandatory)
};

/// GnuTLS priorities for QUIC: TLS 1.3 only, the AEADs QUIC defines, no middlebox compat mode.
inline constexpr const char* client_tls_priority =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM";

class client_tls_context {
public:
  /// Loads the trust store (startup work: it reads files).
  static result<client_tls_context> make(const client_tls_options& o) {
    gnutls_certificate_credentials_t c = nullptr;
    if (gnutls_certificate_allocate_credentials(&c) != GNUTLS_E_SUCCESS) return failure(make_error_code(client_error::tls_setup));
    client_tls_context ctx{c, o};
    if (o.verify || !o.ca_file.empty()) {
      const int n = o.ca_file.empty() ? gnutls_certificate_set_x509_system_trust(c)
                                      : gnutls_certificate_set_x509_trust_file(c, o.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
      if (n <= 0 && o.verify) return failure(make_error_code(client_error::ca_file));
    }
    return ctx;
  }

  client_tls_context(client_tls_context&&) noexcept = default;
  client_tls_context& operator=(client_tls_context&&) noexcept = default;

  bool verify() const noexcept { return verify_; }

  /// A new client session for one connection. `server_name` goes in SNI unless it is an IP
  /// address, and is the name the certificate must carry; it and `ref` must outlive the session
  /// at the same address (GnuTLS keeps the name's pointer for verification; ngtcp2's GnuTLS glue
  /// finds the connection through `ref`).
  result<gnutls_session_t> new_session(const std::string& server_name, ngtcp2_crypto_conn_ref* ref) const {
    gnutls_session_t s = nullptr;
    if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA) != GNUTLS_E_SUCCESS)
      return failure(make_error_code(client_error::tls_setup));
    auto fail = [&] {
      gnutls_deinit(s);
      return failure(make_error_code(client_error::tls_setup));
    };
    if (gnutls_priority_set_direct(s, client_tls_priority, nullptr) != GNUTLS_E_SUCCESS) return fail();
    if (ngtcp2_crypto_gnutls_configure_client_session(s) != 0) return fail();
    gnutls_session_set_ptr(s, ref);
    if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred_.get()) != GNUTLS_E_SUCCESS) return fail();
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(alpn_.data())), static_cast<unsigned>(alpn_.size())};
    if (gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) != GNUTLS_E_SUCCESS) return fail();
    std::error_code ec;
    (void)asio::ip::make_address(server_name, ec);
    if (ec && !server_name.empty() &&
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, server_name.data(), server_name.size()) != GNUTLS_E_SUCCESS)
      return fail();
    if (verify_) gnutls_session_set_verify_cert(s, server_name.empty() ? nullptr : server_name.c_str(), 0);
    return s;
  }

private:
  struct cred_deleter {
    void operator()(gnutls_certificate_credentials_t c) const noexcept { gnutls_certificate_free_credentials(c); }
  };
  client_tls_context(gnutls_certificate_credentials_t c, const client_tls_options& o)
      : cred_(c), verify_(o.verify), alpn_(o.alpn) {}

  std::unique_ptr<std::remove_pointer_t<gnutls_certificate_credentials_t>, cred_deleter> cred_;
  bool verify_ = true;
  std::string alpn_;
};

}  // namespace rproxy::net::quic
