// rproxy/net/tls_session_cache.hpp: TLS sessions a client keeps to resume its next connection
// to the same server (an abbreviated handshake: no certificate chain sent or verified again, no
// key exchange with TLS 1.2, a PSK one with TLS 1.3). Keyed by what the session was made for
// (net/tls_client.hpp: the backend's address and port, and the name sent and verified), bounded
// in count, shared by the workers (a mutex, taken once per new backend connection and once per
// session the server sends: never per request).
//
//     rproxy::net::tls_session_cache cache(256);
//     cache.store("10.0.0.7:443/api.internal", session);     // takes the caller's reference
//     if (SSL_SESSION* s = cache.find("10.0.0.7:443/api.internal")) { SSL_set_session(ssl, s); SSL_SESSION_free(s); }
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rproxy::net {

class tls_session_cache {
public:
  explicit tls_session_cache(std::size_t capacity) : capacity_(capacity) {}
  tls_session_cache(const tls_session_cache&) = delete;
  tls_session_cache& operator=(const tls_session_cache&) = delete;
  ~tls_session_cache() {
    for (auto& [key, s] : sessions_) SSL_SESSION_free(s);
  }

  /// The session kept for `key` if it can still be resumed (a reference: SSL_SESSION_free it),
  /// else null (one that cannot is dropped).
  SSL_SESSION* find(std::string_view key) {
    std::lock_guard lock(mu_);
    const auto it = sessions_.find(std::string(key));
    if (it == sessions_.end()) return nullptr;
    if (SSL_SESSION_is_resumable(it->second) != 1) {
      SSL_SESSION_free(it->second);
      sessions_.erase(it);
      return nullptr;
    }
    SSL_SESSION_up_ref(it->second);
    return it->second;
  }

  /// Keeps `s` for `key` (the caller's reference is taken), replacing the one kept; a new key
  /// past the capacity drops another key's session first. With capacity 0, frees `s`.
  void store(std::string key, SSL_SESSION* s) {
    std::lock_guard lock(mu_);
    if (auto it = sessions_.find(key); it != sessions_.end()) {
      SSL_SESSION_free(it->second);
      it->second = s;
      return;
    }
    if (capacity_ == 0) return SSL_SESSION_free(s);
    if (sessions_.size() >= capacity_) {
      SSL_SESSION_free(sessions_.begin()->second);
      sessions_.erase(sessions_.begin());
    }
    sessions_.emplace(std::move(key), s);
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return sessions_.size();
  }

private:
  mutable std::mutex mu_;
  std::size_t capacity_;
  std::unordered_map<std::string, SSL_SESSION*> sessions_;
};

}  // namespace rproxy::net
