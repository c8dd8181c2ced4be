// rproxy/app/versions.hpp: an app's world per config version. A world is what flows need from
// one config (per-worker pipelines, the driver's options, tables built from the config); a
// reload builds the next one and swaps it in, and each flow keeps the world it started with.
//
//     struct world {                                   // the app's own (or app::share<my_pipeline>)
//       mutable std::vector<my_pipeline> pipelines;    // one per worker (each used by its worker)
//       rproxy::flow::options options;                 // the listener's driver settings
//     };
//     // in build(config): w->pipelines = rproxy::app::per_worker(rt, [&](std::size_t i) { return make(i); });
//     rproxy::app::versions<world> worlds{build(rt.config().get())};
//     rproxy::app::listen(rt, cfg.listen, "players",
//                         worlds.handler(rt.drain(), rproxy::flow::mc_adapter{}));
//     rt.on_reload([&](auto cfg) { if (auto w = build(cfg)) worlds.swap(std::move(w)); });
//
// or, the same kept by the runtime, with the reload's outcome logged:
//
//     auto worlds = rproxy::app::make_versions<world>(rt, build, "servers");   // null: the first failed
//
// A world whose share also has `mutable std::vector<conn_pipeline> connections` (one per worker)
// runs them once per connection and a flow of `pipelines` per hello (flow::serve(conn, p, ...)).
// A world with several listeners gives handler() a `part(world) -> const Part*` that picks the
// listener's share (its pipelines and options); null refuses the connection (a route a reload
// removed).
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/flow/drain.hpp>
#include <rproxy/config/snapshot.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/observe/worker_index.hpp>

namespace rproxy::app {

/// One listener's share of a world: a pipeline per worker (each used by its worker only) and the
/// flow driver's options.
template <class Pipeline>
struct share {
  mutable std::vector<Pipeline> pipelines;
  flow::options options;
};

/// make(i) for each worker i of the runtime's pool, in order: a share's pipelines.
template <class Runtime, class Make>
auto per_worker(Runtime& rt, Make make) {
  std::vector<decltype(make(std::size_t{}))> out;
  out.reserve(rt.pool().size());
  for (std::size_t i = 0; i < rt.pool().size(); ++i) out.push_back(make(i));
  return out;
}

template <class World>
class versions {
public:
  explicit versions(std::shared_ptr<const World> first) : snap_(std::move(first)) {}

  std::shared_ptr<const World> current() const { return snap_.get(); }
  void swap(std::shared_ptr<const World> next) { snap_.swap(std::move(next)); }

  /// The listener handler: serves each socket with the worker's pipeline of the current world.
  template <class Adapter, class Part>
  auto handler(flow::drain_tracker& drain, Adapter adapter, Part part) {
    return [this, &drain, adapter, part](asio::ip::tcp::socket s, const net::accepted_endpoints& eps) {
      auto w = current();
      const auto* share = part(*w);
      if (!share) return;  // closes s
      const auto i = observe::worker_index() % share->pipelines.size();
      if constexpr (requires { share->connections[i]; }) {
        auto ex = s.get_executor();
        asio::co_spawn(ex, run(*share, i, adapter, std::move(s), eps, std::move(w), drain.track()), asio::detached);
      } else {  // one flow per connection: no coroutine frame while it relays
        flow::spawn(share->pipelines[i], adapter, std::move(s), share->options, eps, keep{std::move(w), drain.track()});
      }
    };
  }
  /// The same for a world that is one listener's share itself.
  template <class Adapter>
  auto handler(flow::drain_tracker& drain, Adapter adapter) {
    return handler(drain, std::move(adapter), [](const World& w) { return &w; });
  }

private:
  /// What a spawned flow keeps for its life: its world (pipelines, options) and its drain count.
  struct keep {
    std::shared_ptr<const World> world;
    flow::drain_tracker::guard guard;
    void operator()(const std::error_code&) const noexcept {}
  };

  /// One connection on worker i of a share with `connections` pipelines (one per worker, run
  /// once per connection): a flow per hello on it (HTTP/1.1 keep-alive).
  template <class Share, class Adapter>
  static asio::awaitable<void> run(const Share& share, std::size_t i, Adapter adapter, asio::ip::tcp::socket s,
                                   net::accepted_endpoints eps, std::shared_ptr<const World>, flow::drain_tracker::guard) {
    co_await flow::serve(share.connections[i], share.pipelines[i], adapter, std::move(s), share.options, eps);
  }

  config::snapshot<World> snap_;
};

/// An app's versions of World, kept until the runtime ends: the first built from the runtime's
/// config, the next one on each reload. `build(config)` returns the world, or null when that
/// config cannot make one (build logs why); then the world before it keeps serving, and the log
/// says so, naming `what` ("servers", "routes"). Null: the first config made no world.
template <class World, class Runtime, class Build>
std::shared_ptr<versions<World>> make_versions(Runtime& rt, Build build, std::string_view what) {
  std::shared_ptr<const World> first = build(rt.config().get());
  if (!first) return nullptr;
  auto v = std::make_shared<versions<World>>(std::move(first));
  rt.keep(v);
  rt.on_reload([&rt, v, build = std::move(build), what = std::string(what)](const auto& cfg) {
    std::shared_ptr<const World> next = build(cfg);
    if (!next) return rt.log().error("not updated; the previous config keeps serving", {{"what", what}});
    v->swap(std::move(next));
    rt.log().info("updated", {{"what", what}});
  });
  return v;
}

}  // namespace rproxy::app
