// rproxy/net/tls_client.hpp: client-side TLS over OpenSSL (asio::ssl) for backend connections:
// the peer's certificate verified by default (the system's CA store, or a CA file), the name
// checked against the certificate (a DNS name, or the backend's IP address when no name is
// given), SNI, ALPN offered, TLS 1.2+.
//
//     auto tls = rproxy::net::tls_client_context::load({.ca_file = "ca.pem"});
//     if (!tls) { log(tls.error().message); return; }          // "ca.pem: No such file ..."
//     rproxy::net::tls_stream s(std::move(socket), tls->context());
//     auto ec = co_await rproxy::net::async_client_handshake(s, *tls, "api.internal", ep.address(), 2s,
//                                                            asio::use_awaitable ...);
//     if (ec == rproxy::net::error::tls_verify_failed) ...;   // wrong CA, wrong name, expired
//
// Session resumption: a context keeps the sessions its servers send (net/tls_session_cache.hpp,
// `session_cache` of them), keyed by the backend's address and port and the name, and offers
// the one kept for a backend on the next handshake to it (the overload of async_client_handshake
// that takes the endpoint). TLS 1.3 servers send their tickets after the handshake: they are
// kept when they arrive (OpenSSL's new-session callback), on the connection's first read.
// count_into() counts the full and the resumed handshakes (SSL_session_reused).
//
// Lifetime: a tls_client_context must outlive every stream made from it (keep it in the config
// snapshot that flows hold). Loading happens at startup or reload and may allocate freely; its
// sessions go with it (a reload starts with none).
#pragma once

#include <rproxy/core/result.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/tls_client_context.hpp>
#include <rproxy/net/tls_stream.hpp>

#include <asio/async_result.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/experimental/deferred.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace rproxy::net {

/// Sets what the handshake sends and checks: SNI `name` (when it is a DNS name; none for an
/// empty name or an IP literal), and, when the context verifies, the name the certificate must
/// carry: `name`, or else `address` (an IP SAN). False: OpenSSL refused a setting.
inline bool prepare_client(tls_stream& s, const tls_client_context& c, std::string_view name, const asio::ip::address& address) {
  SSL* ssl = s.native_handle();
  const std::string n(name);
  std::error_code ec;
  const bool is_ip = !n.empty() && (asio::ip::make_address(n, ec), !ec);
  if (!n.empty() && !is_ip && SSL_set_tlsext_host_name(ssl, n.c_str()) != 1) return false;
  if (!c.verify()) return true;
  if (!n.empty() && !is_ip) return SSL_set1_host(ssl, n.c_str()) == 1;
  const std::string ip = is_ip ? n : address.to_string();
  return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip.c_str()) == 1;
}

/// Why a client handshake failed, as a net::error: tls_verify_failed when the peer's
/// certificate was refused (its chain, its name, its dates), connect_timeout when it took too
/// long, else tls_handshake_failed (no common protocol or cipher, a reset, not TLS at all).
inline std::error_code classify_client_handshake(tls_stream& s, const std::error_code& ec) {
  if (!ec) return ec;
  if (ec == error::idle_timeout) return make_error_code(error::connect_timeout);
  if (ec == asio::error::operation_aborted) return ec;
  const long v = SSL_get_verify_result(s.native_handle());
  if (v != X509_V_OK) return make_error_code(error::tls_verify_failed);
  return make_error_code(error::tls_handshake_failed);
}

/// The reason OpenSSL gave for refusing the peer's certificate ("" when it did not), for logs.
inline std::string_view verify_reason(tls_stream& s) {
  const long v = SSL_get_verify_result(s.native_handle());
  return v == X509_V_OK ? std::string_view() : std::string_view(X509_verify_cert_error_string(v));
}

/// The client handshake of `s` within `timeout` (prepare_client first: SNI and the name
/// checked). Completes with the error classify_client_handshake gives (none: connected).
inline asio::awaitable<std::error_code> async_client_handshake(tls_stream& s, const tls_client_context& c, std::string_view name,
                                                               const asio::ip::address& address,
                                                               std::chrono::steady_clock::duration timeout) {
  if (!prepare_client(s, c, name, address)) co_return make_error_code(error::tls_handshake_failed);
  auto [ec] = co_await with_deadline(s.async_handshake(asio::ssl::stream_base::client, asio::experimental::deferred), timeout);
  co_return classify_client_handshake(s, ec);
}

/// The same to the backend at `ep`, resuming a session kept for `ep` and `name` when the
/// context keeps sessions (the server may refuse: a full handshake then), and counting the
/// handshake, full or resumed, into the context's stats.
inline asio::awaitable<std::error_code> async_client_handshake(tls_stream& s, const tls_client_context& c, std::string_view name,
                                                               const asio::ip::tcp::endpoint& ep,
                                                               std::chrono::steady_clock::duration timeout) {
  if (!prepare_client(s, c, name, ep.address()) || !c.resume(s.native_handle(), ep, name))
    co_return make_error_code(error::tls_handshake_failed);
  auto [ec] = co_await with_deadline(s.async_handshake(asio::ssl::stream_base::client, asio::experimental::deferred), timeout);
  const auto out = classify_client_handshake(s, ec);
  if (!out && c.stats() != nullptr) (SSL_session_reused(s.native_handle()) == 1 ? c.stats()->resumed : c.stats()->full)++;
  co_return out;
}

}  // namespace rproxy::net
