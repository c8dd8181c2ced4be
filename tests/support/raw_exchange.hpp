// tests/support/raw_exchange.hpp: sends raw bytes to a TCP server on loopback and reads until it
// closes the connection (the admin server's tests speak HTTP/1.1 by hand this way).
#pragma once

#include <string>
#include <system_error>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

namespace test_support {

inline std::string raw_exchange(asio::ip::tcp::endpoint ep, const std::string& raw) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect(ep);
  asio::write(s, asio::buffer(raw));
  std::string out;
  std::error_code ec;
  char buf[4096];
  for (;;) {
    auto n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

}  // namespace test_support
