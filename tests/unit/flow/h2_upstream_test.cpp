// flow/h2_upstream.hpp over its two stream kinds: h2c (a bare TCP socket) and TLS with ALPN
// "h2" (net::upstream_stream), against a loopback HTTP/2 server made of h2::server_session (a
// test driver, one coroutine per connection) with certificates from a test CA made by the
// openssl CLI. A request goes in through the stand-in as HTTP/1.1; the server records what the
// connection negotiated and what the request carried.
#include <catch2/catch.hpp>

#include "test_certs.hpp"

#include <rproxy/codec/h2/server_session.hpp>
#include <rproxy/flow/h2_upstream.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/observe/metrics.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace h2 = rproxy::codec::h2;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using asio::ip::tcp;

namespace {

constexpr auto tok = asio::experimental::as_tuple(asio::use_awaitable);

using rproxy::test::certs;

/// How the test server answers: plain h2c, or TLS with these ALPN protocols.
struct server_mode {
  bool tls = true;
  std::vector<std::string> alpn{"h2"};
  bool require_alpn = false;  ///< no overlap: the no_application_protocol alert
};

/// What one request through the stand-in saw on both sides.
struct outcome {
  std::string response;    ///< what the stand-in wrote back (HTTP/1.1)
  std::string alpn, sni;   ///< as the server saw them (TLS)
  std::string scheme;      ///< the request's :scheme at the server
  std::string last_error;  ///< h2_upstream::last_error()
  std::uint64_t connections = 0, connect_failures = 0;
};

asio::awaitable<void> serve_h2(auto& stream, outcome& out) {
  h2::server_session s;
  std::array<char, 16 * 1024> buf;
  for (;;) {
    for (auto pending = s.pending_output(); !pending.empty(); pending = s.pending_output()) {
      auto [wec, n] = co_await asio::async_write(stream, asio::buffer(pending.data(), pending.size()), tok);
      if (wec) co_return;
      s.consume_output(n);
    }
    if (s.done()) co_return;
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(buf), tok);
    if (rec) co_return;
    for (const auto& e : s.feed({buf.data(), n}, h2::clock::now())) {
      if (e.what == h2::event_kind::request) {
        out.scheme = std::string(s.request(e.stream_id).scheme());
        (void)s.submit_response(e.stream_id, 200);
        (void)s.send_data(e.stream_id, "hello over h2\n");
        (void)s.end_stream(e.stream_id);
      } else if (e.what == h2::event_kind::closed || e.what == h2::event_kind::reset) {
        s.release(e.stream_id);
      }
    }
  }
}

/// One GET through an h2_upstream (TLS with `client` unless null) to a server in `mode`.
outcome fetch(const server_mode& mode, const rproxy::net::tls_client_options* client, std::string sni = "backend.test") {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto server_ctx = rproxy::net::tls_server_context::load(
      {.certificates = {{certs().path("leaf.pem"), certs().path("leaf.key"), {}}}, .alpn = mode.alpn, .require_alpn = mode.require_alpn});
  REQUIRE(server_ctx);
  outcome out;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto [aec, sock] = co_await acceptor.async_accept(tok);
    if (aec) co_return;
    if (!mode.tls) {
      co_await serve_h2(sock, out);
      co_return;
    }
    rproxy::net::tls_stream s(std::move(sock), server_ctx->context());
    auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::server, tok);
    if (hec) co_return;
    out.alpn = std::string(rproxy::net::alpn(s));
    out.sni = std::string(rproxy::net::server_name(s));
    co_await serve_h2(s, out);
  }, asio::detached);

  std::shared_ptr<const rproxy::net::tls_client_context> ctx;
  if (client) {
    auto loaded = rproxy::net::tls_client_context::load(*client);
    if (!loaded) FAIL(loaded.error().message);
    ctx = std::make_shared<const rproxy::net::tls_client_context>(std::move(*loaded));
  }
  rproxy::observe::counter connections, connect_failures;
  const rproxy::flow::h2_upstream_metrics m{&connections, &connect_failures, nullptr, nullptr, nullptr, nullptr};
  rproxy::flow::h2_upstream_options o;
  o.connect_timeout = 5s;
  o.response_timeout = 10s;
  auto up = std::make_shared<rproxy::flow::h2_upstream>(
      io, rproxy::flow::h2_upstream::target{acceptor.local_endpoint(), "backend.test", ctx, ctx ? sni : std::string()}, o, m);
  REQUIRE(!up->listen());
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    tcp::socket s(io);
    auto [cec] = co_await s.async_connect(up->local(), tok);
    if (!cec) {
      const std::string req = "GET /x HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n";
      (void)co_await asio::async_write(s, asio::buffer(req), tok);
      std::array<char, 4096> buf;
      for (;;) {
        auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), tok);
        out.response.append(buf.data(), n);
        if (rec) break;
      }
    }
    out.last_error = up->last_error();
    up->stop();
    io.stop();
  }, asio::detached);
  io.run_for(30s);
  out.connections = connections.value();
  out.connect_failures = connect_failures.value();
  return out;
}

bool has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("h2_upstream: h2c over a bare socket", "[flow][h2]") {
  const auto out = fetch({.tls = false, .alpn = {}, .require_alpn = false}, nullptr);
  INFO(out.response);
  CHECK(out.response.starts_with("HTTP/1.1 200"));
  CHECK(has(out.response, "hello over h2\n"));
  CHECK(out.scheme == "http");
  CHECK(out.connect_failures == 0);
}

TEST_CASE("h2_upstream: TLS, verified, SNI, ALPN h2, :scheme https", "[flow][h2][tls]") {
  const rproxy::net::tls_client_options client{.ca_file = certs().path("ca.pem"), .verify = true, .alpn = {}, .session_cache = 16};
  const auto out = fetch({}, &client);
  INFO(out.response);
  CHECK(out.response.starts_with("HTTP/1.1 200"));
  CHECK(has(out.response, "hello over h2\n"));
  CHECK(out.alpn == "h2");
  CHECK(out.sni == "backend.test");
  CHECK(out.scheme == "https");
  CHECK(out.connections == 1);
  CHECK(out.connect_failures == 0);
  CHECK(out.last_error.empty());
}

TEST_CASE("h2_upstream: a certificate that does not verify is a 502 naming why", "[flow][h2][tls]") {
  SECTION("a CA that did not sign it") {
    const rproxy::net::tls_client_options client{.ca_file = certs().path("other.pem"), .verify = true, .alpn = {}, .session_cache = 16};
    const auto out = fetch({}, &client);
    INFO(out.response);
    CHECK(out.response.starts_with("HTTP/1.1 502"));
    CHECK(has(out.response, "TLS to the HTTP/2 backend: backend certificate verification failed: unable to get local issuer certificate"));
    CHECK(out.connect_failures == 1);
  }
  SECTION("a name it does not carry") {
    const rproxy::net::tls_client_options client{.ca_file = certs().path("ca.pem"), .verify = true, .alpn = {}, .session_cache = 16};
    const auto out = fetch({}, &client, "other.test");
    INFO(out.response);
    CHECK(out.response.starts_with("HTTP/1.1 502"));
    CHECK(has(out.response, "backend certificate verification failed"));
    CHECK(out.connect_failures == 1);
  }
  SECTION("verify: false connects anyway") {
    const rproxy::net::tls_client_options client{.ca_file = certs().path("other.pem"), .verify = false, .alpn = {}, .session_cache = 16};
    const auto out = fetch({}, &client, "other.test");
    INFO(out.response);
    CHECK(out.response.starts_with("HTTP/1.1 200"));
    CHECK(out.alpn == "h2");
  }
}

TEST_CASE("h2_upstream: a TLS backend without h2 in ALPN fails the connection", "[flow][h2][tls]") {
  // The client context offers http/1.1: the connection offers h2 alone all the same.
  const rproxy::net::tls_client_options client{.ca_file = certs().path("ca.pem"), .verify = true, .alpn = {"http/1.1"}, .session_cache = 16};
  SECTION("the backend refuses the offer (alert no_application_protocol)") {
    const auto out = fetch({.tls = true, .alpn = {"http/1.1"}, .require_alpn = true}, &client);
    INFO(out.response);
    CHECK(out.response.starts_with("HTTP/1.1 502"));
    CHECK(has(out.response, "TLS to the HTTP/2 backend: TLS handshake with the backend failed (the backend's alert: no application protocol)"));
    CHECK(out.connect_failures == 1);
    CHECK(out.scheme.empty());  // no request reached it
  }
  SECTION("the backend selects nothing") {
    const auto out = fetch({.tls = true, .alpn = {"http/1.1"}, .require_alpn = false}, &client);
    INFO(out.response);
    CHECK(out.response.starts_with("HTTP/1.1 502"));
    CHECK(has(out.response, "the backend did not select h2 in TLS ALPN (no protocol)"));
    CHECK(out.connect_failures == 1);
    CHECK(out.alpn.empty());
    CHECK(out.scheme.empty());
  }
}
