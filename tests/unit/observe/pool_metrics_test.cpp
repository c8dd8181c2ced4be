#include <rproxy/observe/pool_metrics.hpp>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/observe/registry.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace bal = rproxy::balance;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

tcp::endpoint ep(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

}  // namespace

TEST_CASE("pool_metrics: a series per backend, labelled by route and backend", "[observe][pool_metrics]") {
  rproxy::observe::registry reg;
  auto pm = rproxy::observe::pool_metrics::add_to(reg);
  bal::pool_config pc;
  pc.outlier.consecutive_failures = 1;
  pc.outlier.max_ejected_percent = 100;
  auto pool = std::make_shared<bal::pool>(pc);
  REQUIRE(pool->update({{"a", ep(9001), 3}, {"b", ep(9002), 1}}));
  pm->track("web", pool);

  bal::round_robin rr;
  auto h = rr.pick(*pool);
  REQUIRE(h->id() == "a");
  h->observe_latency(250ms);
  auto h2 = rr.pick(*pool);
  REQUIRE(h2->id() == "b");
  h2->finish(rproxy::net::error::connect_refused);  // failure, then ejection
  REQUIRE(pool->set_health("a", false));

  const auto text = reg.serialize_prometheus();
  CHECK(has_line(text, R"(rproxy_backend_selections_total{route="web",backend="a"} 1)"));
  CHECK(has_line(text, R"(rproxy_backend_failures_total{route="web",backend="b"} 1)"));
  CHECK(has_line(text, R"(rproxy_backend_successes_total{route="web",backend="a"} 0)"));
  CHECK(has_line(text, R"(rproxy_backend_ejections_total{route="web",backend="b"} 1)"));
  CHECK(has_line(text, R"(rproxy_backend_state{route="web",backend="b",state="ejected"} 1)"));
  CHECK(has_line(text, R"(rproxy_backend_state{route="web",backend="b",state="healthy"} 0)"));
  CHECK(has_line(text, R"(rproxy_backend_state{route="web",backend="a",state="unhealthy"} 1)"));
  CHECK(has_line(text, R"(rproxy_backend_up{route="web",backend="a"} 0)"));
  CHECK(has_line(text, R"(rproxy_backend_in_flight{route="web",backend="a"} 1)"));
  CHECK(has_line(text, R"(rproxy_backend_weight{route="web",backend="a"} 3)"));
  CHECK(has_line(text, R"(rproxy_backend_latency_ewma_seconds{route="web",backend="a"} 0.25)"));
  CHECK(has_line(text, R"(rproxy_backend_breaker_state{route="web",backend="a",state="closed"} 1)"));
  CHECK(text.find("# TYPE rproxy_backend_selections_total counter") != std::string::npos);
  CHECK(text.find("# TYPE rproxy_backend_up gauge") != std::string::npos);
}

TEST_CASE("pool_metrics: track() after an update follows the backends; untrack() drops a route",
          "[observe][pool_metrics]") {
  rproxy::observe::registry reg;
  auto pm = rproxy::observe::pool_metrics::add_to(reg);
  auto p1 = std::make_shared<bal::pool>();
  auto p2 = std::make_shared<bal::pool>();
  REQUIRE(p1->update({{"a", ep(9001), 1}, {"b", ep(9002), 1}}));
  REQUIRE(p2->update({{"a", ep(9101), 1}}));
  pm->track("one", p1);
  pm->track("two", p2);
  auto text = reg.serialize_prometheus();
  REQUIRE(has_line(text, R"(rproxy_backend_up{route="one",backend="b"} 1)"));
  REQUIRE(has_line(text, R"(rproxy_backend_up{route="two",backend="a"} 1)"));

  REQUIRE(p1->update({{"a", ep(9001), 2}, {"c", ep(9003), 1}}));
  pm->track("one", p1);
  text = reg.serialize_prometheus();
  REQUIRE(text.find(R"(backend="b")") == std::string::npos);
  REQUIRE(has_line(text, R"(rproxy_backend_up{route="one",backend="c"} 1)"));
  REQUIRE(has_line(text, R"(rproxy_backend_weight{route="one",backend="a"} 2)"));
  p1->set_weight("a", 7);
  REQUIRE(has_line(reg.serialize_prometheus(), R"(rproxy_backend_weight{route="one",backend="a"} 7)"));

  pm->untrack("one");
  text = reg.serialize_prometheus();
  REQUIRE(text.find(R"(route="one")") == std::string::npos);
  REQUIRE(has_line(text, R"(rproxy_backend_up{route="two",backend="a"} 1)"));
  REQUIRE_THROWS_AS(rproxy::observe::pool_metrics::add_to(reg), std::invalid_argument);  // once per registry
}
