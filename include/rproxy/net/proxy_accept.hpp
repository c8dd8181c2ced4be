// rproxy/net/proxy_accept.hpp: the PROXY protocol on live sockets: read a client's header
// (trusted peers only, within a deadline) and encode the header a backend gets.
//
//     auto r = co_await rproxy::net::read_proxy_header(sock, mode, trusted, 5s);
//     if (r.ec) close;                       // malformed, too slow, or required and missing
//     if (r.header) real_client = r.header->source;
//     relay r.early first: client bytes read past the header
//
//     std::string h = rproxy::net::encode_proxy_header(rproxy::proxy_send::v2, client, local);
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/deferred.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>

#include <rproxy/core/proxy_mode.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/proxy_protocol.hpp>

namespace rproxy::net {

using rproxy::proxy_accept;
using rproxy::proxy_send;

/// What reading the start of a client connection found.
struct proxy_read {
  std::error_code ec;                            ///< set: end the connection
  std::optional<proxy_protocol::header> header;  ///< a PROXY header from a trusted peer
  std::string early;                             ///< client bytes read past the header (relay them first)
};

/// Reads a PROXY header when `mode` wants one and the peer is `trusted`. An untrusted peer is
/// refused (proxy_error::bad_signature) when the header is required, and otherwise read as a
/// plain client whose bytes are never parsed as a header.
inline asio::awaitable<proxy_read> read_proxy_header(asio::ip::tcp::socket& s, proxy_accept mode, bool trusted,
                                                     std::chrono::milliseconds timeout) {
  proxy_read out;
  if (mode == proxy_accept::none) co_return out;
  if (!trusted) {
    if (mode == proxy_accept::required) out.ec = make_error_code(proxy_error::bad_signature);
    co_return out;
  }
  proxy_protocol::parser parser({.optional = mode == proxy_accept::optional});
  const auto deadline = std::chrono::steady_clock::now() + timeout;  // one deadline for the whole header
  char buf[512];
  for (;;) {
    auto [ec, n] = co_await with_deadline(s.async_read_some(asio::buffer(buf), asio::experimental::deferred), deadline);
    if (ec) {
      out.ec = classify(ec, side::downstream);  // idle_timeout passes through
      co_return out;
    }
    auto p = parser.parse(std::string_view(buf, n));
    switch (p.status) {
      case proxy_protocol::parse_status::need_more:
        continue;
      case proxy_protocol::parse_status::done:
        out.header = parser.take();
        out.early.assign(buf + p.consumed, n - p.consumed);
        co_return out;
      case proxy_protocol::parse_status::not_proxy: {
        auto b = parser.buffered();
        out.early.assign(reinterpret_cast<const char*>(b.data()), b.size());
        out.early.append(buf, n);
        co_return out;
      }
      case proxy_protocol::parse_status::error:
        out.ec = p.error;
        co_return out;
    }
  }
}

/// The header that tells a backend who the client is ("" for proxy_send::none).
inline std::string encode_proxy_header(proxy_send send, const asio::ip::tcp::endpoint& client,
                                       const asio::ip::tcp::endpoint& local) {
  if (send == proxy_send::none) return {};
  auto h = proxy_protocol::make_header(client, local);
  if (send == proxy_send::v1) return proxy_protocol::write_v1(h);
  auto bin = proxy_protocol::write_v2(h);
  return std::string(reinterpret_cast<const char*>(bin.data()), bin.size());
}

}  // namespace rproxy::net
