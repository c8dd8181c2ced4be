// tests/support/tcp_pair.hpp: a connected pair of TCP sockets on loopback, for tests of what
// works on real sockets (readiness, non-blocking calls, the reactor).
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <utility>

namespace rproxy::test {

/// Both on `ioc`: first the connecting side, then the accepted one.
inline std::pair<asio::ip::tcp::socket, asio::ip::tcp::socket> tcp_pair(asio::io_context& ioc) {
  asio::ip::tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket a(ioc), b(ioc);
  a.connect(acc.local_endpoint());
  acc.accept(b);
  return {std::move(a), std::move(b)};
}

}  // namespace rproxy::test
