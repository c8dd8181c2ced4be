// net/quic/tls.hpp: a client session sends SNI only for a host name. An IP literal (RFC 6066
// section 3 forbids it as SNI, and servers refuse a handshake that sends one) is still the name
// the certificate is checked against. (By hand: h3bench to https://[::1]:PORT/ failed its
// handshake before, and passes now, certificate verified against the address.)
#include <catch2/catch.hpp>

#include <rproxy/net/quic/tls.hpp>

namespace quic = rproxy::net::quic;

TEST_CASE("client session: an IPv4 or IPv6 literal is not a host name for SNI") {
  for (const char* host : {"localhost", "backend.internal", "a1.example", "1.2.3.4.example", "::1x", "300.1.1.1"})
    CHECK_FALSE(quic::detail::is_ip_literal(host));
  for (const char* ip : {"127.0.0.1", "10.0.0.7", "::1", "2001:db8::5", "::ffff:10.0.0.1"})
    CHECK(quic::detail::is_ip_literal(ip));
}

TEST_CASE("client session: made for a host name, an IP literal, or no name") {
  auto creds = quic::tls_credentials::client({.verify = true, .ca_file = {}});
  REQUIRE(creds);
  ngtcp2_crypto_conn_ref ref{};
  for (const char* name : {"localhost", "127.0.0.1", "::1", ""}) CHECK(quic::make_client_session(*creds, &ref, name));
}
