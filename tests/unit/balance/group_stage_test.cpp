#include <rproxy/balance/group_stage.hpp>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace bal = rproxy::balance;
using asio::ip::tcp;

namespace {

tcp::endpoint ep(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

struct proto {
  using flow = rproxy::flow_info;
  using hello = std::string;
  using message = std::string;
  using response = std::string;
};
// Stands in for a router: the hello names the group ("0", "1", anything else: none).
struct router {
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const std::string& h) {
    ctx.identity = h;
    return rproxy::next;
  }
};
struct select_group {
  std::size_t operator()(const rproxy::flow_info& f) const {
    return f.identity == "0" ? 0 : f.identity == "1" ? 1 : 99;
  }
};

}  // namespace

TEST_CASE("group_stage picks from the flow's group, fails over within it, refuses an empty one", "[balance][stage]") {
  auto g0 = std::make_shared<bal::pool>();
  auto g1 = std::make_shared<bal::pool>();
  REQUIRE(g0->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}}));
  REQUIRE(g1->update({{"c", ep(9003), 1}}));
  using stage_t = bal::group_stage<bal::pool, bal::round_robin, select_group>;
  auto p = rproxy::make_pipeline<proto>(router{}, stage_t({g0, g1}, {bal::round_robin{}, bal::round_robin{}}, select_group{},
                                                          {.no_backend = "group down", .retry_after_s = 3}));

  SECTION("each flow goes to its group's backends") {
    std::vector<tcp::endpoint> seen;
    for (const char* g : {"0", "0", "1", "0"}) {
      auto ctx = p.make_context();
      REQUIRE(p.hello(ctx, std::string(g)).is_next());
      REQUIRE(p.route(ctx).is_next());
      seen.push_back(*ctx.backend);
      p.close(ctx, {});
    }
    CHECK(seen == std::vector<tcp::endpoint>{ep(9001), ep(9002), ep(9003), ep(9001)});
    CHECK(g0->find("a")->successes() == 2);
    CHECK(g1->find("c")->successes() == 1);
  }
  SECTION("a failed connect is reported and the retry avoids that backend") {
    auto ctx = p.make_context();
    REQUIRE(p.hello(ctx, std::string("0")).is_next());
    REQUIRE(p.route(ctx).is_next());
    const auto first = *ctx.backend;
    ctx.connect_error = make_error_code(rproxy::net::error::connect_refused);
    REQUIRE(p.route(ctx).is_next());
    CHECK(*ctx.backend != first);
    ctx.connect_error = {};
    p.close(ctx, {});
    CHECK(g0->find(first == ep(9001) ? "a" : "b")->failures() == 1);
  }
  SECTION("a group with no backend up: unavailable with the Retry-After hint; no group: unavailable") {
    REQUIRE(g1->update({}));
    auto ctx = p.make_context();
    REQUIRE(p.hello(ctx, std::string("1")).is_next());
    auto v = p.route(ctx);
    REQUIRE(v.is_reject());
    CHECK(v.reason().code == rproxy::reject_code::unavailable);
    CHECK(v.reason().message == "group down");
    CHECK(v.reason().retry_after_s == 3);
    p.close(ctx, {});
    auto none = p.make_context();
    REQUIRE(p.hello(none, std::string("x")).is_next());
    auto w = p.route(none);
    REQUIRE(w.is_reject());
    CHECK(w.reason().message == "no backend group");
    p.close(none, {});
  }
}

TEST_CASE("group_stage names open breakers as the cause when they are what keeps the group out", "[balance][stage]") {
  bal::pool_config pc;
  pc.breaker.consecutive_failures = 1;
  pc.breaker.cool_down = std::chrono::hours(1);
  auto g0 = std::make_shared<bal::pool>(pc);
  REQUIRE(g0->update({{"a", ep(9001), 1}}));
  using stage_t = bal::group_stage<bal::pool, bal::round_robin, select_group>;
  auto p = rproxy::make_pipeline<proto>(router{}, stage_t({g0}, {bal::round_robin{}}, select_group{},
                                                          {.no_backend = "group down", .retry_after_s = 3, .breaker_open = "breakers open"}));
  auto ctx = p.make_context();
  REQUIRE(p.hello(ctx, std::string("0")).is_next());
  REQUIRE(p.route(ctx).is_next());
  p.close(ctx, make_error_code(rproxy::net::error::backend_reset));  // one failure opens it
  auto next = p.make_context();
  REQUIRE(p.hello(next, std::string("0")).is_next());
  auto v = p.route(next);
  REQUIRE(v.is_reject());
  CHECK(v.reason() == rproxy::reject_reason{rproxy::reject_code::unavailable, "breakers open", 3, "breaker_open"});
  p.close(next, {});
  // Drained instead: no backend, not a breaker.
  g0->drain("a");
  auto third = p.make_context();
  REQUIRE(p.hello(third, std::string("0")).is_next());
  v = p.route(third);
  REQUIRE(v.is_reject());
  CHECK(v.reason().cause.empty());
  CHECK(v.reason().message == "group down");
  p.close(third, {});
}
