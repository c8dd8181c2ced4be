// rproxy/route/fixed.hpp: the route of a flow fixed by where it arrived (one route per
// listener, as in an L4 proxy). Sets ctx.route on_route; the text must outlive the flow.
//
//     auto p = rproxy::make_pipeline(rproxy::route::fixed{"postgres"}, balancer_stage);
#pragma once

#include <string_view>

#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::route {

struct fixed {
  std::string_view name;

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) const {
    ctx.route = name;
    return rproxy::next;
  }
};

}  // namespace rproxy::route
