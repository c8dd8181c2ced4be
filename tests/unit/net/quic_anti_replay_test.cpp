// net/quic/tls.hpp: the anti-replay cache behind TLS 1.3 early data (RFC 8446 §8.2): a
// ClientHello is accepted once within its window, again once its entry expired; the cache is
// bounded and refuses (never forgets) when full; each thread gets its own GnuTLS context.
#include <catch2/catch.hpp>

#include <rproxy/net/quic/tls.hpp>

#include <ctime>
#include <string>
#include <thread>

namespace quic = rproxy::net::quic;

TEST_CASE("anti_replay: a ClientHello is accepted once within its window") {
  auto& db = quic::anti_replay::process();
  const std::time_t now = std::time(nullptr);
  const std::string key = "binder-" + std::to_string(now) + "-once";
  CHECK(db.add(now + 10, key) == 0);
  CHECK(db.add(now + 10, key) == GNUTLS_E_DB_ENTRY_EXISTS);
  CHECK(db.add(now + 10, key + "-other") == 0);
}

TEST_CASE("anti_replay: an expired entry no longer blocks (the ticket-age check rejects such replays)") {
  auto& db = quic::anti_replay::process();
  const std::time_t now = std::time(nullptr);
  const std::string key = "binder-" + std::to_string(now) + "-expired";
  CHECK(db.add(now - 1, key) == 0);
  CHECK(db.add(now + 10, key) == 0);
  CHECK(db.add(now + 10, key) == GNUTLS_E_DB_ENTRY_EXISTS);
}

TEST_CASE("anti_replay: each thread has its own GnuTLS context over the one cache") {
  const auto here = quic::anti_replay::context();
  REQUIRE(here != nullptr);
  CHECK(quic::anti_replay::context() == here);
  gnutls_anti_replay_t there = nullptr;
  std::thread([&] { there = quic::anti_replay::context(); }).join();
  CHECK(there != nullptr);
  CHECK(there != here);
}

TEST_CASE("anti_replay: a server session with early data on is made, and one without") {
  auto creds = quic::tls_credentials::client({.verify = false, .ca_file = {}});  // (the session does not use them before a handshake)
  REQUIRE(creds);
  ngtcp2_crypto_conn_ref ref{};
  CHECK(quic::make_server_session(*creds, &ref, {"h3"}, true));
  CHECK(quic::make_server_session(*creds, &ref, {"h3"}, false));
}
