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
// 0-RTT (early data) is off unless a server session is made with `early_data`: then GnuTLS
// accepts early data from a resumed client, checked by anti_replay (below), and ngtcp2_crypto_gnutls installs the 0-RTT read key (NGTCP2_CRYPTO_LEVEL_EARLY)
// from the client's early traffic secret. What may be done with early data is the app's
// business (HTTP/3: flow/h3.hpp); the transport parameters a client remembers are ours as
// long as the ticket key lives (per credentials: a process, or until a reload makes new ones).
#pragma once

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <string_view>
#include <stdexcept>
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

/// Anti-replay for TLS 1.3 early data (RFC 8446 §8): GnuTLS rejects early data whose ticket
/// age is off by more than `window` (§8.3), or whose ticket was issued before the context's
/// recording window started (it restarts every `window`), and records each accepted
/// ClientHello (§8.2: a single-use cache keyed by its PSK binder) for `window`: the same
/// ClientHello again gets no 0-RTT (GnuTLS goes on with a full 1-RTT handshake).
///
/// GnuTLS's context (gnutls_anti_replay_t) is written during a handshake (its window start),
/// so each worker thread has its own (context()); the cache behind them is one per process,
/// under a mutex, keyed by the binder alone (GnuTLS 3.7 prefixes the 12-byte window start,
/// dropped here), so a ClientHello replayed to another worker is caught too. Bounded: past
/// `max_entries` live entries early data is refused, never remembered less. Several processes
/// behind one address each keep their own; a ticket is only good at the process that issued
/// it (one ticket key per process).
class anti_replay {
public:
  static constexpr std::chrono::seconds window{10};
  static constexpr std::size_t max_entries = 100000;

  /// The cache of this process.
  static anti_replay& process() {
    static anti_replay a;
    return a;
  }
  /// This thread's GnuTLS context (made on first use: call it before the thread's first
  /// ticket is issued, e.g. when a worker's endpoint starts, or early data is refused for
  /// tickets older than it).
  static gnutls_anti_replay_t context() {
    thread_local const context_holder h(process());
    return h.ar;
  }
  /// Live entries (tests).
  std::size_t size() {
    std::lock_guard lock(mu_);
    return seen_.size();
  }

  /// The cache's add: GNUTLS_E_DB_ENTRY_EXISTS for a ClientHello seen within the window (or a
  /// full cache), else remembers it until `expires`.
  int add(std::time_t expires, std::string_view key) {
    const std::time_t now = std::time(nullptr);
    std::lock_guard lock(mu_);
    if (auto it = seen_.find(std::string(key)); it != seen_.end()) {
      if (it->second >= now) return GNUTLS_E_DB_ENTRY_EXISTS;
      seen_.erase(it);
    }
    if (seen_.size() >= max_entries || now >= next_prune_) {
      std::erase_if(seen_, [now](const auto& e) { return e.second < now; });
      next_prune_ = now + 1;
      if (seen_.size() >= max_entries) return GNUTLS_E_DB_ENTRY_EXISTS;
    }
    seen_.emplace(key, expires);
    return 0;
  }

  anti_replay(const anti_replay&) = delete;
  anti_replay& operator=(const anti_replay&) = delete;

private:
  anti_replay() = default;

  struct context_holder {
    explicit context_holder(anti_replay& db) {
      if (gnutls_anti_replay_init(&ar) != 0) throw std::runtime_error("gnutls_anti_replay_init failed");  // out of memory
      gnutls_anti_replay_set_window(ar, static_cast<unsigned>(std::chrono::milliseconds(window).count()));
      gnutls_anti_replay_set_ptr(ar, &db);
      gnutls_anti_replay_set_add_function(ar, [](void* self, std::time_t exp, const gnutls_datum_t* key, const gnutls_datum_t*) {
        std::string_view k(reinterpret_cast<const char*>(key->data), key->size);
        if (k.size() > window_start_size) k.remove_prefix(window_start_size);
        return static_cast<anti_replay*>(self)->add(exp, k);
      });
    }
    ~context_holder() { gnutls_anti_replay_deinit(ar); }
    context_holder(const context_holder&) = delete;
    context_holder& operator=(const context_holder&) = delete;
    gnutls_anti_replay_t ar = nullptr;
  };
  static constexpr std::size_t window_start_size = 12;

  std::mutex mu_;
  std::unordered_map<std::string, std::time_t> seen_;
  std::time_t next_prune_ = 0;
};

namespace detail {

inline int set_alpn(gnutls_session_t s, std::initializer_list<std::string_view> alpn, unsigned flags) {
  std::vector<gnutls_datum_t> ps;
  for (auto a : alpn) ps.push_back({reinterpret_cast<unsigned char*>(const_cast<char*>(a.data())), static_cast<unsigned>(a.size())});
  return ps.empty() ? 0 : gnutls_alpn_set_protocols(s, ps.data(), static_cast<unsigned>(ps.size()), flags);
}

}  // namespace detail

/// A server session for one QUIC connection (ALPN `alpn`, mandatory); `early_data`: accept
/// 0-RTT from resumed clients (anti_replay::context() judges it).
inline result<tls_session, std::string> make_server_session(const tls_credentials& c, ngtcp2_crypto_conn_ref* ref,
                                                            std::initializer_list<std::string_view> alpn = {"h3"}, bool early_data = false) {
  gnutls_session_t raw = nullptr;
  const unsigned flags = GNUTLS_SERVER | GNUTLS_NO_END_OF_EARLY_DATA | (early_data ? static_cast<unsigned>(GNUTLS_ENABLE_EARLY_DATA) : 0u);
  if (int rv = gnutls_init(&raw, flags); rv != 0) return failure(tls_error("session", rv));
  tls_session s(raw);
  if (ngtcp2_crypto_gnutls_configure_server_session(raw) != 0) return failure(std::string("ngtcp2_crypto_gnutls_configure_server_session failed"));
  if (int rv = gnutls_priority_set_direct(raw, tls_priority, nullptr); rv != 0) return failure(tls_error("priority", rv));
  const auto key = c.ticket_key();
  if (key.size > 0)
    if (int rv = gnutls_session_ticket_enable_server(raw, &key); rv != 0) return failure(tls_error("session tickets", rv));
  // RFC 9001 §4.6.1: a ticket's max_early_data_size must be 0xffffffff (BoringSSL checks).
  (void)gnutls_record_set_max_early_data_size(raw, 0xffffffffu);
  if (early_data) gnutls_anti_replay_enable(raw, anti_replay::context());
  if (int rv = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, c.get()); rv != 0) return failure(tls_error("credentials", rv));
  if (int rv = detail::set_alpn(raw, alpn, GNUTLS_ALPN_MANDATORY); rv != 0) return failure(tls_error("alpn", rv));
  gnutls_session_set_ptr(raw, ref);
  return s;
}

namespace detail {
/// An IPv4 or IPv6 address, not a host name: RFC 6066 (3) does not allow one as SNI, and
/// servers refuse a handshake that sends it. The certificate is checked against it all the same.
inline bool is_ip_literal(const char* name) noexcept {
  unsigned char addr[16];
  return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}
}  // namespace detail

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
  if (!server_name.empty() && !detail::is_ip_literal(name))  // (still checked against the certificate below)
    if (int rv = gnutls_server_name_set(raw, GNUTLS_NAME_DNS, name, std::min<std::size_t>(server_name.size(), 255)); rv != 0) return failure(tls_error("server name", rv));
  if (c.verify()) gnutls_session_set_verify_cert(raw, server_name.empty() ? nullptr : name, 0);
  gnutls_session_set_ptr(raw, ref);
  return s;
}

}  // namespace rproxy::net::quic
