// apps/ws-server/flows.cpp: the unit of the ws:// flow: the flow driver with the WebSocket
// adapter over the server's pipeline, spawned per connection (server.hpp declares it).
#include <memory>
#include <utility>

#include "server.hpp"

namespace ws_server {

void serve_plain(std::shared_ptr<const world> w, asio::ip::tcp::socket s, const rproxy::net::accepted_endpoints& eps,
                 rproxy::flow::drain_tracker::guard g) {
  auto& p = w->pipelines[rproxy::observe::worker_index() % w->pipelines.size()];
  const auto& a = w->a;
  const auto& o = w->options;
  flow::spawn(p, std::cref(a), std::move(s), o, eps, keep_world{std::move(w), std::move(g)});
}

}  // namespace ws_server
