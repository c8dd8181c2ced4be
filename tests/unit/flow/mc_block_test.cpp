// Tests for rproxy/flow/mc_block.hpp: the Minecraft limits block, decoded from YAML, and the
// configs it makes for the driver, the rate_limit stage and the conn_limit stage.
#include <catch2/catch.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/flow/mc_block.hpp>

#include <chrono>
#include <string>

namespace {
namespace cfg = rproxy::config;
using namespace std::chrono_literals;

struct app_config {
  rproxy::flow::mc_limits_block limits{};
  static constexpr auto describe() { return cfg::fields(cfg::doc<&app_config::limits>("limits")); }
};
}  // namespace

TEST_CASE("mc_limits_block: defaults make one tier with a login and a status limit", "[mc][config]") {
  const rproxy::flow::mc_limits_block b{};
  const auto rl = b.rate_limit();
  const auto* login = rl.find_rule("default", "login");
  const auto* status = rl.find_rule("default", "status");
  REQUIRE(login != nullptr);
  REQUIRE(status != nullptr);
  CHECK(login->limit == 10);
  CHECK(login->window == 10s);
  CHECK(status->limit == 30);
  CHECK(rl.find_rule("default", "request") == nullptr);
  CHECK(rl.reject_message == "You are connecting too fast. Please wait.");
  const auto cl = b.conn_limit();
  CHECK(cl.max_per_ip == 16);
  CHECK(cl.max_total == 0);
}

TEST_CASE("mc_limits_block: from YAML; a zero limit is no limit; timeouts reach the driver", "[mc][config]") {
  auto r = cfg::load_string<app_config>(
      "limits:\n  handshake_timeout: 2s\n  connect_timeout: 750ms\n  connections_per_ip: 0\n  max_connections: 500\n"
      "  login: {limit: 0}\n  status: {limit: 5, window: 1m}\n  message: slow down\n");
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r);
  const auto rl = r->limits.rate_limit();
  CHECK(rl.find_rule("default", "login") == nullptr);
  const auto* status = rl.find_rule("default", "status");
  REQUIRE(status != nullptr);
  CHECK(status->limit == 5);
  CHECK(status->window == 1min);
  CHECK(rl.reject_message == "slow down");
  const auto cl = r->limits.conn_limit();
  CHECK(cl.max_per_ip == 0);
  CHECK(cl.max_total == 500);
  rproxy::flow::options o;
  r->limits.apply(o);
  CHECK(o.hello_timeout == 2s);
  CHECK(o.connect_timeout == 750ms);

  auto typo = cfg::load_string<app_config>("limits: {login: {limt: 3}}\n", "main.yaml");
  REQUIRE_FALSE(typo);
  CHECK(typo.error()[0].to_string() == "main.yaml:1:18: unknown key 'limt' (did you mean 'limit'?)");
}
