// flow/h2_upstream.hpp over its two stream kinds: h2c (a bare TCP socket) and TLS with ALPN
// "h2" (net::upstream_stream), against a loopback HTTP/2 server made of h2::server_session (a
// test driver, one coroutine per connection) with certificates from a test CA made by the
// openssl CLI. A request goes in through the stand-in as HTTP/1.1; the server records what the
// connection negotiated and what the request carried. A second server (h2c, many connections)
// refuses requests on demand, by RST_STREAM REFUSED_STREAM or by a GOAWAY below their stream,
// for the retry; and counts connections opened and closed, for the idle timeout.
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
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
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
  const rproxy::flow::h2_upstream_metrics m{&connections, &connect_failures, nullptr, nullptr, nullptr, nullptr, nullptr};
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

/// A loopback h2c backend of many connections, steered by the test: it refuses the next
/// `refuse` requests, each once read whole, with RST_STREAM REFUSED_STREAM, with a GOAWAY
/// whose last stream id (0) is below theirs, then closing that connection, or by closing the
/// connection with no word (a backend that died); it answers the others "served METHOD BODY".
/// It counts what it saw.
struct backend {
  enum class refusal { reset, goaway, close };
  explicit backend(asio::io_context& io) : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {}
  tcp::acceptor acceptor;
  int refuse = 0;
  refusal how = refusal::reset;
  int accepted = 0, closed = 0, goaways_received = 0, refused = 0, served = 0;

  void start() { asio::co_spawn(acceptor.get_executor(), accept_loop(), asio::detached); }
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(tok);
      if (ec) co_return;
      ++accepted;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> serve(tcp::socket sock) {
    h2::server_session s;
    std::map<std::int32_t, std::string> bodies;
    std::array<char, 16 * 1024> buf;
    bool go_away = false, hang_up = false;
    for (;;) {
      for (auto pending = s.pending_output(); !pending.empty(); pending = s.pending_output()) {
        auto [wec, n] = co_await asio::async_write(sock, asio::buffer(pending.data(), pending.size()), tok);
        if (wec) break;
        s.consume_output(n);
      }
      if (go_away) {
        // GOAWAY, last stream id 0, NO_ERROR: no stream of this connection was processed.
        static constexpr char frame[] = {0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        (void)co_await asio::async_write(sock, asio::buffer(frame, sizeof frame), tok);
        break;
      }
      if (s.done() || hang_up) break;
      auto [rec, n] = co_await sock.async_read_some(asio::buffer(buf), tok);
      if (rec) break;
      for (const auto& e : s.feed({buf.data(), n}, h2::clock::now())) {
        switch (e.what) {
          case h2::event_kind::request: bodies[e.stream_id].clear(); break;
          case h2::event_kind::data:
            bodies[e.stream_id].append(e.data);
            s.consume(e.stream_id, e.data.size());
            break;
          case h2::event_kind::end_stream:
            if (refuse > 0) {
              --refuse, ++refused;
              if (how == refusal::reset) s.reset(e.stream_id, h2::code::refused_stream);
              else if (how == refusal::goaway) go_away = true;
              else hang_up = true;
              break;
            }
            ++served;
            (void)s.submit_response(e.stream_id, 200);
            (void)s.send_data(e.stream_id, "served " + std::string(s.request(e.stream_id).method()) + " " + bodies[e.stream_id]);
            (void)s.end_stream(e.stream_id);
            break;
          case h2::event_kind::closed:
          case h2::event_kind::reset: s.release(e.stream_id); break;
          case h2::event_kind::goaway_received: ++goaways_received; break;
          default: break;
        }
      }
    }
    ++closed;
  }
};

/// One request through the stand-in at `at` (it says Connection: close): what came back.
asio::awaitable<std::string> exchange(tcp::endpoint at, std::string request) {
  tcp::socket s(co_await asio::this_coro::executor);
  std::string out;
  auto [cec] = co_await s.async_connect(at, tok);
  if (cec) co_return "connect: " + cec.message();
  (void)co_await asio::async_write(s, asio::buffer(request), tok);
  std::array<char, 4096> buf;
  for (;;) {
    auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), tok);
    out.append(buf.data(), n);
    if (rec) break;
  }
  co_return out;
}

std::string get(std::string_view path) { return "GET " + std::string(path) + " HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n"; }
std::string post(std::string_view path, std::string_view body) {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

/// Polls `done` every 10 ms, 1000 times at most (the io_context goes on meanwhile).
asio::awaitable<bool> eventually(auto done) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (int i = 0; i < 1000 && !done(); ++i) {
    t.expires_after(10ms);
    (void)co_await t.async_wait(tok);
  }
  co_return done();
}

/// An h2_upstream to `b` with these options and its own metrics.
struct upstream_under_test {
  rproxy::observe::counter connections, connect_failures, requests, failures, retries;
  rproxy::observe::gauge active, streams;
  std::shared_ptr<rproxy::flow::h2_upstream> up;
  upstream_under_test(asio::io_context& io, backend& b, rproxy::flow::h2_upstream_options o) {
    o.connect_timeout = 5s;
    o.response_timeout = 10s;
    const rproxy::flow::h2_upstream_metrics m{&connections, &connect_failures, &requests, &failures, &active, &streams, &retries};
    up = std::make_shared<rproxy::flow::h2_upstream>(io, rproxy::flow::h2_upstream::target{b.acceptor.local_endpoint(), "backend.test", nullptr, ""},
                                                     o, m);
    REQUIRE(!up->listen());
  }
};

/// Runs `test` (a coroutine) on `io`, then stops the upstream; bounded to 30 s.
void drive(asio::io_context& io, upstream_under_test& u, auto test) {
  bool finished = false;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    co_await test();
    finished = true;
    u.up->stop();
    io.stop();
  }, asio::detached);
  io.run_for(30s);
  REQUIRE(finished);
}

}  // namespace

TEST_CASE("h2_upstream: a request the backend refused unprocessed is sent again, once", "[flow][h2]") {
  asio::io_context io;
  backend b(io);
  b.start();
  rproxy::flow::h2_upstream_options o;
  std::string response, second;

  SECTION("RST_STREAM REFUSED_STREAM: a GET goes again, on the same connection (the only one open)") {
    b.refuse = 1;
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), get("/a")); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 200"));
    CHECK(has(response, "served GET "));
    CHECK(b.refused == 1);
    CHECK(b.served == 1);
    CHECK(b.accepted == 1);  // still usable: no new connection for it
    CHECK(u.retries.value() == 1);
    CHECK(u.failures.value() == 0);
    CHECK(u.requests.value() == 1);
  }
  SECTION("a POST goes again with its whole body (held), whatever the method") {
    b.refuse = 1;
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), post("/p", "a body of 27 bytes, intact")); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 200"));
    CHECK(has(response, "served POST a body of 27 bytes, intact"));
    CHECK(b.refused == 1);
    CHECK(u.retries.value() == 1);
  }
  SECTION("refused twice: a 502 naming it (one retry, no more)") {
    b.refuse = 2;
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> {
      response = co_await exchange(u.up->local(), get("/twice"));
      second = co_await exchange(u.up->local(), get("/after"));  // the next request is served
    });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 502"));
    CHECK(has(response, "REFUSED_STREAM"));
    CHECK(second.starts_with("HTTP/1.1 200"));
    CHECK(b.refused == 2);
    CHECK(b.served == 1);
    CHECK(u.retries.value() == 1);
    CHECK(u.failures.value() == 1);
  }
  SECTION("a body larger than what is held cannot be replayed: a 502") {
    b.refuse = 1;
    o.max_body_buffer = 16;
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), post("/big", std::string(100, 'x'))); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 502"));
    CHECK(has(response, "could not be sent again"));
    CHECK(b.refused == 1);
    CHECK(b.served == 0);
    CHECK(u.retries.value() == 0);
  }
  SECTION("GOAWAY with a last stream id below the request's: again on a new connection") {
    b.refuse = 1;
    b.how = backend::refusal::goaway;
    o.max_connections = 1;  // the old one is going away: a new one opens in its place
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), post("/g", "replayed")); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 200"));
    CHECK(has(response, "served POST replayed"));
    CHECK(b.accepted == 2);
    CHECK(u.retries.value() == 1);
    CHECK(u.failures.value() == 0);
  }
}

TEST_CASE("h2_upstream: a connection idle for idle_timeout is closed with GOAWAY", "[flow][h2]") {
  asio::io_context io;
  backend b(io);
  b.start();
  rproxy::flow::h2_upstream_options o;
  o.idle_timeout = 200ms;
  upstream_under_test u(io, b, o);
  std::string first, second;
  bool closed = false;
  std::int64_t active_closed = -1;
  drive(io, u, [&]() -> asio::awaitable<void> {
    first = co_await exchange(u.up->local(), get("/1"));
    closed = co_await eventually([&] { return b.closed == 1 && u.up->connections() == 0; });
    active_closed = u.active.value();
    second = co_await exchange(u.up->local(), get("/2"));
  });
  INFO(first << second);
  CHECK(first.starts_with("HTTP/1.1 200"));
  REQUIRE(closed);
  CHECK(b.goaways_received == 1);  // closed by the gateway's side, with GOAWAY
  CHECK(active_closed == 0);
  CHECK(second.starts_with("HTTP/1.1 200"));  // the next request opens another
  CHECK(b.accepted == 2);
  CHECK(u.connections.value() == 2);
}

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

TEST_CASE("h2_upstream: a connection that ends before the answer, with no word: idempotent requests go again", "[flow][h2]") {
  asio::io_context io;
  backend b(io);
  b.start();
  b.refuse = 1;
  b.how = backend::refusal::close;
  rproxy::flow::h2_upstream_options o;
  std::string response, second;
  auto put = [](std::string_view body) {
    return "PUT /put HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           std::string(body);
  };

  SECTION("a GET goes again on a new connection") {
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), get("/a")); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 200"));
    CHECK(has(response, "served GET "));
    CHECK(b.accepted == 2);
    CHECK(b.refused == 1);
    CHECK(b.served == 1);
    CHECK(u.retries.value() == 1);
    CHECK(u.failures.value() == 0);
  }
  SECTION("a PUT goes again with its whole body (held)") {
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), put("the same body again")); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 200"));
    CHECK(has(response, "served PUT the same body again"));
    CHECK(b.accepted == 2);
    CHECK(u.retries.value() == 1);
  }
  SECTION("a POST is not sent again: a 502 saying why; the next request opens a new connection") {
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> {
      response = co_await exchange(u.up->local(), post("/p", "once only"));
      second = co_await exchange(u.up->local(), get("/after"));
    });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 502"));
    CHECK(has(response, "not idempotent"));
    CHECK(second.starts_with("HTTP/1.1 200"));
    CHECK(b.refused == 1);
    CHECK(b.served == 1);  // the GET only
    CHECK(b.accepted == 2);
    CHECK(u.retries.value() == 0);
    CHECK(u.failures.value() == 1);
  }
  SECTION("ended again on the retry: a 502 (one retry, no more)") {
    b.refuse = 2;
    upstream_under_test u(io, b, o);
    drive(io, u, [&]() -> asio::awaitable<void> { response = co_await exchange(u.up->local(), get("/twice")); });
    INFO(response);
    CHECK(response.starts_with("HTTP/1.1 502"));
    CHECK(has(response, "already sent again once"));
    CHECK(b.refused == 2);
    CHECK(b.served == 0);
    CHECK(u.retries.value() == 1);
    CHECK(u.failures.value() == 1);
  }
}
