// net/tls_client.hpp and net/upstream_stream.hpp (through flow/upstream.hpp's connect_upstream):
// a loopback TLS server (net/tls_stream.hpp) with certificates from a test CA made by the
// openssl CLI; the client verifies by default, by name (SNI) or IP address, and fails with
// tls_verify_failed / tls_handshake_failed, never hangs.
#include <rproxy/flow/upstream.hpp>
#include <rproxy/flow/upstream_tls_block.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/net/upstream_stream.hpp>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <catch2/catch.hpp>

#include "test_certs.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using asio::ip::tcp;
using rproxy::net::error;

namespace {

using rproxy::test::certs;

rproxy::net::tls_client_context client(rproxy::net::tls_client_options o) {
  auto r = rproxy::net::tls_client_context::load(o);
  if (!r) FAIL(r.error().message);
  return std::move(*r);
}

struct outcome {
  std::error_code ec;          // the client's connect_upstream
  std::string server_name;     // the SNI the server saw
  std::string echoed;          // what came back through the upstream stream
  bool tls = false;
};

// One connection to a loopback server: TLS (the leaf certificate) or, with `plain`, a server
// that answers with HTTP bytes and closes. The client sends "ping" and reads 4 bytes back.
outcome exchange(const rproxy::flow::upstream_settings* settings, bool plain = false) {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto server_ctx = rproxy::net::tls_server_context::load({.certificates = {{certs().path("leaf.pem"), certs().path("leaf.key"), {}}}});
  REQUIRE(server_ctx);
  outcome out;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    constexpr auto tok = asio::experimental::as_tuple(asio::use_awaitable);
    auto [aec, sock] = co_await acceptor.async_accept(tok);
    if (aec) co_return;
    if (plain) {
      std::string junk = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      (void)co_await asio::async_write(sock, asio::buffer(junk), tok);
      co_return;
    }
    rproxy::net::tls_stream s(std::move(sock), server_ctx->context());
    auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::server, tok);
    if (hec) co_return;
    out.server_name = std::string(rproxy::net::server_name(s));
    std::array<char, 4> buf{};
    auto [rec, n] = co_await asio::async_read(s, asio::buffer(buf), tok);
    if (!rec) (void)co_await asio::async_write(s, asio::buffer(buf.data(), n), tok);
  }, asio::detached);
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    constexpr auto tok = asio::experimental::as_tuple(asio::use_awaitable);
    auto [ec, s] = co_await rproxy::flow::connect_upstream(io.get_executor(), acceptor.local_endpoint(), settings, 5s);
    out.ec = ec;
    out.tls = s.is_tls();
    if (ec) co_return;
    (void)co_await asio::async_write(s, asio::buffer(std::string_view("ping")), tok);
    std::array<char, 4> buf{};
    auto [rec, n] = co_await asio::async_read(s, asio::buffer(buf), tok);
    out.echoed.assign(buf.data(), n);
  }, asio::detached);
  io.run_for(20s);
  return out;
}

}  // namespace

TEST_CASE("tls_client: a backend whose certificate a configured CA signed, by name (SNI)", "[net][tls]") {
  auto c = client({.ca_file = certs().path("ca.pem")});
  rproxy::flow::upstream_settings s{.tls = &c, .sni = "backend.test"};
  const auto o = exchange(&s);
  CHECK_FALSE(o.ec);
  CHECK(o.tls);
  CHECK(o.server_name == "backend.test");
  CHECK(o.echoed == "ping");
}

TEST_CASE("tls_client: without a name, the backend's IP address is verified and no SNI is sent", "[net][tls]") {
  auto c = client({.ca_file = certs().path("ca.pem")});
  rproxy::flow::upstream_settings s{.tls = &c};
  const auto o = exchange(&s);
  CHECK_FALSE(o.ec);
  CHECK(o.server_name.empty());
  CHECK(o.echoed == "ping");
}

TEST_CASE("tls_client: an untrusted CA, a wrong name or the system store are refused", "[net][tls]") {
  auto other = client({.ca_file = certs().path("other.pem")});
  auto ca = client({.ca_file = certs().path("ca.pem")});
  auto system = client({});
  rproxy::flow::upstream_settings wrong_ca{.tls = &other, .sni = "backend.test"};
  rproxy::flow::upstream_settings wrong_name{.tls = &ca, .sni = "other.test"};
  rproxy::flow::upstream_settings wrong_ip{.tls = &ca, .sni = "127.0.0.2"};
  rproxy::flow::upstream_settings store{.tls = &system, .sni = "backend.test"};
  for (const auto* s : {&wrong_ca, &wrong_name, &wrong_ip, &store}) {
    INFO(s->sni);
    const auto o = exchange(s);
    CHECK(o.ec == error::tls_verify_failed);
    CHECK(o.ec == rproxy::condition::retry_safe);
    CHECK(o.ec == rproxy::condition::upstream);
    CHECK(o.echoed.empty());
  }
}

TEST_CASE("tls_client: verify false connects to any certificate", "[net][tls]") {
  auto c = client({.ca_file = certs().path("other.pem"), .verify = false});
  rproxy::flow::upstream_settings s{.tls = &c, .sni = "other.test"};
  const auto o = exchange(&s);
  CHECK_FALSE(o.ec);
  CHECK(o.server_name == "other.test");
  CHECK(o.echoed == "ping");
}

TEST_CASE("tls_client: a backend that does not speak TLS fails the handshake", "[net][tls]") {
  auto c = client({.ca_file = certs().path("ca.pem")});
  rproxy::flow::upstream_settings s{.tls = &c, .sni = "backend.test"};
  const auto o = exchange(&s, true);
  CHECK(o.ec == error::tls_handshake_failed);
}

TEST_CASE("tls_client: no settings, or settings without TLS: plain TCP", "[net][tls]") {
  // The server side expects TLS, so a plain client's "ping" is not echoed; the stream is plain.
  rproxy::flow::upstream_settings s{};
  const rproxy::flow::upstream_settings* none = nullptr;
  for (const rproxy::flow::upstream_settings* p : {none, static_cast<const rproxy::flow::upstream_settings*>(&s)}) {
    asio::io_context io;
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    std::optional<bool> tls;
    std::error_code ec;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      auto [e, st] = co_await rproxy::flow::connect_upstream(io.get_executor(), acceptor.local_endpoint(), p, 5s);
      ec = e;
      tls = st.is_tls();
    }, asio::detached);
    io.run_for(10s);
    REQUIRE(tls);
    CHECK_FALSE(*tls);
    CHECK_FALSE(ec);
  }
}

TEST_CASE("tls_client: load errors name the file", "[net][tls]") {
  auto missing = rproxy::net::tls_client_context::load({.ca_file = certs().path("missing.pem")});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == certs().path("missing.pem") + ": No such file or directory");
  auto garbage = rproxy::net::tls_client_context::load({.ca_file = certs().path("garbage.pem")});
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().message.starts_with(certs().path("garbage.pem") + ": no PEM CA certificate found"));
  auto alpn = rproxy::net::tls_client_context::load({.alpn = {""}});
  REQUIRE_FALSE(alpn);
  CHECK(alpn.error().code == rproxy::net::tls_error::bad_alpn);
}

TEST_CASE("upstream_tls_block: sni is a host name or an IP address", "[net][tls][config]") {
  using b = rproxy::flow::upstream_tls_block;
  CHECK(b::valid_name("backend.test"));
  CHECK(b::valid_name("a-b.c1"));
  CHECK(b::valid_name("10.0.0.1"));
  CHECK(b::valid_name("::1"));
  CHECK_FALSE(b::valid_name(""));
  CHECK_FALSE(b::valid_name("a..b"));
  CHECK_FALSE(b::valid_name("a.b."));
  CHECK_FALSE(b::valid_name("a b"));
  CHECK_FALSE(b::valid_name("*.test"));
  CHECK_FALSE(b::valid_name(std::string(64, 'a')));
}
