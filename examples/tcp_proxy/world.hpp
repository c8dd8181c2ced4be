// examples/tcp_proxy/world.hpp: what tcp_proxy's flows run, per config version (serve.cpp builds
// it), and the listener that serves them (flows.cpp, the one unit that compiles the flows).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <rproxy/app/versions.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/route/fixed.hpp>

#include "tcp_proxy.hpp"

namespace tcp_proxy {

using pipeline = decltype(rproxy::make_pipeline(std::declval<rproxy::observe::flow_metrics>(), rproxy::route::fixed{},
                                                bal::make_stage(std::shared_ptr<bal::upstream_pool>(), bal::any_balancer{})));

/// One config version of the routes: what each one's flows run (a pipeline per worker, its
/// options); by route index, none for a route a reload removed.
struct world { std::vector<std::optional<rproxy::app::share<pipeline>>> routes; };

/// Opens route `i`'s listener (`rc.listen`) over the current world. False: logged.
bool listen_route(runtime& rt, const route_config& rc, std::size_t i, rproxy::app::versions<world>& worlds);

}  // namespace tcp_proxy
