// rproxy/net/quic/client_error.hpp: error codes of the QUIC client (net::quic::client_connection).
//
// Each code says where the failure came from and whether a retry on another connection is safe:
// a connection that never finished its handshake carried no request, so those are retry-safe.
#pragma once

#include <string>
#include <system_error>

#include <rproxy/core/error.hpp>

namespace rproxy::net::quic {

enum class client_error {
  tls_setup = 1,      ///< GnuTLS refused the credentials or the session settings (internal)
  ca_file,            ///< the CA file could not be read or held no certificate (internal, startup)
  socket_failed,      ///< the UDP socket could not be opened or connected (upstream, retry-safe)
  handshake_failed,   ///< the QUIC or TLS handshake failed: bad certificate, no ALPN h3 (upstream, retry-safe)
  handshake_timeout,  ///< no handshake within the handshake timeout (upstream, retry-safe)
  idle_timeout,       ///< nothing received for the idle timeout (upstream)
  peer_closed,        ///< the server closed the connection (upstream)
  transport_failed,   ///< the server broke the QUIC protocol, or ngtcp2 failed (upstream)
  no_stream,          ///< the server allows no more streams now (upstream, retry-safe)
  closed,             ///< the connection was closed here, or is closing (internal, retry-safe)
};

namespace detail {

class quic_client_error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.quic.client"; }
  std::string message(int c) const override {
    switch (static_cast<client_error>(c)) {
      case client_error::tls_setup: return "TLS setup for QUIC failed";
      case client_error::ca_file: return "CA file unreadable or empty";
      case client_error::socket_failed: return "UDP socket to the server failed";
      case client_error::handshake_failed: return "QUIC handshake failed";
      case client_error::handshake_timeout: return "QUIC handshake timed out";
      case client_error::idle_timeout: return "QUIC connection idle for too long";
      case client_error::peer_closed: return "server closed the QUIC connection";
      case client_error::transport_failed: return "QUIC transport error";
      case client_error::no_stream: return "no QUIC stream available";
      case client_error::closed: return "QUIC connection closed";
    }
    return "unknown rproxy.quic.client error";
  }
  condition source(int c) const noexcept override {
    switch (static_cast<client_error>(c)) {
      case client_error::tls_setup:
      case client_error::ca_file:
      case client_error::closed: return condition::internal;
      default: return condition::upstream;
    }
  }
  bool retry_safe(int c) const noexcept override {
    switch (static_cast<client_error>(c)) {
      case client_error::socket_failed:
      case client_error::handshake_failed:
      case client_error::handshake_timeout:
      case client_error::no_stream:
      case client_error::closed: return true;
      default: return false;
    }
  }
};

}  // namespace detail

inline const rproxy::error_category& client_error_category() noexcept {
  static const detail::quic_client_error_category c;
  return c;
}

inline std::error_code make_error_code(client_error e) noexcept { return {static_cast<int>(e), client_error_category()}; }

}  // namespace rproxy::net::quic

template <>
struct std::is_error_code_enum<rproxy::net::quic::client_error> : std::true_type {};
