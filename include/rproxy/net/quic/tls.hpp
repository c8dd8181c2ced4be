// rproxy/net/quic/tls.hpp: the TLS 1.3 half of QUIC on GnuTLS (RFC 9001), for servers and
// clients alike: certificate credentials and a session wired to an ngtcp2 connection through
// ngtcp2_crypto_gnutls.
//
//     auto creds = tls_credentials::server({{"cert.pem", "key.pem"}});      // at startup / reload
//     auto s = make_server_session(*creds, &conn_ref, {"h3"});              // per connection
//     ngtcp2_conn_set_tls_native_handle(conn, s->get());
//
//     auto cc = tls_credentials::client({.verify = true, .ca_file = "ca.pem"});
//     auto s = make_client_session(*cc, &conn_ref, "backend.example", {"h3"});
//
// `conn_ref` (ngtcp2_crypto_conn_ref: get_conn + user_data) is how ngtcp2_crypto finds the
// connection from the session: it must stay at one address for the session's life (keep both
// in the heap object of the connection).
//
// What a real browser needs, found by experiment (../../../../docs/h3-gateway.md, HTTP/3):
//   - the session's NewSessionTicket must say max_early_data_size 0xffffffff (RFC 9001 §4.6.1;
//     BoringSSL closes the connection on GnuTLS's default of 16384);
//   - ALPN is mandatory: a ClientHello without "h3" fails the handshake.
// 0-RTT is off: sessions are not created with GNUTLS_ENABLE_EARLY_DATA.
#pragma once

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>

namespace rproxy::net::quic {

/// TLS 1.3 only, the AEADs QUIC defines, no middlebox compatibility mode (RFC 9001 §8.4).
inline constexpr const char* tls_priority =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM";

/// A GnuTLS error as text ("what: GnuTLS's message").
inline std::string tls_error(std::string_view what, int rv) {
  std::string s(what);
  s += ": ";
  s += gnutls_strerror(rv);
  return s;
}

/// Certificate credentials: a server's certificates (GnuTLS picks one by SNI), or a client's
/// trust anchors. Move-only.
class tls_credentials {
public:
  struct certificate_files {
    std::string cert;  ///< PEM: the certificate, then its chain
    std::string key;   ///< PEM: its private key (unencrypted)
  };
  struct client_options {
    bool verify = true;       ///< check the server's certificate and name
    std::string ca_file;      ///< PEM trust anchors (empty: the system's)
  };

  /// A server's credentials; the first certificate is the default. An error names the file.
  static result<tls_credentials, std::string> server(const std::vector<certificate_files>& certs) {
    tls_credentials c;
    if (int rv = c.allocate(); rv != 0) return failure(tls_error("credentials", rv));
    for (const auto& f : certs)
      if (int rv = gnutls_certificate_set_x509_key_file(c.creds_.get(), f.cert.c_str(), f.key.c_str(), GNUTLS_X509_FMT_PEM); rv < 0)
        return failure(tls_error(f.cert + " / " + f.key, rv));
    if (certs.empty()) return failure(std::string("no certificate"));
    c.server_ = true;
    // Session tickets (resumption, not 0-RTT): a key per process.
    gnutls_datum_t key{};
    if (int rv = gnutls_session_ticket_key_generate(&key); rv != 0) return failure(tls_error("ticket key", rv));
    c.ticket_key_.assign(key.data, key.data + key.size);
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
    return c;
  }

  /// A client's credentials.
  static result<tls_credentials, std::string> client(const client_options& o) {
    tls_credentials c;
    if (int rv = c.allocate(); rv != 0) return failure(tls_error("credentials", rv));
    if (o.verify) {
      const int rv = o.ca_file.empty() ? gnutls_certificate_set_x509_system_trust(c.creds_.get())
                                       : gnutls_certificate_set_x509_trust_file(c.creds_.get(), o.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
      if (rv < 0) return failure(tls_error(o.ca_file.empty() ? std::string("system trust") : o.ca_file, rv));
    }
    c.verify_ = o.verify;
    return c;
  }

  gnutls_certificate_credentials_t get() const noexcept { return creds_.get(); }
  bool verify() const noexcept { return verify_; }
  bool is_server() const noexcept { return server_; }
  /// The session-ticket key (servers), for gnutls_session_ticket_enable_server.
  gnutls_datum_t ticket_key() const noexcept {
    return {const_cast<unsigned char*>(ticket_key_.data()), static_cast<unsigned>(ticket_key_.size())};
  }

  ~tls_credentials() {
    if (!ticket_key_.empty()) gnutls_memset(ticket_key_.data(), 0, ticket_key_.size());
  }
  tls_credentials(tls_credentials&&) noexcept = default;
  tls_credentials& operator=(tls_credentials&&) noexcept = default;

private:
  tls_credentials() = default;
  int allocate() {
    gnutls_certificate_credentials_t c = nullptr;
    if (int rv = gnutls_certificate_allocate_credentials(&c); rv != 0) return rv;
    creds_.reset(c);
    return 0;
  }
  struct free_creds {
    void operator()(gnutls_certificate_credentials_t c) const noexcept { gnutls_certificate_free_credentials(c); }
  };
  std::unique_ptr<std::remove_pointer_t<gnutls_certificate_credentials_t>, free_creds> creds_;
  std::vector<unsigned char> ticket_key_;
  bool verify_ = false, server_ = false;
};

/// A GnuTLS session (move-only; deinit on destruction).
class tls_session {
public:
  tls_session() = default;
  explicit tls_session(gnutls_session_t s) noexcept : s_(s) {}
  gnutls_session_t get() const noexcept { return s_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(s_); }
  /// The protocol ALPN chose (empty: none).
  std::string_view alpn() const noexcept {
    gnutls_datum_t p{};
    if (!s_ || gnutls_alpn_get_selected_protocol(s_.get(), &p) != 0) return {};
    return {reinterpret_cast<const char*>(p.data), p.size};
  }

  /// Keeps `name` for the session's life (GnuTLS keeps the pointer it is given to verify).
  /// (At most 255 bytes: a DNS name has at most 253; the bound also spares g++ -O3 a false
  /// -Wstringop-overflow about a size that could wrap.)
  const char* keep_name(std::string_view name) {
    const std::size_t n = std::min<std::size_t>(name.size(), 255);
    name_ = std::make_unique<char[]>(n + 1);  // zero-filled: the terminator is there
    std::copy_n(name.data(), n, name_.get());
    return name_.get();
  }

private:
  struct deinit {
    void operator()(gnutls_session_t s) const noexcept { gnutls_deinit(s); }
  };
  std::unique_ptr<char[]> name_;  // before s_: destroyed after the session
  std::unique_ptr<std::remove_pointer_t<gnutls_session_t>, deinit> s_;
};

namespace detail {

inline int set_alpn(gnutls_session_t s, std::initializer_list<std::string_view> alpn, unsigned flags) {
  std::vector<gnutls_datum_t> ps;
  for (auto a : alpn) ps.push_back({reinterpret_cast<unsigned char*>(const_cast<char*>(a.data())), static_cast<unsigned>(a.size())});
  return ps.empty() ? 0 : gnutls_alpn_set_protocols(s, ps.data(), static_cast<unsigned>(ps.size()), flags);
}

}  // namespace detail

/// A server session for one QUIC connection (ALPN `alpn`, mandatory).
inline result<tls_session, std::string> make_server_session(const tls_credentials& c, ngtcp2_crypto_conn_ref* ref,
                                                            std::initializer_list<std::string_view> alpn = {"h3"}) {
  gnutls_session_t raw = nullptr;
  if (int rv = gnutls_init(&raw, GNUTLS_SERVER | GNUTLS_NO_END_OF_EARLY_DATA); rv != 0) return failure(tls_error("session", rv));
  tls_session s(raw);
  if (ngtcp2_crypto_gnutls_configure_server_session(raw) != 0) return failure(std::string("ngtcp2_crypto_gnutls_configure_server_session failed"));
  if (int rv = gnutls_priority_set_direct(raw, tls_priority, nullptr); rv != 0) return failure(tls_error("priority", rv));
  const auto key = c.ticket_key();
  if (key.size > 0)
    if (int rv = gnutls_session_ticket_enable_server(raw, &key); rv != 0) return failure(tls_error("session tickets", rv));
  // RFC 9001 §4.6.1: a ticket's max_early_data_size must be 0xffffffff (BoringSSL checks).
  (void)gnutls_record_set_max_early_data_size(raw, 0xffffffffu);
  if (int rv = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, c.get()); rv != 0) return failure(tls_error("credentials", rv));
  if (int rv = detail::set_alpn(raw, alpn, GNUTLS_ALPN_MANDATORY); rv != 0) return failure(tls_error("alpn", rv));
  gnutls_session_set_ptr(raw, ref);
  return s;
}

/// A client session for one QUIC connection to `server_name` (SNI and, when the credentials
/// verify, the name checked against the certificate), offering `alpn`.
inline result<tls_session, std::string> make_client_session(const tls_credentials& c, ngtcp2_crypto_conn_ref* ref, std::string_view server_name,
                                                            std::initializer_list<std::string_view> alpn = {"h3"}) {
  gnutls_session_t raw = nullptr;
  if (int rv = gnutls_init(&raw, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA); rv != 0) return failure(tls_error("session", rv));
  tls_session s(raw);
  if (ngtcp2_crypto_gnutls_configure_client_session(raw) != 0) return failure(std::string("ngtcp2_crypto_gnutls_configure_client_session failed"));
  if (int rv = gnutls_priority_set_direct(raw, tls_priority, nullptr); rv != 0) return failure(tls_error("priority", rv));
  if (int rv = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, c.get()); rv != 0) return failure(tls_error("credentials", rv));
  if (int rv = detail::set_alpn(raw, alpn, 0); rv != 0) return failure(tls_error("alpn", rv));
  const char* name = s.keep_name(server_name);
  if (!server_name.empty())
    if (int rv = gnutls_server_name_set(raw, GNUTLS_NAME_DNS, name, std::min<std::size_t>(server_name.size(), 255)); rv != 0) return failure(tls_error("server name", rv));
  if (c.verify()) gnutls_session_set_verify_cert(raw, server_name.empty() ? nullptr : name, 0);
  gnutls_session_set_ptr(raw, ref);
  return s;
}

}  // namespace rproxy::net::quic
