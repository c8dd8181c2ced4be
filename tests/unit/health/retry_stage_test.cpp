#include <rproxy/health/retry_stage.hpp>

#include <rproxy/health/retry_on.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace health = rproxy::health;
using rproxy::net::error;

namespace {

struct retry_flow : rproxy::flow_info {
  std::uint8_t retry_on = 0xff;  // the stage must set it
};
struct proto {
  using flow = retry_flow;
  using hello = std::string;
  using message = std::string;
  using response = std::string;
};
struct one_rule {
  const health::retry_rule* r;
  const health::retry_rule* operator()(const retry_flow&) const { return r; }
};

health::retry_rule rule(std::uint32_t n, std::uint8_t on, std::unique_ptr<health::retry_budget> b = nullptr) {
  health::retry_rule r;
  r.max_retries = n;
  r.on = on;
  r.retry_after_s = 4;
  r.budget = std::move(b);
  return r;
}

}  // namespace

TEST_CASE("retry_stage grants the policy's retries for its causes, then refuses", "[health][retry]") {
  auto r = rule(2, health::retry_on::connect_error | health::retry_on::reset | health::retry_on::status_503);
  auto p = rproxy::make_pipeline<proto>(health::retry_stage{one_rule{&r}});
  auto ctx = p.make_context();
  REQUIRE(p.route(ctx).is_next());
  // The exchange may bring back resets and 503s (a connect failure is the driver's own).
  CHECK(ctx.retry_on == (health::retry_on::reset | health::retry_on::status_503));
  ctx.connect_error = make_error_code(error::connect_refused);
  REQUIRE(p.route(ctx).is_next());
  CHECK(ctx.retry_on != 0);  // one retry left
  ctx.connect_error = make_error_code(error::backend_reset);
  REQUIRE(p.route(ctx).is_next());
  CHECK(ctx.retry_on == 0);  // none left: the next failure is answered by the exchange
  const auto v = p.route(ctx);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::unavailable);
  CHECK(v.reason().cause.empty());  // the adapter names the last failure (502 backend_reset)
  CHECK(ctx.state<health::retry_stage<one_rule>>().retries == 2);
}

TEST_CASE("retry_stage refuses a connect failure the policy does not list, and leaves the last attempt to the balancer",
          "[health][retry]") {
  auto r = rule(3, health::retry_on::reset);
  auto p = rproxy::make_pipeline<proto>(health::retry_stage{one_rule{&r}});
  auto ctx = p.make_context();
  REQUIRE(p.route(ctx).is_next());
  ctx.connect_error = make_error_code(error::connect_refused);
  CHECK(p.route(ctx).is_reject());
  auto ctx2 = p.make_context();
  REQUIRE(p.route(ctx2).is_next());
  ctx2.connect_error = make_error_code(error::connect_refused);
  ctx2.out_of_attempts = true;
  CHECK(p.route(ctx2).is_next());  // the balancer reports the pick and refuses
}

TEST_CASE("retry_stage without a rule leaves the flow alone", "[health][retry]") {
  auto p = rproxy::make_pipeline<proto>(health::retry_stage{one_rule{nullptr}});
  auto ctx = p.make_context();
  ctx.connect_error = make_error_code(error::connect_refused);
  CHECK(p.route(ctx).is_next());
  CHECK(ctx.retry_on == 0xff);
}

TEST_CASE("retry_stage takes retries from the budget and sheds when it is spent", "[health][retry]") {
  SECTION("an empty budget: no exchange retries, a connect failure is shed with Retry-After") {
    auto r = rule(2, health::retry_on::all, std::make_unique<health::retry_budget>(health::retry_budget_config{.ratio = 0, .min_retries_per_second = 0}));
    auto p = rproxy::make_pipeline<proto>(health::retry_stage{one_rule{&r}});
    auto ctx = p.make_context();
    REQUIRE(p.route(ctx).is_next());
    CHECK(ctx.retry_on == 0);
    ctx.connect_error = make_error_code(error::connect_refused);
    const auto v = p.route(ctx);
    REQUIRE(v.is_reject());
    CHECK(v.reason().cause == "shed");
    CHECK(v.reason().retry_after_s == 4);
    CHECK(r.budget->requests() == 1);
    CHECK(r.budget->retries() == 0);
  }
  SECTION("ratio 0.5: a retry is earned by two requests") {
    auto r = rule(1, health::retry_on::all, std::make_unique<health::retry_budget>(health::retry_budget_config{.ratio = 0.5, .min_retries_per_second = 0}));
    auto p = rproxy::make_pipeline<proto>(health::retry_stage{one_rule{&r}});
    auto a = p.make_context();
    REQUIRE(p.route(a).is_next());
    CHECK(a.retry_on == 0);  // 1 request: 0.5 retries
    auto b = p.make_context();
    REQUIRE(p.route(b).is_next());
    CHECK(b.retry_on == (health::retry_on::all & ~health::retry_on::connect_error));  // 2 requests: 1 retry
    b.connect_error = make_error_code(error::backend_reset);
    REQUIRE(p.route(b).is_next());
    CHECK(r.budget->retries() == 1);
    REQUIRE(p.route(b).is_next() == false);  // its one retry is spent
    a.connect_error = make_error_code(error::connect_refused);
    const auto v = p.route(a);  // the budget is spent too
    REQUIRE(v.is_reject());
    CHECK(v.reason().cause == "shed");
  }
}
