// examples/tcp_proxy/serve.cpp: tcp_proxy's routes. Per route: a listener, the flow driver's
// L4 adapter (PROXY protocol in and out, connect with failover, splice(2) relay; flows.cpp), a
// pipeline per worker (metrics, route name, balancer), the pool's health checks and dynamic
// weights. A reload builds the next world (pools keep their state; flows keep theirs). Adding,
// removing or moving a listener needs a restart (the reload says so in the log).
#include <memory>
#include <optional>
#include <vector>

#include <rproxy/app/runtime.hpp>
#include <rproxy/flow/config.hpp>
#include <rproxy/health/monitor.hpp>
#include <rproxy/observe/pool_metrics.hpp>

#include "world.hpp"

namespace tcp_proxy {

using monitor = rproxy::health::monitor<bal::upstream_pool>;

int serve(runtime& rt) {
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  auto backend_metrics = rproxy::observe::pool_metrics::add_to(rt.metrics());
  auto& load_reports = monitor::report_family(rt.metrics());
  // Per route, as long as the process runs: its pool (state kept across reloads) and health.
  auto states = std::make_shared<std::vector<std::unique_ptr<monitor>>>();
  for (const auto& rc : rt.config().get()->routes) {
    auto& m = *states->emplace_back(std::make_unique<monitor>(rt.control().get_executor(), std::make_shared<bal::upstream_pool>(), rc.name, rt.log()));
    m.export_reports(load_reports);
  }
  // Applies a config to the pools and checks; the world its flows run (null: bad backends).
  auto apply = [&rt, states, families, backend_metrics](const std::shared_ptr<const config>& c) -> std::shared_ptr<const world> {
    auto w = std::make_shared<world>();
    for (auto& m : *states) {
      auto& share = w->routes.emplace_back();
      const route_config* rc = nullptr;
      for (const auto& x : c->routes) rc = x.name == m->label() ? &x : rc;
      if (!rc) {
        m->stop();
        rt.log().warn("route removed from config: it refuses new flows until restart", {{"route", m->label()}});
        continue;
      }
      if (auto r = m->update(bal::pool_entries(rc->backends), rc->health_check, rc->dynamic_weights); !r) {
        rt.log().error("bad backends", {{"route", m->label()}, {"error", r.error().message()}});
        return nullptr;
      }
      backend_metrics->track(m->label(), m->pool());
      share.emplace();
      share->options = rproxy::flow::make_options(rc->proxy_protocol, c->relay);
      share->options.connect_timeout = rc->connect_timeout;
      share->options.relay.idle_timeout = rc->idle_timeout;
      for (std::size_t i = 0; i < rt.pool().size(); ++i)
        share->pipelines.push_back(rproxy::make_pipeline(rproxy::observe::flow_metrics{families, m->label()}, rproxy::route::fixed{m->label()},
                                                         bal::make_stage(m->pool(), bal::any_balancer::make(rc->balancer, i + 1))));
    }
    return w;
  };
  auto first = apply(rt.config().get());
  if (!first) return 1;
  auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
  rt.keep(worlds);
  for (std::size_t i = 0; i < states->size(); ++i)
    if (!listen_route(rt, rt.config().get()->routes[i], i, *worlds)) return 1;
  rt.on_stop_accepting([states] {
    for (auto& m : *states) m->stop();
  });
  rt.on_reload([worlds, apply](const std::shared_ptr<const config>& c) {
    if (auto w = apply(c)) worlds->swap(std::move(w));
  });
  return 0;
}

}  // namespace tcp_proxy
