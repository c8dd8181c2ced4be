// rproxy/app/tls_listen.hpp: what an app's TLS listener (a `tls:` block, app/tls_block.hpp) does
// before its protocol starts: the server context of the block (its certificates chosen by SNI,
// the ALPN protocols the app speaks), and the start of each connection: a PROXY header when the
// flow options take one (trusted peers only; read before the handshake without taking a byte of
// the ClientHello), then the handshake within the hello timeout.
//
//     // in the world's build (certificates are read again on every reload):
//     auto ctx = rproxy::app::load_tls(*cfg.tls, {"h2", "http/1.1"});
//     if (!ctx) return log.error("cannot load TLS certificates", {{"error", ctx.error().message}}), nullptr;
//     // per connection, on the accepting worker:
//     auto tls = co_await rproxy::app::accept_tls(std::move(socket), w->tls->context(), w->options, eps);
//     if (!tls) {   // a bad or untrusted PROXY header, a failed or slow handshake
//       if (tls.error().at == rproxy::app::tls_accept_error::step::handshake)
//         failures.with({std::string(tls.error().reason())}).inc();   // net/tls_failure.hpp's names
//       co_return;
//     }
//     co_await rproxy::flow::serve(..., std::move(*tls), w->options, eps);
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/app/tls_block.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/proxy_peek.hpp>
#include <rproxy/net/tls_failure.hpp>
#include <rproxy/net/tls_stream.hpp>

namespace rproxy::app {

/// The server context of a `tls:` block, offering `alpn` (server preference).
inline result<net::tls_server_context, net::tls_load_error> load_tls(const tls_listener_block& b, std::vector<std::string> alpn) {
  net::tls_server_options o;
  for (const auto& c : b.certificates) o.certificates.push_back({c.cert, c.key, c.server_names});
  o.alpn = std::move(alpn);
  return net::tls_server_context::load(o);
}

/// Why accept_tls gave no stream: the PROXY header (read before any handshake) or the handshake.
struct tls_accept_error {
  enum class step : unsigned char { proxy_header, handshake };
  step at = step::handshake;
  std::error_code ec;
  /// A short stable name for a metric label: net/tls_failure.hpp's for a handshake, else "proxy_header".
  std::string_view reason() const noexcept { return at == step::proxy_header ? "proxy_header" : net::tls_handshake_failure(ec); }
};

/// A TLS connection's start: the PROXY header (when `o.accept` takes one; its addresses replace
/// `eps`), then the server handshake within `o.hello_timeout`. An error: the connection is to be
/// closed (malformed, slow or untrusted header; failed or slow handshake), and it says which.
inline asio::awaitable<result<net::tls_stream, tls_accept_error>> accept_tls(asio::ip::tcp::socket s, asio::ssl::context& ctx,
                                                                              const flow::options& o, net::accepted_endpoints& eps) {
  if (o.accept != proxy_accept::none) {
    auto pp = co_await net::peek_proxy_header(s, o.accept, o.is_trusted(eps.remote.address()), o.header_timeout);
    if (pp.ec) co_return failure(tls_accept_error{tls_accept_error::step::proxy_header, pp.ec});  // no handshake
    if (pp.header && pp.header->command == net::proxy_protocol::command::proxy && pp.header->has_addresses()) {
      eps.remote = pp.header->source;
      eps.local = pp.header->destination;
    }
  }
  net::tls_stream tls(std::move(s), ctx);
  auto [ec] = co_await net::async_server_handshake(tls, o.hello_timeout, asio::experimental::as_tuple(asio::use_awaitable));
  if (ec) co_return failure(tls_accept_error{tls_accept_error::step::handshake, ec});
  co_return std::move(tls);
}

}  // namespace rproxy::app
