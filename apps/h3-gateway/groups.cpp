// apps/h3-gateway/groups.cpp: the gateway's backend groups across config versions (groups.hpp).
#include <memory>

#include <rproxy/app/pools.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/upstream/backends.hpp>
#include <rproxy/upstream/standin_probe.hpp>

#include "groups.hpp"

namespace h3_gateway {

struct upstream_groups {
  explicit upstream_groups(rproxy::app::runtime<config>& rt) : pools(rproxy::app::pools::open(rt)), backends(rt.pool(), rt.metrics(), rt.log(), "h3gw") {}
  std::shared_ptr<rproxy::app::pools> pools;  ///< by group name, with their health checks
  rproxy::upstream::backends backends;         ///< TLS to backends, stand-ins of h2c, h2 and h3 groups
};

std::shared_ptr<upstream_groups> open_groups(rproxy::app::runtime<config>& rt) {
  return std::make_shared<upstream_groups>(rt);
}

bool update_groups(upstream_groups& g, const config& c, std::vector<std::shared_ptr<bal::upstream_pool>>& pools,
                   rproxy::upstream::group_transports& transports) {
  // TLS to backends and the stand-ins of h2c, h2 and h3 groups, built aside: a reload failing
  // from here on leaves the live ones as they were (the staged set's new stand-ins stop when
  // it is dropped).
  auto up = g.backends.stage(c.groups);
  if (!up) return false;  // logged
  // Last, as nothing after it fails: a group keeps its pool (backends, counters, checks) while
  // its pool settings (breaker, outlier) stay.
  if (!g.pools->update(c.groups)) return false;  // logged
  transports = std::move(up->transports);
  g.backends.commit(std::move(*up));
  for (const auto& gc : c.groups)  // HTTP/3 and HTTP/2 backends are checked through their stand-ins
    if (gc.proto != rproxy::flow::upstream_proto::http && gc.health_check)
      if (auto* m = g.pools->monitor(gc.name))
        m->check_with(rproxy::upstream::standin_probe::of(*gc.health_check, transports.redirect), gc.health_check->options());
  for (const auto& gc : c.groups) pools.push_back(g.pools->get(gc.name));
  return true;
}

void stop_groups(upstream_groups& g) { g.backends.stop(); }

}  // namespace h3_gateway
