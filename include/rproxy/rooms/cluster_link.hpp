// rproxy/rooms/cluster_link.hpp: the Redis side of the rooms bridge (rooms/cluster.hpp) on the
// cluster/ client: one cluster::redis_client per worker (its own io_context), worker 0's also
// carrying the bridge's subscriptions.
//
//     std::vector<std::unique_ptr<cluster::redis_client>> clients;   // one per worker, started
//     rooms::redis_link link(clients, executors);
//     rooms::basic_cluster<rooms::redis_link> bridge(reg, hub, link, opts, &log);
//     link.attach(bridge);                                            // messages and state to the bridge
//
// Scripts go out as EVALSHA (the SHA1 computed here once per script); a Redis that does not
// have one cached (restarted, flushed) answers NOSCRIPT and the command is sent again as EVAL,
// which caches it. up() is true while every worker's client is up; each client reports its
// transitions on its own worker; worker 0's (up, down, and each confirmed SUBSCRIBE) go to the
// bridge.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/cluster/error.hpp>
#include <rproxy/cluster/lua_script.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/cluster/reply.hpp>

namespace rproxy::rooms {

class redis_link {
public:
  redis_link(std::vector<cluster::redis_client*> clients, std::vector<asio::any_io_executor> executors)
      : clients_(std::move(clients)), executors_(std::move(executors)), up_flags_(clients_.size()), shas_(clients_.size()) {}
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  /// Sends pub/sub messages and worker 0's state to `bridge` (a basic_cluster<redis_link>);
  /// call once, before the clients run.
  template <class Bridge>
  void attach(Bridge& bridge) {
    on_message_ = [&bridge](std::string_view channel, std::string_view payload) { bridge.on_bus(channel, payload); };
    for (std::size_t i = 0; i < clients_.size(); ++i)
      clients_[i]->on_state([this, i, &bridge](bool up) {
        if (up_flags_[i].exchange(up) != up) up_count_.fetch_add(up ? 1 : -1, std::memory_order_acq_rel);
        if (i == 0) up ? bridge.on_up() : bridge.on_down();
      });
    clients_[0]->on_subscribed([&bridge](std::string_view channel) { bridge.on_subscribed(channel); });
  }

  bool up() const noexcept { return up_count_.load(std::memory_order_acquire) == static_cast<int>(clients_.size()); }

  template <class Handler>
  void command(std::size_t w, std::vector<std::string> args, Handler h) {
    if (args.size() >= 2 && args[0] == "EVAL") {
      args[0] = "EVALSHA";
      const std::string body = std::move(args[1]);
      args[1] = sha_of(w, body);
      send(w, std::move(args), [this, w, body, h = std::move(h)](std::vector<std::string> sent, std::error_code ec,
                                                                   const cluster::reply& r) mutable {
        if (ec == cluster::error::server_error && r.str.starts_with("NOSCRIPT")) {
          sent[0] = "EVAL";
          sent[1] = body;
          return send(w, std::move(sent), [h = std::move(h)](std::vector<std::string>, std::error_code e2,
                                                             const cluster::reply& r2) mutable { h(e2, r2); });
        }
        h(ec, r);
      });
      return;
    }
    send(w, std::move(args), [h = std::move(h)](std::vector<std::string>, std::error_code ec, const cluster::reply& r) mutable {
      h(ec, r);
    });
  }

  template <class F>
  void post0(F f) {
    asio::post(executors_.at(0), std::move(f));
  }
  template <class F>
  void post(std::size_t w, F f) {
    asio::post(executors_.at(w), std::move(f));
  }

  /// On worker 0. A channel subscribed once (the client subscribes again after a reconnect).
  void subscribe(const std::string& channel) {
    if (subs_.contains(channel)) return;
    subs_.emplace(channel, clients_[0]->subscribe(channel, [this](std::string_view ch, std::string_view payload) {
      if (on_message_) on_message_(ch, payload);
    }));
  }
  void unsubscribe(const std::string& channel) {
    auto it = subs_.find(channel);
    if (it == subs_.end()) return;
    clients_[0]->unsubscribe(it->second);
    subs_.erase(it);
  }

private:
  /// Sends args (kept alive with the handler: resent as is on NOSCRIPT).
  template <class Handler>
  void send(std::size_t w, std::vector<std::string> args, Handler h) {
    std::vector<std::string_view> views(args.begin(), args.end());
    auto* c = clients_.at(w);
    c->async_command(std::span<const std::string_view>(views),
                     [args = std::move(args), h = std::move(h)](std::error_code ec, cluster::reply r) mutable {
                       h(std::move(args), ec, r);
                     });
  }
  /// The SHA1 of a script body (the bodies are the bridge's constants: a handful), per worker.
  const std::string& sha_of(std::size_t w, const std::string& body) {
    auto& m = shas_.at(w);
    auto it = m.find(body);
    if (it == m.end()) it = m.emplace(body, cluster::sha1_hex(body)).first;
    return it->second;
  }

  std::vector<cluster::redis_client*> clients_;
  std::vector<asio::any_io_executor> executors_;
  std::vector<std::atomic<bool>> up_flags_;
  std::atomic<int> up_count_{0};
  std::function<void(std::string_view, std::string_view)> on_message_;
  std::unordered_map<std::string, std::uint64_t> subs_;  ///< worker 0 only
  std::vector<std::unordered_map<std::string, std::string>> shas_;  ///< per worker
};

}  // namespace rproxy::rooms
