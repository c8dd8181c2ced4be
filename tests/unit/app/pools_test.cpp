// Tests for rproxy/app/pools.hpp: named pools with their health monitors across config versions,
// with real TCP health checks against loopback ports (one listening, one closed), every wait a
// bounded poll.
#include <rproxy/app/pools.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bal = rproxy::balance;
namespace health = rproxy::health;
namespace obs = rproxy::observe;
using asio::ip::tcp;
using rproxy::test::run_until;

/// A pool as an app's config lists it (the shape app::pools reads).
struct route {
  std::string name;
  std::vector<bal::backend_settings> backends;
  std::optional<health::check_config> health_check{};
  std::optional<health::weights_config> dynamic_weights{};
};

/// The same without health blocks (an app with a probe of its own).
struct plain_route {
  std::string name;
  std::vector<bal::backend_settings> backends;
};

bal::backend_settings at(std::uint16_t port) { return {.address = {"127.0.0.1", port}}; }
std::string id(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

health::check_config tcp_check() {
  health::check_config c;
  c.interval = 20ms;
  c.timeout = 1s;
  c.rise = 1;
  c.fall = 1;
  return c;
}

struct fixture {
  asio::io_context io;
  tcp::acceptor live{io, {asio::ip::address_v4::loopback(), 0}};  // accepts (the kernel completes the handshake)
  std::uint16_t dead = closed_port();
  std::ostringstream log_text;
  obs::logger log = obs::make_logger(obs::log_format::text, obs::log_level::info,
                                     std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  obs::registry reg;
  rproxy::app::pools pools{io.get_executor(), log, &reg};

  // As an app's runtime does at shutdown: stop the checks, then let the loop finish the probes
  // they cancelled (it runs out of work; the bound only keeps a bug from hanging the test).
  ~fixture() {
    pools.stop();
    io.restart();
    io.run_for(5s);
  }

  std::uint16_t port() const { return live.local_endpoint().port(); }
  std::uint16_t closed_port() {
    tcp::acceptor tmp(io, {asio::ip::address_v4::loopback(), 0});
    return tmp.local_endpoint().port();
  }
  bool healthy(const char* pool, std::uint16_t p) {
    auto b = pools.get(pool)->find(id(p));
    return b && b->state() == bal::backend_state::healthy;
  }
  /// Starts a flow on the backend and ends it well: one selection, one success.
  void use(const std::shared_ptr<bal::upstream_pool>& pool, std::uint16_t p) {
    auto h = pool->acquire(pool->find(id(p)));
    REQUIRE(h);
    h->succeed();
  }
  std::string metrics() { return reg.serialize_prometheus(); }
};

}  // namespace

TEST_CASE("pools: a pool listed again with the same settings keeps its backends, counters and monitor", "[app][pools]") {
  fixture f;
  const std::vector<route> v1{{"a", {at(f.port()), at(f.dead)}, tcp_check()}};
  REQUIRE(f.pools.update(v1));
  auto pool = f.pools.get("a");
  auto* monitor = f.pools.monitor("a");
  REQUIRE(pool);
  REQUIRE(monitor);
  REQUIRE(run_until(f.io, [&] { return !f.healthy("a", f.dead); }));  // the checks run
  f.use(pool, f.port());

  REQUIRE(f.pools.update(v1));
  CHECK(f.pools.get("a") == pool);
  CHECK(f.pools.monitor("a") == monitor);
  CHECK(pool->find(id(f.port()))->selections() == 1);
  CHECK(pool->find(id(f.port()))->successes() == 1);
  CHECK_FALSE(f.healthy("a", f.dead));  // its verdict stays
  CHECK(f.healthy("a", f.port()));
}

TEST_CASE("pools: a changed pool is updated in place; its checker starts when its block appears", "[app][pools]") {
  fixture f;
  const auto other = f.closed_port();
  REQUIRE(f.pools.update(std::vector<route>{{"a", {at(f.port()), at(f.dead)}}}));
  auto pool = f.pools.get("a");
  f.use(pool, f.port());
  CHECK(f.healthy("a", f.dead));  // no checks yet

  REQUIRE(f.pools.update(std::vector<route>{{"a", {at(f.port()), at(other)}, tcp_check()}}));
  CHECK(f.pools.get("a") == pool);
  CHECK(pool->find(id(f.port()))->selections() == 1);  // kept under the same address
  CHECK(pool->find(id(other))->selections() == 0);      // new
  CHECK(pool->find(id(f.dead)) == nullptr);             // dropped
  REQUIRE(run_until(f.io, [&] { return !f.healthy("a", other); }));
  CHECK(f.healthy("a", f.port()));
}

TEST_CASE("pools: a pool no longer listed stops its checks and series; listed again it comes back", "[app][pools]") {
  fixture f;
  const std::vector<route> both{{"a", {at(f.port()), at(f.dead)}, tcp_check()}, {"b", {at(f.port())}}};
  REQUIRE(f.pools.update(both));
  auto pool = f.pools.get("a");
  REQUIRE(run_until(f.io, [&] { return !f.healthy("a", f.dead); }));
  f.use(pool, f.port());
  CHECK(f.metrics().find("route=\"a\"") != std::string::npos);

  REQUIRE(f.pools.update(std::vector<route>{{"b", {at(f.port())}}}));
  CHECK(f.pools.get("a") == nullptr);
  CHECK(f.pools.monitor("a") == nullptr);
  CHECK(f.pools.get("b") != nullptr);
  CHECK(f.metrics().find("rproxy_backend_up{route=\"a\"") == std::string::npos);
  CHECK(f.metrics().find("rproxy_backend_up{route=\"b\"") != std::string::npos);
  CHECK(f.log_text.str().find("pool no longer listed") != std::string::npos);
  // No checker is left to see the live backend stop listening.
  const auto live = f.port();
  f.live.close();
  f.io.restart();
  f.io.run_for(200ms);  // ten check intervals
  CHECK(pool->find(id(live))->state() == bal::backend_state::healthy);

  REQUIRE(f.pools.update(both));
  CHECK(f.pools.get("a") == pool);  // the same pool, counters included
  CHECK(pool->find(id(live))->selections() == 1);
  REQUIRE(run_until(f.io, [&] { return !f.healthy("a", live); }));  // its checks run again
}

TEST_CASE("pools: a list with a backend twice changes nothing", "[app][pools]") {
  fixture f;
  REQUIRE(f.pools.update(std::vector<route>{{"a", {at(f.port())}}}));
  auto pool = f.pools.get("a");
  CHECK_FALSE(f.pools.update(std::vector<route>{{"a", {at(f.dead)}}, {"c", {at(f.port()), at(f.port())}}}));
  CHECK(f.pools.get("a") == pool);
  CHECK(pool->find(id(f.port())) != nullptr);
  CHECK(pool->find(id(f.dead)) == nullptr);
  CHECK(f.pools.get("c") == nullptr);
  CHECK(f.log_text.str().find("listed twice") != std::string::npos);
}

TEST_CASE("pools: an app's own checker on monitor() outlives update(); stop_checks() ends it", "[app][pools]") {
  fixture f;
  const std::vector<plain_route> v{{"mc", {at(f.port()), at(f.dead)}}};
  REQUIRE(f.pools.update(v));
  f.pools.monitor("mc")->check_with(health::tcp_probe{}, tcp_check().options());
  REQUIRE(run_until(f.io, [&] { return !f.healthy("mc", f.dead); }));
  REQUIRE(f.pools.update(v));
  const auto live = f.port();
  f.live.close();
  REQUIRE(run_until(f.io, [&] { return !f.healthy("mc", live); }));  // still checking
  f.pools.monitor("mc")->stop_checks();
  CHECK(f.healthy("mc", f.dead));  // nothing keeps them out any more
  CHECK(f.healthy("mc", live));
}

TEST_CASE("pools: load-report counts are exported for pools whose items have dynamic_weights", "[app][pools]") {
  fixture f;
  REQUIRE(f.pools.update(std::vector<route>{{"a", {at(f.port())}}}));
  REQUIRE(f.pools.update(std::vector<plain_route>{{"p", {at(f.port())}}}));
  const auto m = f.metrics();
  CHECK(m.find("rproxy_load_reports_total{route=\"a\",result=\"ok\"} 0") != std::string::npos);
  CHECK(m.find("route=\"p\",result=") == std::string::npos);
}

namespace {
/// A pool with settings it keeps for life (a backend group with a breaker).
struct group {
  std::string name;
  std::vector<bal::backend_settings> backends;
  std::optional<health::check_config> health_check{};
  std::uint32_t breaker_failures = 0;  // 0: no breaker
  bal::pool_config pool_settings() const {
    bal::pool_config c;
    if (breaker_failures > 0) c.breaker.consecutive_failures = breaker_failures;
    return c;
  }
};
}  // namespace

TEST_CASE("pools: other pool settings make a new pool and monitor; the same settings keep them", "[app][pools]") {
  fixture f;
  REQUIRE(f.pools.update(std::vector<group>{{"g", {at(f.port())}, tcp_check(), 0}}));
  auto pool = f.pools.get("g");
  f.use(pool, f.port());
  REQUIRE(f.pools.update(std::vector<group>{{"g", {at(f.port())}, tcp_check(), 0}}));
  CHECK(f.pools.get("g") == pool);

  REQUIRE(f.pools.update(std::vector<group>{{"g", {at(f.port()), at(f.dead)}, tcp_check(), 2}}));
  auto next = f.pools.get("g");
  REQUIRE(next);
  CHECK(next != pool);
  CHECK(next->find(id(f.port()))->selections() == 0);  // a fresh pool
  // Its breaker opens after two failures (the old pool had none).
  for (int i = 0; i < 2; ++i) {
    auto h = next->acquire(next->find(id(f.port())));
    REQUIRE(h);
    h->fail();
  }
  CHECK(next->find(id(f.port()))->stats().breaker == health::breaker_state::open);
  // The new monitor checks the new pool (and the old pool is left to the flows holding it).
  REQUIRE(run_until(f.io, [&] { return !f.healthy("g", f.dead); }));
  CHECK(pool->find(id(f.dead)) == nullptr);
  CHECK(f.metrics().find("rproxy_load_reports_total{route=\"g\"") == std::string::npos);  // no dynamic_weights: none
}
