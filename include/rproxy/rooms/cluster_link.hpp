// rproxy/rooms/cluster_link.hpp: the Redis side of the rooms bridge (rooms/cluster.hpp) on the
// cluster/ client: one cluster::redis_client per worker (its own io_context), worker 0's also
// carrying the bridge's subscriptions.
//
//     rproxy::cluster::worker_links links(pool, redis_opts, metrics, log);  // a client per worker
//     rooms::redis_link link(clients, executors);                     // links.client(i), pool.executor(i)
//     rooms::basic_cluster<rooms::redis_link> bridge(reg, hub, link, opts, &log);
//     link.attach(bridge);                                            // before the clients start
//
// Scripts (rooms::cluster_scripts) are loaded into Redis with SCRIPT LOAD each time a client
// connects and run with EVALSHA (cluster/lua_script.hpp: async_eval, which falls back to EVAL
// on NOSCRIPT); a message carries its arguments only. up() is true while every worker's client is up; each client reports its
// transitions on its own worker; worker 0's (up, down, and each confirmed SUBSCRIBE) go to the
// bridge.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>
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
      : clients_(std::move(clients)), executors_(std::move(executors)), up_flags_(clients_.size()) {}
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  /// Sends pub/sub messages and worker 0's state to `bridge` (a basic_cluster<redis_link>);
  /// call once, before the clients run.
  template <class Bridge>
  void attach(Bridge& bridge) {
    for (auto* c : clients_) cluster::load_on_connect(*c, Bridge::scripts());  // before the bridge's on_up
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
    auto own = std::make_unique<words>(std::move(args));
    const std::span<const std::string_view> views(own->views);
    clients_.at(w)->async_command(views, [own = std::move(own), h = std::move(h)](std::error_code ec, cluster::reply r) mutable {
      h(ec, r);
    });
  }

  /// Runs script `s` on worker w's connection: `keys_then_args` holds its `nkeys` keys, then its
  /// arguments (kept here until the reply: a NOSCRIPT retry sends them again).
  template <class Handler>
  void eval(std::size_t w, const cluster::lua_script& s, std::size_t nkeys, std::vector<std::string> keys_then_args, Handler h) {
    auto own = std::make_unique<words>(std::move(keys_then_args));
    const std::span<const std::string_view> all(own->views);
    nkeys = std::min(nkeys, all.size());
    cluster::async_eval(*clients_.at(w), s, all.first(nkeys), all.subspan(nkeys),
                        [own = std::move(own), h = std::move(h)](std::error_code ec, cluster::reply r) mutable { h(ec, r); });
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
  /// A command's words and the views sent (both stay put while the command is out).
  struct words {
    std::vector<std::string> text;
    std::vector<std::string_view> views;
    explicit words(std::vector<std::string> t) : text(std::move(t)), views(text.begin(), text.end()) {}
  };

  std::vector<cluster::redis_client*> clients_;
  std::vector<asio::any_io_executor> executors_;
  std::vector<std::atomic<bool>> up_flags_;
  std::atomic<int> up_count_{0};
  std::function<void(std::string_view, std::string_view)> on_message_;
  std::unordered_map<std::string, std::uint64_t> subs_;  ///< worker 0 only
};

}  // namespace rproxy::rooms
