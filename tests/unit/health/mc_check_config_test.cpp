// Tests for rproxy/health/mc_check_config.hpp: the Minecraft status-ping health check block,
// decoded from YAML, its checks, and the checker options it makes.
#include <rproxy/health/mc_check_config.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace mcct {
namespace cfg = rproxy::config;
struct server_config {
  std::optional<rproxy::health::mc_check_config> health_check;
  static constexpr auto describe() { return cfg::fields(cfg::doc<&server_config::health_check>("checks")); }
};
}  // namespace mcct

using namespace std::chrono_literals;

TEST_CASE("mc_check_config: absent is off; present takes its fields and makes checker options", "[health][mc][config]") {
  auto off = rproxy::config::load_string<mcct::server_config>("", "s.yaml");
  REQUIRE(off);
  CHECK_FALSE(off->health_check);
  auto on = rproxy::config::load_string<mcct::server_config>("health_check: {interval: 250ms, timeout: 1s, rise: 3}\n", "s.yaml");
  INFO((on ? std::string() : on.error().to_string()));
  REQUIRE(on);
  REQUIRE(on->health_check);
  const auto o = on->health_check->options();
  CHECK(o.interval == 250ms);
  CHECK(o.timeout == 1s);
  CHECK(o.rise == 3);
  CHECK(o.fall == 2);  // default
}

TEST_CASE("mc_check_config: rise and fall of zero and an interval under 100ms are refused", "[health][mc][config]") {
  auto r = rproxy::config::load_string<mcct::server_config>("health_check: {interval: 50ms, rise: 0, fall: 0}\n", "s.yaml");
  REQUIRE_FALSE(r);
  CHECK(r.error().size() == 3);
  const auto text = r.error().to_string();
  CHECK(text.find("s.yaml:1:") != std::string::npos);
  CHECK(text.find("must be at least 1") != std::string::npos);
  CHECK(text.find("must be at least 100ms") != std::string::npos);
}
