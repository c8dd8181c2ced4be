// rproxy/app/listeners.hpp: an app whose config names several listeners (an L4 proxy's
// routes), each with flows of its own: a world per config version with one share per listener
// (app/versions.hpp), and the listeners over it.
//
//     using world = rproxy::app::listener_shares<my_pipeline>;
//     auto build = [&rt, first](const std::shared_ptr<const config>& c) {
//       return rproxy::app::make_listener_shares<my_pipeline>(rt, first->routes, c->routes, c->relay,
//           [&](const route_config& r, rproxy::app::share<my_pipeline>& s) { s.pipelines = ...; });
//     };
//     auto worlds = rproxy::app::make_versions<world>(rt, build, "routes");
//     if (!worlds || !rproxy::app::listen_each(rt, first->routes, *worlds, rproxy::flow::l4_adapter{})) return 1;
//
// An entry has `name`, `listen` (config::endpoint) and `proxy_protocol`
// (flow::proxy_protocol_config); its share's flow options come from those and the app's relay
// block, then from the entry's own `connect_timeout` and `idle_timeout` (std::chrono
// durations) when it has them. The listeners are those of the config the process started
// with: a reload rebuilds each one's share from the next config's entry of the same name, and
// says in the log when that config adds an entry (it listens after a restart) or drops one (its
// listener refuses new connections until a restart).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include <rproxy/app/listen.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/flow/config.hpp>

namespace rproxy::app {

/// One config version of an app's listeners: a share per listener of the first config, in its
/// order; none for one that a reload removed.
template <class Pipeline>
struct listener_shares {
  std::vector<std::optional<share<Pipeline>>> listeners;
};

/// The world of config entries `next` for the listeners of `first`: for each listener that
/// `next` still has, its options, then make(entry, share) fills the rest of its share.
template <class Pipeline, class Runtime, class Entry, class Make>
std::shared_ptr<const listener_shares<Pipeline>> make_listener_shares(Runtime& rt, const std::vector<Entry>& first,
                                                                      const std::vector<Entry>& next,
                                                                      const flow::relay_config& relay, Make make) {
  for (const auto& e : next)
    if (std::ranges::find(first, e.name, &Entry::name) == first.end())
      rt.log().warn("listener added to config: it listens after a restart", {{"listener", e.name}});
  auto w = std::make_shared<listener_shares<Pipeline>>();
  for (const auto& listened : first) {
    auto& s = w->listeners.emplace_back();
    const auto e = std::ranges::find(next, listened.name, &Entry::name);
    if (e == next.end()) {
      rt.log().warn("listener removed from config: it refuses new connections until a restart", {{"listener", listened.name}});
      continue;
    }
    auto& share = s.emplace();
    share.options = flow::make_options(e->proxy_protocol, relay);
    if constexpr (requires { e->connect_timeout; }) share.options.connect_timeout = e->connect_timeout;
    if constexpr (requires { e->idle_timeout; }) share.options.relay.idle_timeout = e->idle_timeout;
    make(*e, share);
  }
  return w;
}

/// Opens a listener per entry of `first` (the config the world's listeners come from), each
/// serving its connections with `adapter` over its share of the current world. False: one
/// cannot listen (logged).
template <class Config, class Entry, class Pipeline, class Adapter>
bool listen_each(runtime<Config>& rt, const std::vector<Entry>& first, versions<listener_shares<Pipeline>>& worlds,
                 const Adapter& adapter) {
  for (std::size_t i = 0; i < first.size(); ++i) {
    auto part = [i](const listener_shares<Pipeline>& w) { return w.listeners[i] ? &*w.listeners[i] : nullptr; };
    if (!listen(rt, first[i].listen, first[i].name, first[i].proxy_protocol, worlds.handler(rt.drain(), adapter, part)))
      return false;
  }
  return true;
}

}  // namespace rproxy::app
