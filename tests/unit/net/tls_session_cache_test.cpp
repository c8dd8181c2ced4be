// net/tls_session_cache.hpp: bounded, one session per key, a replaced or dropped session freed
// (ASan's leak check in the sanitizer build sees a missed SSL_SESSION_free), a session that
// cannot be resumed never handed out. Resumption itself is tested against nginx
// (tests/e2e/h3_gateway_tls_upstream_test.py: $ssl_session_reused).
#include <rproxy/net/tls_session_cache.hpp>

#include <catch2/catch.hpp>

#include <openssl/ssl.h>

TEST_CASE("tls_session_cache: bounded, replaced per key, unresumable sessions dropped", "[net][tls]") {
  SECTION("capacity bounds the keys; a key's new session replaces its old one") {
    rproxy::net::tls_session_cache c(2);
    c.store("a", SSL_SESSION_new());
    c.store("a", SSL_SESSION_new());
    CHECK(c.size() == 1);
    c.store("b", SSL_SESSION_new());
    c.store("c", SSL_SESSION_new());
    CHECK(c.size() == 2);
  }
  SECTION("a session that cannot be resumed (no master secret) is not offered, and dropped") {
    rproxy::net::tls_session_cache c(4);
    c.store("a", SSL_SESSION_new());
    CHECK(c.find("a") == nullptr);
    CHECK(c.size() == 0);
    CHECK(c.find("missing") == nullptr);
  }
  SECTION("capacity 0 keeps nothing") {
    rproxy::net::tls_session_cache c(0);
    c.store("a", SSL_SESSION_new());
    CHECK(c.size() == 0);
  }
}
