#include <rproxy/balance/stage.hpp>

#include <rproxy/balance/consistent_hash.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace bal = rproxy::balance;
using asio::ip::tcp;

namespace {

tcp::endpoint ep(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

// A stage that stands in for a router: puts a hostname into the flow.
struct host_flow : rproxy::flow_info {
  std::string host;
};
struct host_protocol {
  using flow = host_flow;
  using hello = std::string;
  using message = std::string;
  using response = std::string;
};
struct host_router {
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const std::string& host) {
    ctx.host = host;
    return rproxy::next;
  }
};

}  // namespace

TEST_CASE("the stage sets ctx.backend and releases it on close", "[balance][stage]") {
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}}));
  auto p = rproxy::make_pipeline(bal::make_stage(pool, bal::round_robin{}));
  using stage_t = bal::stage<bal::round_robin>;
  STATIC_REQUIRE_FALSE(decltype(p)::is_async(rproxy::phase::route));

  auto c1 = p.make_context();
  REQUIRE(p.route(c1).is_next());
  REQUIRE(c1.backend == ep(9001));
  auto c2 = p.make_context();
  REQUIRE(p.route(c2).is_next());
  REQUIRE(c2.backend == ep(9002));
  REQUIRE(pool->find("a")->in_flight() == 1);
  REQUIRE(c1.state<stage_t>().handle);

  p.close(c1, {});
  REQUIRE(pool->find("a")->in_flight() == 0);
  REQUIRE(pool->find("a")->successes() == 1);
  p.close(c2, std::error_code(bal::error::no_backend));  // an upstream error: a failure
  REQUIRE(pool->find("b")->in_flight() == 0);
  REQUIRE(pool->find("b")->failures() == 1);

  auto c3 = p.make_context();
  REQUIRE(p.route(c3).is_next());
  p.close(c3, std::make_error_code(std::errc::connection_reset));  // not ours to judge: no outcome
  REQUIRE(pool->find("a")->successes() == 1);
  REQUIRE(pool->find("a")->failures() == 0);
}

TEST_CASE("the stage rejects with unavailable when no backend is", "[balance][stage]") {
  auto pool = std::make_shared<bal::pool>();
  auto p = rproxy::make_pipeline(bal::make_stage(pool, bal::least_conn{}));
  auto ctx = p.make_context();
  auto v = p.route(ctx);
  REQUIRE(v.is_reject());
  REQUIRE(v.reason().code == rproxy::reject_code::unavailable);
  REQUIRE_FALSE(ctx.backend);
  p.close(ctx, {});

  REQUIRE(pool->update({{"a", ep(9001), 1}}));
  REQUIRE(pool->set_health("a", false));
  auto ctx2 = p.make_context();
  REQUIRE(p.route(ctx2).is_reject());
  REQUIRE(pool->set_health("a", true));
  REQUIRE(p.route(ctx2).is_next());
}

TEST_CASE("a re-route releases the earlier pick", "[balance][stage]") {
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}}));
  auto p = rproxy::make_pipeline(bal::make_stage(pool, bal::round_robin{}));
  auto ctx = p.make_context();
  REQUIRE(p.route(ctx).is_next());
  REQUIRE(p.route(ctx).is_next());
  REQUIRE(ctx.backend == ep(9002));
  REQUIRE(pool->find("a")->in_flight() == 0);
  REQUIRE(pool->find("b")->in_flight() == 1);
  p.close(ctx, {});
  REQUIRE(pool->find("b")->in_flight() == 0);
}

TEST_CASE("the stage hashes a key chosen by the caller", "[balance][stage]") {
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}, {"c", ep(9003), 1}}));
  auto by_host = [](const auto& ctx) { return std::string_view{ctx.host}; };
  auto p = rproxy::make_pipeline<host_protocol>(host_router{},
                                                bal::make_stage(pool, bal::consistent_hash{}, by_host));
  auto route = [&](const std::string& host) {
    auto ctx = p.make_context();
    REQUIRE(p.hello(ctx, host).is_next());
    REQUIRE(p.route(ctx).is_next());
    auto b = *ctx.backend;
    p.close(ctx, {});
    return b;
  };
  auto first = route("play.example.net");
  for (int i = 0; i < 10; ++i) REQUIRE(route("play.example.net") == first);
  bool spread = false;
  for (int i = 0; i < 50; ++i) spread |= route("host-" + std::to_string(i) + ".example.net") != first;
  REQUIRE(spread);
}

TEST_CASE("the default key is the client address", "[balance][stage]") {
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}, {"c", ep(9003), 1}}));
  auto p = rproxy::make_pipeline(bal::make_stage(pool, bal::consistent_hash{}));
  auto route = [&](const char* ip) {
    auto ctx = p.make_context();
    ctx.client = tcp::endpoint(asio::ip::make_address(ip), 40000);
    REQUIRE(p.route(ctx).is_next());
    auto b = *ctx.backend;
    p.close(ctx, {});
    return b;
  };
  auto first = route("203.0.113.9");
  for (int i = 0; i < 10; ++i) REQUIRE(route("203.0.113.9") == first);
}

TEST_CASE("a retry after a failed connect reports the failure and avoids that backend", "[balance][stage]") {
  const std::error_code refused = rproxy::net::error::connect_refused;
  auto check = [&](auto balancer) {
    bal::pool_config pc;
    pc.outlier.consecutive_failures = 0;  // no ejections: every backend stays available
    auto pool = std::make_shared<bal::pool>(pc);
    REQUIRE(pool->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}, {"c", ep(9003), 1}}));
    auto p = rproxy::make_pipeline(bal::make_stage(pool, balancer));
    for (int flow = 0; flow < 20; ++flow) {
      auto ctx = p.make_context();
      ctx.client = tcp::endpoint(asio::ip::make_address("198.51.100.7"), 40000);
      REQUIRE(p.route(ctx).is_next());
      const auto first = *ctx.backend;
      ctx.connect_error = refused;  // what the flow driver does before a retry
      REQUIRE(p.route(ctx).is_next());
      const auto second = *ctx.backend;
      REQUIRE(second != first);
      ctx.connect_error = refused;
      REQUIRE(p.route(ctx).is_next());
      REQUIRE(*ctx.backend != first);
      REQUIRE(*ctx.backend != second);
      ctx.connect_error = {};
      p.close(ctx, {});
    }
    std::uint64_t failures = 0, in_flight = 0;
    for (const auto& b : pool->snapshot()->backends) {
      failures += b->failures();
      in_flight += b->in_flight();
    }
    REQUIRE(failures == 40);  // every failed pick was counted (outlier detection saw them)
    REQUIRE(in_flight == 0);
  };
  check(bal::round_robin{});
  check(bal::least_conn{});
  check(bal::consistent_hash{});  // same key, same answer: the fallback picks another
}

TEST_CASE("a re-route without a connect error reports nothing; with one backend it is retried", "[balance][stage]") {
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(9001), 1}}));
  auto p = rproxy::make_pipeline(bal::make_stage(pool, bal::consistent_hash{}));
  auto ctx = p.make_context();
  REQUIRE(p.route(ctx).is_next());
  REQUIRE(p.route(ctx).is_next());
  REQUIRE(pool->find("a")->failures() == 0);
  ctx.connect_error = rproxy::net::error::connect_timeout;
  REQUIRE(p.route(ctx).is_next());  // nothing else: the same backend again
  REQUIRE(ctx.backend == ep(9001));
  REQUIRE(pool->find("a")->failures() == 1);
  REQUIRE(pool->find("a")->in_flight() == 1);
  p.close(ctx, ctx.connect_error);
  REQUIRE(pool->find("a")->failures() == 2);
  REQUIRE(pool->find("a")->in_flight() == 0);
}
