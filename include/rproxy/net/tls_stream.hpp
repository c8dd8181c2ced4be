// rproxy/net/tls_stream.hpp: server-side TLS over OpenSSL (asio::ssl): certificates picked by
// SNI (exact names, then "*.example.com" wildcards, else the first), ALPN by server preference,
// TLS 1.2+ with sane ciphers, and a handshake with a timeout.
//
//     auto ctx = rproxy::net::tls_server_context::load({
//         .certificates = {{"a.pem", "a.key", {"a.test"}}, {"w.pem", "w.key", {"*.w.test"}}},
//         .alpn = {"h2", "http/1.1"}});
//     if (!ctx) { log(ctx.error().message); return; }   // "a.key: key does not match ..."
//     rproxy::net::tls_stream tls(std::move(socket), ctx->context());
//     auto ec = co_await rproxy::net::async_server_handshake(tls, 10s, asio::use_awaitable ...);
//     if (rproxy::net::alpn(tls) == "h2") ...; rproxy::net::server_name(tls) == "a.test" ...
//
// Lifetime: a tls_server_context must outlive every stream made from it (keep it in the config
// snapshot that flows hold). Loading happens at startup or reload and may allocate freely.
#pragma once

#include <rproxy/core/error.hpp>
#include <rproxy/core/result.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/compose.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace rproxy::net {

/// A TLS connection over TCP, server or client side.
using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

/// Why a TLS server configuration could not be loaded.
enum class tls_error {
  no_certificates = 1,  ///< the certificate list is empty
  file_unreadable,      ///< a certificate or key file cannot be read
  bad_certificate,      ///< no PEM certificate in the file, or OpenSSL refused it
  bad_private_key,      ///< no (unencrypted) PEM private key in the file
  key_mismatch,         ///< the private key does not belong to the certificate
  bad_server_name,      ///< a server name is empty or has a wildcard other than a leading "*."
  bad_alpn,             ///< an ALPN protocol name is empty or longer than 255 bytes
  bad_ciphers,          ///< the cipher list selects no cipher
  openssl,              ///< OpenSSL failed to create a context
};

namespace detail {

class tls_error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.net.tls"; }
  std::string message(int c) const override {
    switch (static_cast<tls_error>(c)) {
      case tls_error::no_certificates: return "no certificates configured";
      case tls_error::file_unreadable: return "cannot read file";
      case tls_error::bad_certificate: return "invalid certificate";
      case tls_error::bad_private_key: return "invalid private key";
      case tls_error::key_mismatch: return "private key does not match certificate";
      case tls_error::bad_server_name: return "invalid server name";
      case tls_error::bad_alpn: return "invalid ALPN protocol name";
      case tls_error::bad_ciphers: return "cipher list selects no cipher";
      case tls_error::openssl: return "OpenSSL failure";
    }
    return "unknown TLS error";
  }
  condition source(int) const noexcept override { return condition::internal; }
  bool retry_safe(int) const noexcept override { return false; }
};

}  // namespace detail

inline const rproxy::error_category& tls_error_category() noexcept {
  static const detail::tls_error_category c;
  return c;
}

inline std::error_code make_error_code(tls_error e) noexcept {
  return {static_cast<int>(e), tls_error_category()};
}

}  // namespace rproxy::net

template <>
struct std::is_error_code_enum<rproxy::net::tls_error> : std::true_type {};

namespace rproxy::net {

/// One certificate the server can present.
struct tls_certificate {
  std::string cert_file{};  ///< PEM: the leaf certificate, then its chain
  std::string key_file{};   ///< PEM private key, unencrypted
  /// Names this certificate serves: exact ("a.test") or one leading wildcard label ("*.a.test").
  /// Empty: the certificate's DNS subjectAltNames, or its CN when it has none.
  std::vector<std::string> server_names{};
};

enum class tls_version { tls1_2, tls1_3 };

struct tls_server_options {
  std::vector<tls_certificate> certificates{};  ///< the first one is the default
  std::vector<std::string> alpn{};            ///< server preference, e.g. {"h2", "http/1.1"}
  /// When the client offers ALPN and no protocol overlaps: true fails the handshake
  /// (no_application_protocol alert), false goes on without ALPN.
  bool require_alpn = false;
  /// A server name that matches no certificate: true fails the handshake (unrecognized_name),
  /// false presents the default certificate. Clients that send no SNI always get the default.
  bool strict_sni = false;
  tls_version min_version = tls_version::tls1_2;
  /// TLS 1.2 cipher list (OpenSSL syntax); TLS 1.3 uses OpenSSL's default AEAD suites.
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
};

/// A load failure: a tls_error code and a message naming the file ("cert.pem: ...").
struct tls_load_error {
  std::error_code code{};
  std::string message{};
};

namespace detail {

struct tls_server_state {
  std::vector<asio::ssl::context> contexts;          // one per certificate; [0] is the default
  std::vector<std::vector<std::string>> names;       // lower case, per certificate
  std::vector<std::string> alpn;
  bool require_alpn = false;
  bool strict_sni = false;

  static constexpr std::size_t none = static_cast<std::size_t>(-1);

  static std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
  }

  // Exact names first (over all certificates), then one-label wildcards, then the default.
  std::size_t select(std::string_view server_name) const {
    std::string name = lower(server_name);
    if (!name.empty() && name.back() == '.') name.pop_back();
    for (std::size_t i = 0; i < names.size(); ++i)
      for (const auto& n : names[i])
        if (n == name) return i;
    const auto dot = name.find('.');
    if (dot != std::string::npos && dot > 0) {
      const std::string_view suffix = std::string_view(name).substr(dot);  // ".example.com"
      for (std::size_t i = 0; i < names.size(); ++i)
        for (const auto& n : names[i])
          if (n.size() > 2 && n[0] == '*' && std::string_view(n).substr(1) == suffix) return i;
    }
    return strict_sni ? none : 0;
  }
};

inline std::string openssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (const char* r = ERR_reason_error_string(e)) {
      out = r;  // the last reason is the most specific
    } else {
      out = buf;
    }
  }
  return out;
}

inline rproxy::failure_t<tls_load_error> load_failure(tls_error e, std::string message) {
  ERR_clear_error();
  return rproxy::failure(tls_load_error{make_error_code(e), std::move(message)});
}

inline rproxy::result<std::string, tls_load_error> read_file(const std::string& path) {
  errno = 0;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno != 0 ? errno : ENOENT;
    return load_failure(tls_error::file_unreadable,
                        path + ": " + std::generic_category().message(err));
  }
  std::string data;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed)
    return load_failure(tls_error::file_unreadable,
                        path + ": " + std::generic_category().message(err != 0 ? err : EIO));
  return data;
}

struct bio_deleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_deleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

inline bio_ptr memory_bio(const std::string& data) {
  return bio_ptr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Never prompt on a terminal for a passphrase: encrypted keys simply fail to load.
inline int no_passphrase(char*, int, int, void*) { return -1; }

inline std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> out;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const auto* s = gn->d.dNSName;
      out.push_back(tls_server_state::lower(std::string_view(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx >= 0) {
      const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      out.push_back(tls_server_state::lower(
          std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                           static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
  }
  return out;
}

inline bool valid_server_name(std::string_view n) {
  if (n.empty() || n.size() > 253) return false;
  const auto star = n.find('*');
  if (star == std::string_view::npos) return true;
  return star == 0 && n.size() > 2 && n[1] == '.' && n.find('*', 1) == std::string_view::npos;
}

// Loads one certificate chain and its key into `ctx`; fills `names`.
inline rproxy::result<void, tls_load_error> load_certificate(SSL_CTX* ctx,
                                                             const tls_certificate& c,
                                                             std::vector<std::string>& names) {
  auto cert_pem = read_file(c.cert_file);
  if (!cert_pem) return rproxy::failure(cert_pem.error());
  auto key_pem = read_file(c.key_file);
  if (!key_pem) return rproxy::failure(key_pem.error());

  auto bio = memory_bio(*cert_pem);
  x509_ptr leaf(PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) return load_failure(tls_error::bad_certificate, c.cert_file + ": no PEM certificate found");
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1)
    return load_failure(tls_error::bad_certificate,
                        c.cert_file + ": certificate rejected: " + openssl_reason());
  SSL_CTX_clear_chain_certs(ctx);
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      return load_failure(tls_error::bad_certificate,
                          c.cert_file + ": chain certificate rejected: " + openssl_reason());
    }
  }
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE))
    return load_failure(tls_error::bad_certificate,
                        c.cert_file + ": malformed chain certificate: " + openssl_reason());
  ERR_clear_error();

  auto kbio = memory_bio(*key_pem);
  pkey_ptr key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_passphrase, nullptr));
  if (!key)
    return load_failure(tls_error::bad_private_key,
                        c.key_file + ": no PEM private key found (encrypted keys are not supported)");
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return load_failure(tls_error::key_mismatch,
                        c.key_file + ": key does not match certificate " + c.cert_file);

  if (c.server_names.empty()) {
    names = certificate_names(leaf.get());
  } else {
    names.clear();
    for (const auto& n : c.server_names) {
      if (!valid_server_name(n))
        return load_failure(tls_error::bad_server_name,
                            "server name \"" + n + "\" (" + c.cert_file +
                                "): only exact names or a leading \"*.\" wildcard");
      names.push_back(tls_server_state::lower(n));
    }
  }
  return {};
}

inline int on_server_name(SSL* ssl, int* alert, void* arg) {
  auto* st = static_cast<tls_server_state*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  const std::size_t i = st->select(name);
  if (i == tls_server_state::none) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (i != 0) {
    if (SSL_set_SSL_CTX(ssl, st->contexts[i].native_handle()) == nullptr) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

inline int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                   const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* st = static_cast<const tls_server_state*>(arg);
  for (const auto& want : st->alpn) {
    for (unsigned int i = 0; i < inlen;) {
      const unsigned int len = in[i];
      if (len == 0 || i + 1 + len > inlen) break;  // malformed client list: stop looking
      if (len == want.size() && std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == want) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return st->require_alpn ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

inline rproxy::result<void, tls_load_error> configure(SSL_CTX* ctx, tls_server_state* st,
                                                      const tls_server_options& o) {
  const int min = o.min_version == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, min) != 1)
    return load_failure(tls_error::openssl, "cannot set the minimum TLS version");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);  // idle connections hold no TLS buffers
  if (SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) != 1)
    return load_failure(tls_error::bad_ciphers, "ciphers: no cipher matches \"" + o.ciphers + "\"");
  static constexpr unsigned char sid[] = "rproxy";
  SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_server_name);
  SSL_CTX_set_tlsext_servername_arg(ctx, st);
  if (!o.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, on_alpn, st);
  return {};
}

}  // namespace detail

/// Server TLS configuration: certificates chosen by SNI, ALPN, versions and ciphers.
class tls_server_context {
public:
  /// Loads every certificate and key; errors name the file at fault.
  static rproxy::result<tls_server_context, tls_load_error> load(const tls_server_options& o) {
    if (o.certificates.empty())
      return detail::load_failure(tls_error::no_certificates, "tls: no certificates configured");
    for (const auto& p : o.alpn)
      if (p.empty() || p.size() > 255)
        return detail::load_failure(tls_error::bad_alpn,
                                    "alpn: \"" + p + "\": protocol names are 1 to 255 bytes");
    auto st = std::make_unique<detail::tls_server_state>();
    st->alpn = o.alpn;
    st->require_alpn = o.require_alpn;
    st->strict_sni = o.strict_sni;
    st->contexts.reserve(o.certificates.size());
    st->names.resize(o.certificates.size());
    for (std::size_t i = 0; i < o.certificates.size(); ++i) {
      SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
      if (raw == nullptr)
        return detail::load_failure(tls_error::openssl,
                                    "tls: SSL_CTX_new failed: " + detail::openssl_reason());
      st->contexts.emplace_back(raw);  // owns it from here
      if (auto r = detail::configure(raw, st.get(), o); !r) return rproxy::failure(r.error());
      if (auto r = detail::load_certificate(raw, o.certificates[i], st->names[i]); !r)
        return rproxy::failure(r.error());
    }
    return tls_server_context(std::move(st));
  }

  /// The context to build streams with: `tls_stream s(std::move(sock), ctx.context());`.
  asio::ssl::context& context() noexcept { return state_->contexts.front(); }

  /// Index of the certificate a server name selects (SNI rules above); npos if strict_sni
  /// rejects it.
  std::size_t select(std::string_view server_name) const { return state_->select(server_name); }
  static constexpr std::size_t npos = detail::tls_server_state::none;

  /// Names certificate `i` serves (lower case), as configured or read from the certificate.
  const std::vector<std::string>& names(std::size_t i) const { return state_->names.at(i); }
  std::size_t size() const noexcept { return state_->contexts.size(); }

private:
  explicit tls_server_context(std::unique_ptr<detail::tls_server_state> st)
      : state_(std::move(st)) {}

  std::unique_ptr<detail::tls_server_state> state_;  // stable address: OpenSSL callbacks use it
};

/// The server name the client sent (SNI), or "" if none.
template <class NextLayer>
std::string_view server_name(asio::ssl::stream<NextLayer>& s) noexcept {
  const char* n = SSL_get_servername(s.native_handle(), TLSEXT_NAMETYPE_host_name);
  return n != nullptr ? std::string_view(n) : std::string_view();
}

/// The protocol ALPN settled on, or "" if none (valid after the handshake).
template <class NextLayer>
std::string_view alpn(asio::ssl::stream<NextLayer>& s) noexcept {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(s.native_handle(), &p, &len);
  return p != nullptr ? std::string_view(reinterpret_cast<const char*>(p), len)
                      : std::string_view();
}

namespace detail {

struct handshake_deadline {
  explicit handshake_deadline(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  bool done = false;
  bool timed_out = false;
};

template <class NextLayer>
struct server_handshake_op {
  asio::ssl::stream<NextLayer>& stream_;
  std::chrono::steady_clock::duration timeout_;
  std::shared_ptr<handshake_deadline> deadline_{};

  template <class Self>
  void operator()(Self& self) {
    if (timeout_ > std::chrono::steady_clock::duration::zero()) {
      deadline_ = std::make_shared<handshake_deadline>(stream_.get_executor());
      deadline_->timer.expires_after(timeout_);
      // The stream is touched only while the handshake is pending, so it is still alive.
      deadline_->timer.async_wait([d = deadline_, &s = stream_](std::error_code ec) {
        if (ec || d->done) return;
        d->timed_out = true;
        std::error_code ignored;
        s.lowest_layer().cancel(ignored);
      });
    }
    stream_.async_handshake(asio::ssl::stream_base::server, std::move(self));
  }

  template <class Self>
  void operator()(Self& self, std::error_code ec) {
    if (deadline_) {
      deadline_->done = true;
      deadline_->timer.cancel();
      if (ec && deadline_->timed_out) ec = asio::error::timed_out;
      deadline_.reset();
    }
    self.complete(ec);
  }
};

}  // namespace detail

/// Server handshake that fails with asio::error::timed_out when it takes longer than `timeout`
/// (zero or negative: no limit). Completes with `void(std::error_code)`; any completion token.
/// Meant for an io_context run by one thread (or a strand), as rproxy workers are.
template <class NextLayer, class CompletionToken>
auto async_server_handshake(asio::ssl::stream<NextLayer>& stream,
                            std::chrono::steady_clock::duration timeout,
                            CompletionToken&& token) {
  return asio::async_compose<CompletionToken, void(std::error_code)>(
      detail::server_handshake_op<NextLayer>{stream, timeout}, token, stream);
}

}  // namespace rproxy::net
