// examples/tcp_proxy/serve.cpp: tcp_proxy's routes. Per route: a listener (app/listeners.hpp),
// the flow driver's L4 adapter (PROXY protocol in and out, connect with failover, splice(2)
// relay; flows.cpp), a pipeline per worker (metrics, route name, balancer) and a pool with its
// health checks and dynamic weights (app::pools: kept across reloads by route name).
#include <memory>

#include <rproxy/app/pools.hpp>
#include <rproxy/app/runtime.hpp>

#include "world.hpp"

namespace tcp_proxy {

int serve(runtime& rt) {
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  auto pools = rproxy::app::pools::open(rt);
  const auto first = rt.config().get();
  auto build = [&rt, pools, families, first](const std::shared_ptr<const config>& c) -> std::shared_ptr<const world> {
    if (!pools->update(c->routes)) return nullptr;  // logged
    return rproxy::app::make_listener_shares<pipeline>(rt, first->routes, c->routes, c->relay, [&](const route_config& rc, auto& share) {
      share.pipelines = rproxy::app::per_worker(rt, [&](std::size_t i) {
        return rproxy::make_pipeline(rproxy::observe::flow_metrics{families, rc.name}, rproxy::route::fixed{rc.name},
                                     bal::make_stage(pools->get(rc.name), bal::any_balancer::make(rc.balancer, i + 1)));
      });
    });
  };
  auto worlds = rproxy::app::make_versions<world>(rt, build, "routes");
  return worlds && listen_routes(rt, first->routes, *worlds) ? 0 : 1;
}

}  // namespace tcp_proxy
