// rproxy/net/tls_failure.hpp: why a TLS server handshake failed, as a short stable name for a
// metric label (async_server_handshake's error, net/tls_stream.hpp).
//
//     auto [ec] = co_await net::async_server_handshake(tls, 10s, as_tuple(use_awaitable));
//     if (ec) failures.with({std::string(net::tls_handshake_failure(ec))}).inc();
//
//   timeout            the handshake did not finish in time (a slow or stalled client)
//   closed             the client left before finishing it (a port probe, a TCP health check)
//   no_shared_cipher   no cipher suite, group or ALPN protocol both sides take
//   protocol_version   the client offers only TLS versions the server refuses (below 1.2)
//   bad_record         what came is not TLS (plain HTTP on the TLS port) or a malformed record
//   untrusted          the client refused our certificate (its alert: unknown CA, bad certificate)
//   other              anything else (the error's message says more)
#pragma once

#include <asio/error.hpp>
#include <asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/sslerr.h>

#include <string_view>
#include <system_error>

namespace rproxy::net {

/// The failure's name (one of the list above).
inline std::string_view tls_handshake_failure(const std::error_code& ec) noexcept {
  if (ec == asio::error::timed_out) return "timeout";
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::operation_aborted)
    return "closed";
  if (ec.category() != asio::error::get_ssl_category()) return "other";
  switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY: return "no_shared_cipher";
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: return "protocol_version";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_BAD_RECORD_TYPE:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD: return "bad_record";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN: return "untrusted";
    default: return "other";
  }
}

}  // namespace rproxy::net
