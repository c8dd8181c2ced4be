#include <rproxy/health/power_state.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>

using rproxy::health::power;
using rproxy::health::power_state;
using namespace std::chrono_literals;

namespace {
const auto t0 = power_state::clock::now();
}

TEST_CASE("power_state: a group that cannot be woken is offline when unreachable, online when reachable", "[health]") {
  power_state s;
  CHECK(s.current() == power::online);
  CHECK(s.unreachable(t0, std::nullopt) == power::offline);
  CHECK(s.current() == power::offline);
  s.reachable(t0 + 1s);
  CHECK(s.current() == power::online);
}

TEST_CASE("power_state: a wakeable group sleeps, starts once per start_timeout, and shows starting meanwhile", "[health]") {
  power_state s;
  CHECK(s.unreachable(t0, 2min) == power::sleeping);
  CHECK(s.begin_start(t0, 2min));
  CHECK_FALSE(s.begin_start(t0 + 1min, 2min));        // a start is under way
  CHECK(s.unreachable(t0 + 1min, 2min) == power::starting);
  CHECK(s.unreachable(t0 + 2min, 2min) == power::sleeping);  // the start timed out
  CHECK(s.begin_start(t0 + 2min, 2min));               // the next client starts it again
  s.reachable(t0 + 3min);
  CHECK(s.current() == power::online);
  CHECK(s.unreachable(t0 + 3min, std::nullopt) == power::offline);
}

TEST_CASE("power_state: begin_sleep only once online with no clients for the idle timeout", "[health]") {
  power_state s;
  s.unreachable(t0, 10min);
  s.reachable(t0);                                     // online from t0: idle since t0
  CHECK_FALSE(s.begin_sleep(t0 + 9min, 10min));
  s.joined();
  CHECK_FALSE(s.begin_sleep(t0 + 20min, 10min));       // a client is on
  s.left(t0 + 20min);                                  // idle again from here
  CHECK_FALSE(s.begin_sleep(t0 + 29min, 10min));
  CHECK(s.begin_sleep(t0 + 30min, 10min));
  CHECK(s.current() == power::sleeping);
  CHECK_FALSE(s.begin_sleep(t0 + 60min, 10min));       // already sleeping
}
