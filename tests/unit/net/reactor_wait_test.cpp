#include <rproxy/net/detail/reactor_wait.hpp>

#include <rproxy/net/connector.hpp>
#include <rproxy/net/listener.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"
#include "tcp_pair.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <system_error>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace net = rproxy::net;
using rproxy::test::run_until;

bool non_blocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }
bool close_on_exec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

/// Reads what `s` has without blocking; the error says EAGAIN once it is drained.
std::error_code drain(tcp::socket& s) {
  std::array<char, 256> buf;
  std::error_code ec;
  while (!ec) {
    const ssize_t n = ::recv(s.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) ec = std::error_code(errno, std::system_category());
    if (n == 0) ec = asio::error::eof;
  }
  return ec;
}

}  // namespace

TEST_CASE("reactor_wait: a drained wait completes on the next bytes, not before", "[net][reactor_wait]") {
  asio::io_context ioc;
  auto sockets = rproxy::test::tcp_pair(ioc);  // (no structured bindings: clang 14 cannot capture them)
  auto& a = sockets.first;
  auto& b = sockets.second;
  std::error_code ec;
  net::detail::make_non_blocking(b, ec);
  REQUIRE_FALSE(ec);
  asio::write(a, asio::buffer("x", 1));
  REQUIRE(run_until(ioc, [&] { char c; return ::recv(b.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1; }));
  REQUIRE(drain(b) == std::errc::resource_unavailable_try_again);

  std::optional<std::error_code> woke;
  net::detail::async_wait_drained(b, asio::socket_base::wait_read, [&](std::error_code e) { woke = e; });
  CHECK_FALSE(woke);  // never inside the call
  ioc.poll();
  CHECK_FALSE(woke);  // nothing to read: still waiting (a re-check finds it drained)

  asio::write(a, asio::buffer("yz", 2));
  REQUIRE(run_until(ioc, [&] { return woke.has_value(); }));
  CHECK_FALSE(*woke);
  std::array<char, 4> buf{};
  CHECK(b.read_some(asio::buffer(buf)) == 2);

  // Again: the registration kept from the first wait still reports the next edge.
  REQUIRE(drain(b) == std::errc::resource_unavailable_try_again);
  woke.reset();
  net::detail::async_wait_drained(b, asio::socket_base::wait_read, [&](std::error_code e) { woke = e; });
  ioc.poll();
  CHECK_FALSE(woke);
  a.shutdown(tcp::socket::shutdown_send);  // eof is readiness too
  REQUIRE(run_until(ioc, [&] { return woke.has_value(); }));
  CHECK_FALSE(*woke);
}

TEST_CASE("reactor_wait: closing the socket ends a drained wait with operation_aborted", "[net][reactor_wait]") {
  asio::io_context ioc;
  auto sockets = rproxy::test::tcp_pair(ioc);  // (no structured bindings: clang 14 cannot capture them)
  auto& b = sockets.second;
  std::error_code ec;
  net::detail::make_non_blocking(b, ec);
  REQUIRE(drain(b) == std::errc::resource_unavailable_try_again);
  std::optional<std::error_code> woke;
  net::detail::async_wait_drained(b, asio::socket_base::wait_read, [&](std::error_code e) { woke = e; });
  ioc.poll();
  REQUIRE_FALSE(woke);
  b.close();
  REQUIRE(run_until(ioc, [&] { return woke.has_value(); }));
  CHECK(*woke == asio::error::operation_aborted);
}

TEST_CASE("reactor_wait: an io_context destroyed with a drained wait pending frees its handler uncalled", "[net][reactor_wait]") {
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  bool called = false;
  {
    asio::io_context ioc;
    auto sockets = rproxy::test::tcp_pair(ioc);
    auto& b = sockets.second;
    std::error_code ec;
    net::detail::make_non_blocking(b, ec);
    REQUIRE(drain(b) == std::errc::resource_unavailable_try_again);
    net::detail::async_wait_drained(b, asio::socket_base::wait_read, [&called, keep = std::move(alive)](std::error_code) { called = true; });
    ioc.poll();
    REQUIRE_FALSE(called);
    // (the sockets close first, cancelling the wait into the queue; the io_context then
    // destroys the queued handler without running it)
  }
  CHECK_FALSE(called);
  CHECK(watch.expired());
}

TEST_CASE("reactor_wait: accepted and connected sockets are non-blocking and close-on-exec from the start", "[net][reactor_wait]") {
  asio::io_context ioc;
  std::vector<tcp::socket> accepted;
  auto l = net::listen(ioc, {asio::ip::address_v4::loopback(), 0}, [&](tcp::socket s) { accepted.push_back(std::move(s)); });
  REQUIRE(l);
  std::optional<std::error_code> connected;
  tcp::socket out(ioc);
  net::async_connect(ioc.get_executor(), l->local_endpoint(), 5s, [&](std::error_code e, tcp::socket s) {
    connected = e;
    out = std::move(s);
  });
  REQUIRE(run_until(ioc, [&] { return connected.has_value() && accepted.size() == 1; }));
  REQUIRE_FALSE(*connected);
  for (tcp::socket* s : {&accepted[0], &out}) {
    CHECK(non_blocking(s->native_handle()));
    CHECK(close_on_exec(s->native_handle()));
  }
  // Asio's own operations still behave: a synchronous write and an async read.
  asio::write(out, asio::buffer("ping", 4));
  std::array<char, 4> buf{};
  std::optional<std::error_code> read;
  asio::async_read(accepted[0], asio::buffer(buf), [&](std::error_code e, std::size_t) { read = e; });
  REQUIRE(run_until(ioc, [&] { return read.has_value(); }));
  CHECK_FALSE(*read);
  CHECK(std::string(buf.data(), 4) == "ping");
  // On the accepted socket a synchronous read blocks as asio promises (it polls), rather than
  // failing with EAGAIN: the descriptor's mode is asio's business there.
  asio::write(out, asio::buffer("pong", 4));
  CHECK(asio::read(accepted[0], asio::buffer(buf)) == 4);
  CHECK(std::string(buf.data(), 4) == "pong");
}
