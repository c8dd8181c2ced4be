// rproxy/app/http_flows.hpp: the flows an HTTP app's TCP listeners run (app/http_listeners.hpp),
// one class template per listener kind over the app's World, so that an app can compile each
// in a unit of its own: one unit with all of them costs more memory than a build machine may
// have. The app declares them extern where the listeners are compiled and instantiates each
// once:
//     // flows.hpp (seen by every unit)
//     extern template struct rproxy::app::plain_http_flow<my_app::world>;
//     extern template struct rproxy::app::h1_tls_flow<my_app::world>;
//     extern template struct rproxy::app::h2_tls_flow<my_app::world>;
//     // flows.cpp: template struct rproxy::app::plain_http_flow<my_app::world>;  (and so on)
// Without the extern lines they are instantiated where used, as any template.
// A World (app/versions.hpp) has `connections` and `pipelines` per worker and `options`.
#pragma once

#include <cstddef>
#include <optional>
#include <system_error>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/flow/h2.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/tls_stream.hpp>

namespace rproxy::app {

/// Plain TCP: HTTP/1.1, or HTTP/2 when the client starts with the preface (h2c).
template <class World>
struct plain_http_flow {
  static asio::awaitable<std::error_code> run(const World& w, std::size_t worker, const flow::http1_adapter& h1,
                                              const flow::h2_adapter& h2, asio::ip::tcp::socket s, net::accepted_endpoints eps);
};

/// TLS after the handshake, ALPN "http/1.1" or none.
template <class World>
struct h1_tls_flow {
  static asio::awaitable<std::error_code> run(const World& w, std::size_t worker, const flow::http1_adapter& h1, net::tls_stream s,
                                              net::accepted_endpoints eps);
};

/// TLS after the handshake, ALPN "h2": `s` stays the caller's until the flow completes.
template <class World>
struct h2_tls_flow {
  static asio::awaitable<std::error_code> run(const World& w, std::size_t worker, const flow::h2_adapter& h2, net::tls_stream& s,
                                              net::accepted_endpoints eps);
};

// Defined out of the classes (not inline), so that `extern template` keeps them out of a unit.
// `worker` picks the world's pipelines of the worker the connection runs on.
template <class World>
asio::awaitable<std::error_code> plain_http_flow<World>::run(const World& w, std::size_t worker, const flow::http1_adapter& h1,
                                                             const flow::h2_adapter& h2, asio::ip::tcp::socket s,
                                                             net::accepted_endpoints eps) {
  return flow::serve_http(w.connections[worker], w.pipelines[worker], h1, h2, std::move(s), w.options, eps);
}

template <class World>
asio::awaitable<std::error_code> h1_tls_flow<World>::run(const World& w, std::size_t worker, const flow::http1_adapter& h1,
                                                         net::tls_stream s, net::accepted_endpoints eps) {
  return flow::serve(w.connections[worker], w.pipelines[worker], h1, std::move(s), w.options, eps);
}

template <class World>
asio::awaitable<std::error_code> h2_tls_flow<World>::run(const World& w, std::size_t worker, const flow::h2_adapter& h2,
                                                         net::tls_stream& s, net::accepted_endpoints eps) {
  return flow::serve_h2(w.connections[worker], w.pipelines[worker], h2, s, w.options, eps);
}

}  // namespace rproxy::app
