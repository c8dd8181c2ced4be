// rproxy/net/proxy_peek.hpp: the PROXY protocol header of a connection read without reading a
// byte past it, for listeners whose next layer must get the rest of the bytes from the socket
// itself (TLS: the ClientHello follows the header, and an ssl::stream cannot be given bytes
// already read).
//
//     auto r = co_await rproxy::net::peek_proxy_header(sock, mode, trusted, 5s);
//     if (r.ec) close;                        // malformed, too slow, or required and missing
//     if (r.header) real_client = r.header->source;
//     // r.early is always empty: the socket's next byte is the first after the header
//
// The same rules as read_proxy_header (net/proxy_accept.hpp): a header only from a trusted
// peer, an untrusted one refused when it sends one anyway (optional) or must (required). The
// bytes are looked at with MSG_PEEK and only the header's are then taken. Bounded: the header
// is at most 16 + 4096 bytes (v2) or 107 (v1), and the whole read by `timeout`; a header that
// comes in pieces is looked at again every few milliseconds until it is whole.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>
#include <asio/experimental/deferred.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include <rproxy/core/proxy_mode.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/proxy_accept.hpp>
#include <rproxy/net/proxy_protocol.hpp>

namespace rproxy::net {

inline asio::awaitable<proxy_read> peek_proxy_header(asio::ip::tcp::socket& s, proxy_accept mode, bool trusted,
                                                     std::chrono::milliseconds timeout) {
  proxy_read out;
  if (mode == proxy_accept::none) co_return out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const proxy_protocol::parser_options po{.optional = mode == proxy_accept::optional};
  std::string buf(proxy_protocol::v2_fixed_length + po.max_v2_length, '\0');
  std::size_t seen = 0;
  for (;;) {
    auto [wec] = co_await with_deadline(s.async_wait(asio::socket_base::wait_read, asio::experimental::deferred), deadline);
    if (wec) {
      out.ec = wec == error::idle_timeout ? wec : classify(wec, side::downstream);
      co_return out;
    }
    const auto n = ::recv(s.native_handle(), buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
      out.ec = make_error_code(error::client_reset);  // closed before a whole header
      co_return out;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      out.ec = classify(std::error_code(errno, asio::error::get_system_category()), side::downstream);
      co_return out;
    }
    const std::string_view in(buf.data(), static_cast<std::size_t>(n));
    if (!trusted) {
      // Optional: a plain client is fine, but one that sends a header anyway is refused.
      const auto m = proxy_protocol::match_signature(in);
      if (mode == proxy_accept::optional && m == proxy_protocol::signature_match::none) co_return out;
      if (mode != proxy_accept::optional || m != proxy_protocol::signature_match::partial) {
        out.ec = make_error_code(proxy_error::bad_signature);
        co_return out;
      }
    } else {
      proxy_protocol::parser p(po);
      const auto r = p.parse(std::as_bytes(std::span(in.data(), in.size())));
      switch (r.status) {
        case proxy_protocol::parse_status::done: {
          out.header = p.take();
          std::error_code rec;
          asio::read(s, asio::buffer(buf.data(), r.consumed), rec);  // the header's bytes, already here
          if (rec) out.ec = classify(rec, side::downstream);
          co_return out;
        }
        case proxy_protocol::parse_status::not_proxy: co_return out;  // nothing taken
        case proxy_protocol::parse_status::error: out.ec = r.error; co_return out;
        case proxy_protocol::parse_status::need_more: break;
      }
    }
    if (static_cast<std::size_t>(n) == seen) {  // readable, but nothing new yet: look again shortly
      asio::steady_timer t(s.get_executor());
      t.expires_after(std::chrono::milliseconds(5));
      auto [tec] = co_await with_deadline(t.async_wait(asio::experimental::deferred), deadline);
      if (tec == error::idle_timeout) {
        out.ec = tec;
        co_return out;
      }
    }
    seen = static_cast<std::size_t>(n);
  }
}

}  // namespace rproxy::net
