// apps/ws-server/flows_tls.cpp: the unit of the wss:// flow: the TLS handshake, then the flow
// driver with the WebSocket adapter over a TLS stream (server.hpp declares it).
#include <memory>
#include <string>
#include <utility>

#include <rproxy/app/tls_listen.hpp>

#include "server.hpp"

namespace ws_server {

asio::awaitable<void> serve_tls(std::shared_ptr<const world> w, asio::ip::tcp::socket s, rproxy::net::accepted_endpoints eps,
                                rproxy::flow::drain_tracker::guard) {
  if (!w->tls) co_return;
  auto tls = co_await rproxy::app::accept_tls(std::move(s), w->tls->context(), w->options, eps);
  if (!tls) {  // a client that does not trust the certificate, a port probe, a slow one, not TLS at all
    if (auto* f = w->shared->tls_failures) f->with({std::string(tls.error().reason())}).inc();
    co_return;
  }
  const auto i = rproxy::observe::worker_index() % w->pipelines.size();
  (void)co_await flow::serve(w->pipelines[i], w->a, std::move(*tls), w->options, eps);
}

}  // namespace ws_server
