// Tests for rproxy/route/fixed.hpp: the route fixed by the listener a flow arrived on.
#include <rproxy/route/fixed.hpp>

#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/context.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

TEST_CASE("route::fixed sets the route and lets the flow go on", "[route]") {
  rproxy::flow_info ctx;
  const rproxy::route::fixed r{"postgres"};
  CHECK(r.on_route(ctx).is_next());
  CHECK(ctx.route == "postgres");
  // the text is the stage's (config-owned), not a copy
  CHECK(ctx.route.data() == r.name.data());
}

TEST_CASE("route::fixed overrides a route set before it; the last stage to set it wins", "[route]") {
  rproxy::flow_info ctx;
  ctx.route = "earlier";
  std::string name = "db";
  CHECK(rproxy::route::fixed{name}.on_route(ctx).is_next());
  CHECK(ctx.route == "db");
  CHECK(rproxy::route::fixed{"cache"}.on_route(ctx).is_next());
  CHECK(ctx.route == "cache");
}

namespace {
// A stage after the route: sees the route the fixed stage chose.
struct seen_route {
  std::string* seen;
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) const {
    *seen = std::string(ctx.route);
    return rproxy::next;
  }
};
}  // namespace

TEST_CASE("route::fixed in a pipeline: later stages see its route", "[route]") {
  std::string seen;
  auto p = rproxy::make_pipeline(rproxy::route::fixed{"lobby"}, seen_route{&seen});
  auto ctx = p.make_context();
  REQUIRE(p.route(ctx).is_next());
  CHECK(ctx.route == "lobby");
  CHECK(seen == "lobby");
}
