// examples/tcp_proxy/world.hpp: what tcp_proxy's flows run, per config version (serve.cpp builds
// it), and the listeners that serve them (flows.cpp, the one unit that compiles the flows).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include <rproxy/app/listeners.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/route/fixed.hpp>

#include "tcp_proxy.hpp"

namespace tcp_proxy {

using pipeline = decltype(rproxy::make_pipeline(std::declval<rproxy::observe::flow_metrics>(), rproxy::route::fixed{},
                                                bal::make_stage(std::shared_ptr<bal::upstream_pool>(), bal::any_balancer{})));

/// One config version of the routes: a pipeline per worker and the driver's options, per route.
using world = rproxy::app::listener_shares<pipeline>;

/// Opens the listeners of `routes` (the first config's) over the current world. False: logged.
bool listen_routes(runtime& rt, const std::vector<route_config>& routes, rproxy::app::versions<world>& worlds);

}  // namespace tcp_proxy
