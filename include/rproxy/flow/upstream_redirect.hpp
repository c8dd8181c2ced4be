// rproxy/flow/upstream_redirect.hpp: backends reached through a local stand-in. A backend
// address listed here is not connected to directly: the flow driver connects to this worker's
// stand-in for it instead (flow/h3_upstream.hpp: a loopback HTTP/1.1 listener that carries the
// requests to an HTTP/3 backend over pooled QUIC connections). Everything else about the
// backend (balancing, breakers, metrics, kept connections) still names the real address.
//
//     auto r = std::make_shared<upstream_redirect>();
//     r->add(backend_ep, {worker0_local_ep, worker1_local_ep});
//     options.redirect = r;                                     // flow::options
//     auto target = connect_target(options, backend_ep);       // on worker i: worker i's stand-in
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include <asio/ip/tcp.hpp>

#include <rproxy/observe/worker_index.hpp>

namespace rproxy::flow {

class upstream_redirect {
public:
  /// `backend` is reached on worker i through `per_worker[i]`.
  void add(const asio::ip::tcp::endpoint& backend, std::vector<asio::ip::tcp::endpoint> per_worker) {
    entries_.emplace_back(backend, std::move(per_worker));
  }
  /// Every entry of `other` too (several kinds of stand-in in one table).
  void add_all(const upstream_redirect& other) { entries_.insert(entries_.end(), other.entries_.begin(), other.entries_.end()); }
  bool empty() const noexcept { return entries_.empty(); }

  /// Where to connect for `backend` on the calling worker (itself when not listed).
  const asio::ip::tcp::endpoint& target(const asio::ip::tcp::endpoint& backend) const noexcept {
    for (const auto& [b, locals] : entries_)
      if (b == backend && !locals.empty()) return locals[observe::worker_index() % locals.size()];
    return backend;
  }

private:
  std::vector<std::pair<asio::ip::tcp::endpoint, std::vector<asio::ip::tcp::endpoint>>> entries_;
};

}  // namespace rproxy::flow
