// rproxy/app/http_listeners.hpp: an HTTP app's TCP listeners. Plain TCP serves HTTP/1.1 and h2c
// with prior knowledge (the HTTP/2 preface on the first bytes, looked at without taking them);
// TLS (`tls:`) serves HTTP/2 to clients whose ALPN offers "h2", else HTTP/1.1, the certificate
// chosen by SNI. A PROXY header (`proxy_protocol:`, trusted peers only) comes first on both: on
// TLS it is read before the handshake, without taking a byte of the ClientHello.
// Both run the world's connection pipeline once and its request pipeline per request or
// stream (flow/h2.hpp), so routes and middleware do not care which protocol the client speaks.
// A World (app/versions.hpp) has `connections` and `pipelines` per worker, `options`, and
// `tls` (an optional net::tls_server_context, set when the config has a TLS listener). The
// flows themselves are app/http_flows.hpp, which an app may compile in units of their own.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>
#include <utility>

#include <rproxy/app/http_flows.hpp>
#include <rproxy/app/listen.hpp>
#include <rproxy/app/tls_listen.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/flow/drain.hpp>
#include <rproxy/flow/h2.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/observe/worker_index.hpp>

namespace rproxy::app {

template <class World>
struct http_listeners {
  rproxy::app::versions<World>& worlds;
  rproxy::flow::drain_tracker& drain;
  const rproxy::flow::http1_adapter& http1;
  const rproxy::flow::h2_adapter& h2;

  /// HTTP/1.1, or HTTP/2 when the client starts with the preface.
  static asio::awaitable<void> serve_plain(std::shared_ptr<const World> w, const rproxy::flow::http1_adapter& h1,
                                           const rproxy::flow::h2_adapter& h2, asio::ip::tcp::socket s,
                                           rproxy::net::accepted_endpoints eps, rproxy::flow::drain_tracker::guard) {
    const auto i = rproxy::observe::worker_index() % w->pipelines.size();
    (void)co_await plain_http_flow<World>::run(*w, i, h1, h2, std::move(s), eps);
  }

  /// TLS: the PROXY header (trusted peers) and the handshake (app/tls_listen.hpp), then
  /// HTTP/2 if ALPN chose it, else HTTP/1.1.
  static asio::awaitable<void> serve_tls(std::shared_ptr<const World> w, const rproxy::flow::http1_adapter& h1,
                                         const rproxy::flow::h2_adapter& h2, asio::ip::tcp::socket s,
                                         rproxy::net::accepted_endpoints eps, rproxy::flow::drain_tracker::guard) {
    if (!w->tls) co_return;
    auto tls = co_await rproxy::app::accept_tls(std::move(s), w->tls->context(), w->options, eps);
    if (!tls) co_return;
    const auto i = rproxy::observe::worker_index() % w->pipelines.size();
    if (rproxy::net::alpn(*tls) == "h2") (void)co_await h2_tls_flow<World>::run(*w, i, h2, *tls, eps);
    else (void)co_await h1_tls_flow<World>::run(*w, i, h1, std::move(*tls), eps);
  }

  /// Opens the plain listener on `c.listen` and, with a `tls:` block (app/tls_block.hpp), the
  /// TLS one on `c.tls->listen`. False (logged): one cannot listen.
  template <class Runtime, class Config>
  bool open(Runtime& rt, const Config& c) {
    auto plain = [this](asio::ip::tcp::socket s, const rproxy::net::accepted_endpoints& eps) {
      auto ex = s.get_executor();
      asio::co_spawn(ex, serve_plain(worlds.current(), http1, h2, std::move(s), eps, drain.track()), asio::detached);
    };
    if (!rproxy::app::listen(rt, c.listen, "http", plain)) return false;
    if (!c.tls) return true;
    auto secure = [this](asio::ip::tcp::socket s, const rproxy::net::accepted_endpoints& eps) {
      auto ex = s.get_executor();
      asio::co_spawn(ex, serve_tls(worlds.current(), http1, h2, std::move(s), eps, drain.track()), asio::detached);
    };
    return rproxy::app::listen(rt, c.tls->listen, "https", secure);
  }
};

}  // namespace rproxy::app
