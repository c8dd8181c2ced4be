#include <rproxy/health/probe.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace health = rproxy::health;
using asio::experimental::as_tuple;

using rproxy::test::run_until;

/// A loopback HTTP server answering every connection with `reply` once it read a request head
/// (or, with `answer = false`, reading and never answering). Remembers the last request.
struct http_server {
  asio::io_context& ioc;
  tcp::acceptor acceptor{ioc, {asio::ip::address_v4::loopback(), 0}};
  std::string reply;
  bool answer = true;
  std::string last_request;
  std::vector<std::shared_ptr<tcp::socket>> held;  // kept open when not answering

  http_server(asio::io_context& c, std::string r, bool a = true) : ioc(c), reply(std::move(r)), answer(a) {
    asio::co_spawn(ioc, serve(), asio::detached);
  }
  tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }

  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, s] = co_await acceptor.async_accept(as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto sock = std::make_shared<tcp::socket>(std::move(s));
      asio::co_spawn(ioc, session(sock), asio::detached);
    }
  }
  asio::awaitable<void> session(std::shared_ptr<tcp::socket> s) {
    std::string buf;
    auto [ec, n] = co_await asio::async_read_until(*s, asio::dynamic_buffer(buf), "\r\n\r\n",
                                                   as_tuple(asio::use_awaitable));
    if (ec) co_return;
    last_request = buf.substr(0, n);
    if (!answer) {
      held.push_back(s);
      co_return;
    }
    co_await asio::async_write(*s, asio::buffer(reply), as_tuple(asio::use_awaitable));
    std::error_code ignored;
    s->shutdown(tcp::socket::shutdown_send, ignored);
    s->close(ignored);
  }
};

template <class Probe>
std::optional<health::probe_result> check(asio::io_context& ioc, Probe& p, const tcp::endpoint& ep,
                                          std::chrono::milliseconds timeout) {
  std::optional<health::probe_result> out;
  asio::co_spawn(ioc, p.check(ioc.get_executor(), ep, timeout), [&](std::exception_ptr e, health::probe_result r) {
    if (e) std::rethrow_exception(e);
    out = std::move(r);
  });
  run_until(ioc, [&] { return out.has_value(); });
  return out;
}

tcp::endpoint closed_endpoint(asio::io_context& ioc) {
  tcp::acceptor a(ioc, {asio::ip::address_v4::loopback(), 0});
  return a.local_endpoint();
}

}  // namespace

TEST_CASE("tcp_probe: a listening backend is healthy, a closed port is refused", "[health][probe]") {
  asio::io_context ioc;
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  health::tcp_probe p;
  auto up = check(ioc, p, acc.local_endpoint(), 2s);
  REQUIRE(up);
  REQUIRE(up->healthy());
  REQUIRE(up->latency.count() > 0);

  auto down = check(ioc, p, closed_endpoint(ioc), 2s);
  REQUIRE(down);
  REQUIRE_FALSE(down->healthy());
  REQUIRE(down->error == rproxy::net::error::connect_refused);
  REQUIRE(down->error == rproxy::condition::upstream);
}

TEST_CASE("http_probe: 200 is healthy; the request is a GET of the path with a Host", "[health][probe]") {
  asio::io_context ioc;
  http_server srv(ioc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  health::http_probe p{.path = "/healthz?full=1"};
  auto r = check(ioc, p, srv.endpoint(), 2s);
  REQUIRE(r);
  CHECK(r->error.message() == std::error_code{}.message());
  REQUIRE(r->healthy());
  REQUIRE(r->detail == "HTTP 200");
  REQUIRE(r->latency.count() > 0);
  REQUIRE(srv.last_request.starts_with("GET /healthz?full=1 HTTP/1.1\r\n"));
  REQUIRE(srv.last_request.find("\r\nHost: 127.0.0.1:" + std::to_string(srv.endpoint().port()) + "\r\n") !=
          std::string::npos);
  REQUIRE(srv.last_request.find("\r\nConnection: close\r\n") != std::string::npos);

  health::http_probe named{.path = "/", .host = "api.example"};
  r = check(ioc, named, srv.endpoint(), 2s);
  REQUIRE(r->healthy());
  REQUIRE(srv.last_request.find("\r\nHost: api.example\r\n") != std::string::npos);
}

TEST_CASE("http_probe: a body delimited by the close, and any 2xx when expect_status is 0", "[health][probe]") {
  asio::io_context ioc;
  http_server srv(ioc, "HTTP/1.1 204 No Content\r\n\r\n");
  health::http_probe any2xx{.expect_status = 0};
  REQUIRE(check(ioc, any2xx, srv.endpoint(), 2s)->healthy());
  health::http_probe exact{};
  auto r = check(ioc, exact, srv.endpoint(), 2s);
  REQUIRE(r->error == health::error::bad_status);

  http_server close_delimited(ioc, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall good here");
  health::http_probe body{.body_contains = "good"};
  REQUIRE(check(ioc, body, close_delimited.endpoint(), 2s)->healthy());
}

TEST_CASE("http_probe: wrong status and body mismatch are unhealthy", "[health][probe]") {
  asio::io_context ioc;
  http_server err(ioc, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nerror");
  health::http_probe p;
  auto r = check(ioc, p, err.endpoint(), 2s);
  REQUIRE(r->error == health::error::bad_status);
  REQUIRE(r->error == rproxy::condition::upstream);
  REQUIRE(r->detail == "HTTP 500");

  http_server ok(ioc, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nstatus: DEGR!");
  health::http_probe want{.body_contains = "status: OK"};
  r = check(ioc, want, ok.endpoint(), 2s);
  REQUIRE(r->error == health::error::body_mismatch);
  REQUIRE(r->detail.find("DEGR") == std::string::npos);  // never the body in the detail
}

TEST_CASE("http_probe: a listener that never answers times out", "[health][probe]") {
  asio::io_context ioc;
  http_server silent(ioc, "", false);
  health::http_probe p;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = check(ioc, p, silent.endpoint(), 200ms);
  REQUIRE(r);
  REQUIRE(r->error == health::error::probe_timeout);
  REQUIRE(std::chrono::steady_clock::now() - t0 < 10s);  // generous: only proves it ends
}

TEST_CASE("http_probe: refused, closed early, malformed and oversized replies", "[health][probe]") {
  asio::io_context ioc;
  health::http_probe p;
  REQUIRE(check(ioc, p, closed_endpoint(ioc), 2s)->error == rproxy::net::error::connect_refused);

  http_server early(ioc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
  REQUIRE(check(ioc, p, early.endpoint(), 2s)->error == health::error::closed_early);

  http_server garbage(ioc, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  auto r = check(ioc, p, garbage.endpoint(), 2s);
  REQUIRE_FALSE(r->healthy());
  REQUIRE(r->error == rproxy::condition::upstream);

  http_server big(ioc, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'x'));
  health::http_probe small{.max_response = 1024};
  REQUIRE(check(ioc, small, big.endpoint(), 2s)->error == health::error::response_too_large);

  health::http_probe bad_path{.path = "no slash\r\n"};
  REQUIRE(check(ioc, bad_path, early.endpoint(), 2s)->error == health::error::invalid_probe);
}

TEST_CASE("probe concept: user probes qualify, others do not", "[health][probe]") {
  struct mine {
    asio::awaitable<health::probe_result> check(asio::any_io_executor, const tcp::endpoint&, std::chrono::milliseconds) {
      co_return health::probe_result{};
    }
  };
  struct wrong {
    health::probe_result check(asio::any_io_executor, const tcp::endpoint&, std::chrono::milliseconds) { return {}; }
  };
  STATIC_REQUIRE(health::probe<mine>);
  STATIC_REQUIRE(health::probe<health::tcp_probe>);
  STATIC_REQUIRE(health::probe<health::http_probe>);
  STATIC_REQUIRE_FALSE(health::probe<wrong>);
}
