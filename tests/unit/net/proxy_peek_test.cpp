#include <rproxy/net/proxy_peek.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace net = rproxy::net;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

/// A connected pair on loopback: `client` writes, `server` is what the listener accepted.
struct pair {
  asio::io_context ioc;
  tcp::socket client{ioc}, server{ioc};
  pair() {
    tcp::acceptor a(ioc, {asio::ip::address_v4::loopback(), 0});
    client.connect(a.local_endpoint());
    server = a.accept();
  }
  /// Runs peek_proxy_header on the server side; `later` is written by the client once the peek
  /// has started (a header in two pieces).
  net::proxy_read peek(std::string_view first, std::string_view later, rproxy::proxy_accept mode, bool trusted) {
    asio::write(client, asio::buffer(first.data(), first.size()));
    std::optional<net::proxy_read> out;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { out = co_await net::peek_proxy_header(server, mode, trusted, 5s); }, asio::detached);
    if (!later.empty())
      asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
        asio::steady_timer t(ioc, 20ms);
        co_await t.async_wait(asio::use_awaitable);
        asio::write(client, asio::buffer(later.data(), later.size()));
      }, asio::detached);
    ioc.run();
    REQUIRE(out);
    return *out;
  }
  /// The next n bytes the server socket gives.
  std::string rest(std::size_t n) {
    std::string s(n, '\0');
    asio::read(server, asio::buffer(s));
    return s;
  }
};

constexpr std::string_view v1 = "PROXY TCP4 203.0.113.7 10.0.0.1 40000 443\r\n";
constexpr std::string_view hello = "\x16\x03\x01\x00\x05hello";  // what a TLS ClientHello starts like

}  // namespace

TEST_CASE("peek_proxy_header takes the header and not a byte more", "[net][proxy]") {
  pair p;
  const auto r = p.peek(std::string(v1) + std::string(hello), {}, rproxy::proxy_accept::required, true);
  REQUIRE_FALSE(r.ec);
  REQUIRE(r.header);
  CHECK(r.header->source == tcp::endpoint(asio::ip::make_address("203.0.113.7"), 40000));
  CHECK(r.early.empty());
  CHECK(p.rest(hello.size()) == hello);
}

TEST_CASE("peek_proxy_header waits for a header that comes in pieces", "[net][proxy]") {
  pair p;
  const auto r = p.peek(v1.substr(0, 10), std::string(v1.substr(10)) + std::string(hello), rproxy::proxy_accept::required, true);
  REQUIRE_FALSE(r.ec);
  REQUIRE(r.header);
  CHECK(r.header->destination == tcp::endpoint(asio::ip::make_address("10.0.0.1"), 443));
  CHECK(p.rest(hello.size()) == hello);
}

TEST_CASE("peek_proxy_header: optional lets a plain client through untouched; untrusted headers are refused", "[net][proxy]") {
  SECTION("trusted, optional, no header: nothing taken") {
    pair p;
    const auto r = p.peek(hello, {}, rproxy::proxy_accept::optional, true);
    CHECK_FALSE(r.ec);
    CHECK_FALSE(r.header);
    CHECK(p.rest(hello.size()) == hello);
  }
  SECTION("untrusted, optional, no header: nothing taken") {
    pair p;
    const auto r = p.peek(hello, {}, rproxy::proxy_accept::optional, false);
    CHECK_FALSE(r.ec);
    CHECK(p.rest(hello.size()) == hello);
  }
  SECTION("untrusted, optional, a header anyway: refused") {
    pair p;
    CHECK(p.peek(v1, {}, rproxy::proxy_accept::optional, false).ec == net::proxy_error::bad_signature);
  }
  SECTION("trusted, required, no header: an error") {
    pair p;
    CHECK(p.peek(hello, {}, rproxy::proxy_accept::required, true).ec);
  }
  SECTION("a malformed v1 line: an error") {
    pair p;
    CHECK(p.peek("PROXY TCP4 not-an-address\r\n", {}, rproxy::proxy_accept::required, true).ec);
  }
}
