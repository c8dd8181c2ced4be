// examples/tcp_proxy/serve.cpp: tcp_proxy's routes. Per route: a listener, the flow driver's
// L4 adapter (PROXY protocol in and out, connect with failover, splice(2) relay; flows.cpp), a
// pipeline per worker (metrics, route name, balancer) and a pool with its health checks and
// dynamic weights (app::pools: kept across reloads by route name). A reload builds the next
// world; flows keep theirs. Listeners are the first config's: adding, removing or moving one
// needs a restart (the reload says so in the log).
#include <algorithm>
#include <memory>

#include <rproxy/app/pools.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/flow/config.hpp>

#include "world.hpp"

namespace tcp_proxy {

int serve(runtime& rt) {
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  auto pools = rproxy::app::pools::open(rt);
  const auto first = rt.config().get();
  // The world of a config: a share per listened route (none for a route it no longer lists).
  auto build = [&rt, pools, families, first](const std::shared_ptr<const config>& c) -> std::shared_ptr<const world> {
    if (!pools->update(c->routes)) return nullptr;  // logged
    for (const auto& rc : c->routes)
      if (std::ranges::find(first->routes, rc.name, &route_config::name) == first->routes.end())
        rt.log().warn("route added to config: it listens after a restart", {{"route", rc.name}});
    auto w = std::make_shared<world>();
    for (const auto& listened : first->routes) {
      auto& share = w->routes.emplace_back();
      const auto rc = std::ranges::find(c->routes, listened.name, &route_config::name);
      if (rc == c->routes.end()) {
        rt.log().warn("route removed from config: it refuses new flows until restart", {{"route", listened.name}});
        continue;
      }
      share.emplace();
      share->options = rproxy::flow::make_options(rc->proxy_protocol, c->relay);
      share->options.connect_timeout = rc->connect_timeout;
      share->options.relay.idle_timeout = rc->idle_timeout;
      share->pipelines = rproxy::app::per_worker(rt, [&](std::size_t i) {
        return rproxy::make_pipeline(rproxy::observe::flow_metrics{families, rc->name}, rproxy::route::fixed{rc->name},
                                     bal::make_stage(pools->get(rc->name), bal::any_balancer::make(rc->balancer, i + 1)));
      });
    }
    return w;
  };
  auto worlds = rproxy::app::make_versions<world>(rt, build, "routes");
  if (!worlds) return 1;
  for (std::size_t i = 0; i < first->routes.size(); ++i)
    if (!listen_route(rt, first->routes[i], i, *worlds)) return 1;
  return 0;
}

}  // namespace tcp_proxy
