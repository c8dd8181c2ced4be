// rproxy/net/tls_client_context.hpp: a client TLS configuration (the CAs, verification, ALPN
// and the sessions kept for resumption) without the handshake: what a config block loads and
// checks. net/tls_client.hpp has the handshake (and includes this file); a header that only
// loads a context (flow/upstream_tls_block.hpp, cluster/redis_block.hpp) includes this one, and
// leaves the coroutines and deadlines of the handshake out of the units that include it.
#pragma once

#include <rproxy/core/result.hpp>
#include <rproxy/net/tls_session_cache.hpp>
#include <rproxy/net/tls_stream.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::net {

/// How a client (the proxy, to its backends) sets up TLS.
struct tls_client_options {
  std::string ca_file{};            ///< PEM CA certificates to trust; empty: the system's store
  bool verify = true;               ///< verify the peer's certificate chain and name
  std::vector<std::string> alpn{};  ///< protocols offered, in order (empty: no ALPN)
  std::size_t session_cache = 1024;  ///< sessions kept for resumption, one per backend and name (0: none)
};

/// Client handshakes that succeeded, full or resumed (an app's metric reads them).
struct tls_client_stats {
  std::atomic<std::uint64_t> full{0};
  std::atomic<std::uint64_t> resumed{0};
};

namespace detail {
/// The ex_data slots: the context's session cache (SSL_CTX), a connection's cache key (SSL).
inline int session_cache_slot() {
  static const int i = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return i;
}
inline void free_session_key(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); }
inline int session_key_slot() {
  static const int i = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_session_key);
  return i;
}
/// OpenSSL's new-session callback: keeps a copy of the session under the connection's key.
/// A copy, as OpenSSL marks a connection's own session not resumable when the connection is
/// freed without a close_notify (upstream streams are: net/upstream_stream.hpp).
inline int keep_new_session(SSL* ssl, SSL_SESSION* s) {
  auto* cache = static_cast<tls_session_cache*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), session_cache_slot()));
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, session_key_slot()));
  if (cache == nullptr || key == nullptr) return 0;
  if (SSL_SESSION* copy = SSL_SESSION_dup(s)) cache->store(*key, copy);
  return 0;  // (`s` stays the connection's)
}
}  // namespace detail

/// A client TLS configuration. Movable; the asio context it holds keeps its address.
class tls_client_context {
public:
  static rproxy::result<tls_client_context, tls_load_error> load(const tls_client_options& o) {
    for (const auto& p : o.alpn)
      if (p.empty() || p.size() > 255)
        return detail::load_failure(tls_error::bad_alpn, "alpn: \"" + p + "\": protocol names are 1 to 255 bytes");
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX* raw = ctx->native_handle();
    SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    if (o.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(raw) != 1)
        return detail::load_failure(tls_error::openssl, "tls: cannot load the system CA store: " + detail::openssl_reason());
    } else {
      auto pem = detail::read_file(o.ca_file);  // (a readable, clear error for a missing file)
      if (!pem) return rproxy::failure(pem.error());
      if (SSL_CTX_load_verify_locations(raw, o.ca_file.c_str(), nullptr) != 1)
        return detail::load_failure(tls_error::bad_certificate, o.ca_file + ": no PEM CA certificate found (" + detail::openssl_reason() + ")");
    }
    SSL_CTX_set_verify(raw, o.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    if (!o.alpn.empty()) {
      std::string wire;
      for (const auto& p : o.alpn) wire += static_cast<char>(p.size()), wire += p;
      if (SSL_CTX_set_alpn_protos(raw, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size())) != 0)
        return detail::load_failure(tls_error::openssl, "tls: cannot set ALPN: " + detail::openssl_reason());
    }
    std::unique_ptr<tls_session_cache> sessions;
    if (o.session_cache > 0) {
      sessions = std::make_unique<tls_session_cache>(o.session_cache);
      if (detail::session_cache_slot() < 0 || detail::session_key_slot() < 0 ||
          SSL_CTX_set_ex_data(raw, detail::session_cache_slot(), sessions.get()) != 1)
        return detail::load_failure(tls_error::openssl, "tls: cannot keep sessions: " + detail::openssl_reason());
      // Sessions are kept here, by backend and name, not in OpenSSL's cache (a server's cache).
      SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(raw, &detail::keep_new_session);
    }
    return tls_client_context(std::move(ctx), std::move(sessions), o.verify);
  }

  /// The context to build streams with: `tls_stream s(std::move(sock), ctx.context());`.
  asio::ssl::context& context() const noexcept { return *ctx_; }
  bool verify() const noexcept { return verify_; }

  /// Counts this context's successful handshakes into `s` (null: not counted); `s` outlives it.
  void count_into(tls_client_stats* s) noexcept { stats_ = s; }
  tls_client_stats* stats() const noexcept { return stats_; }
  /// The sessions kept (null: session_cache 0).
  tls_session_cache* sessions() const noexcept { return sessions_.get(); }

  /// Before a handshake of `ssl` to `ep` with `name`: offers the session kept for them, if
  /// any, and has the sessions the server sends kept for them. False: OpenSSL refused.
  bool resume(SSL* ssl, const asio::ip::tcp::endpoint& ep, std::string_view name) const {
    if (!sessions_) return true;
    auto key = std::make_unique<std::string>(ep.address().to_string());
    key->append(":").append(std::to_string(ep.port())).append("/").append(name);
    if (SSL_SESSION* kept = sessions_->find(*key)) {  // a copy again (see detail::keep_new_session)
      SSL_SESSION* s = SSL_SESSION_dup(kept);
      SSL_SESSION_free(kept);
      const int ok = s != nullptr ? SSL_set_session(ssl, s) : 1;
      if (s != nullptr) SSL_SESSION_free(s);
      if (ok != 1) return false;
    }
    if (SSL_set_ex_data(ssl, detail::session_key_slot(), key.get()) != 1) return false;
    (void)key.release();  // freed with the SSL (detail::free_session_key)
    return true;
  }

private:
  tls_client_context(std::unique_ptr<asio::ssl::context> c, std::unique_ptr<tls_session_cache> sessions, bool verify)
      : sessions_(std::move(sessions)), ctx_(std::move(c)), verify_(verify) {}
  std::unique_ptr<tls_session_cache> sessions_;  // (declared first: freed after the SSL_CTX that points at it)
  std::unique_ptr<asio::ssl::context> ctx_;
  bool verify_;
  tls_client_stats* stats_ = nullptr;
};

}  // namespace rproxy::net
