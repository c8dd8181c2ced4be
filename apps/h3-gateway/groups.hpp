// apps/h3-gateway/groups.hpp: the gateway's backend groups across config versions: their pools
// with health checks (by group name: app/pools.hpp) and how their backends are reached (TLS
// contexts, the stand-ins of h2c, h2 and h3 groups: upstream/backends.hpp). Compiled in
// groups.cpp alone: the pools' monitors and the HTTP/2 and HTTP/3 connections to backends are
// the app's heaviest code, and that unit needs no pipeline or flow.
#pragma once

#include <memory>
#include <vector>

#include <rproxy/app/runtime_fwd.hpp>
#include <rproxy/upstream/group_transports.hpp>

#include "config.hpp"

namespace h3_gateway {

struct upstream_groups;
std::shared_ptr<upstream_groups> open_groups(rproxy::app::runtime<config>& rt);
/// Version `c`'s groups: their pools (one per `c.groups` entry, in order) and transports (with
/// the redirect table), the stand-ins' health checks. False: logged, and the live groups are as
/// they were.
bool update_groups(upstream_groups& g, const config& c, std::vector<std::shared_ptr<bal::upstream_pool>>& pools,
                   rproxy::upstream::group_transports& transports);
/// Stops the stand-ins (when the process stops accepting).
void stop_groups(upstream_groups& g);

}  // namespace h3_gateway
