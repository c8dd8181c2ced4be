#include <rproxy/net/idle_sweep.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using rproxy::net::idle_sweep;
using rproxy::test::run_until;
using clock_type = std::chrono::steady_clock;

/// A flow in the sweep: records its expiry in a shared log.
struct flow : idle_sweep::entry {
  std::string name;
  std::vector<std::string>* log = nullptr;
  int expired = 0;
  static void on_expire(idle_sweep::entry& e) {
    auto& f = static_cast<flow&>(e);
    ++f.expired;
    f.log->push_back(f.name);
  }
};

}  // namespace

TEST_CASE("idle_sweep: entries expire once each, least recently active first", "[net][idle_sweep]") {
  asio::io_context ioc;
  auto& sweep = asio::use_service<idle_sweep>(ioc);
  std::vector<std::string> log;
  flow a, b, c;
  a.name = "a", b.name = "b", c.name = "c";
  a.log = b.log = c.log = &log;
  const auto t0 = clock_type::now();
  sweep.add(a, 40ms, t0, &flow::on_expire);
  sweep.add(b, 40ms, t0, &flow::on_expire);
  sweep.add(c, 40ms, t0, &flow::on_expire);
  REQUIRE(sweep.size() == 3);
  sweep.touch(a, t0 + 1s);  // a is active long after the others: it goes last
  REQUIRE(run_until(ioc, [&] { return log.size() == 2; }));
  REQUIRE(log == std::vector<std::string>{"b", "c"});
  REQUIRE_FALSE(a.expired);
  REQUIRE_FALSE(b.linked());
  REQUIRE(a.linked());
  REQUIRE(run_until(ioc, [&] { return log.size() == 3; }));
  REQUIRE(log.back() == "a");
  REQUIRE(a.expired == 1);
  REQUIRE(b.expired == 1);
  REQUIRE(sweep.size() == 0);
  // Nothing left to watch: the sweep holds no timer wait, so the io_context runs out of work.
  ioc.restart();
  ioc.run_for(20s);
  REQUIRE(ioc.stopped());
  sweep.remove(a);  // no-op: it expired
  REQUIRE(sweep.size() == 0);
}

TEST_CASE("idle_sweep: lanes of different timeouts, and removed entries never expire", "[net][idle_sweep]") {
  asio::io_context ioc;
  auto& sweep = asio::use_service<idle_sweep>(ioc);
  std::vector<std::string> log;
  flow slow, fast, gone;
  slow.name = "slow", fast.name = "fast", gone.name = "gone";
  slow.log = fast.log = gone.log = &log;
  const auto t0 = clock_type::now();
  sweep.add(slow, 200ms, t0, &flow::on_expire);  // armed first for the later deadline
  sweep.add(gone, 10ms, t0, &flow::on_expire);
  sweep.add(fast, 30ms, t0, &flow::on_expire);
  sweep.remove(gone);
  REQUIRE_FALSE(gone.linked());
  REQUIRE(run_until(ioc, [&] { return log.size() == 2; }));
  REQUIRE(log == std::vector<std::string>{"fast", "slow"});
  REQUIRE_FALSE(gone.expired);
}

TEST_CASE("idle_sweep: an expiry may add and remove entries; removing the last cancels the wait", "[net][idle_sweep]") {
  asio::io_context ioc;
  auto& sweep = asio::use_service<idle_sweep>(ioc);
  std::vector<std::string> log;
  flow first, second, third;
  first.name = "first", second.name = "second", third.name = "third";
  first.log = second.log = third.log = &log;
  static flow* next_one;
  static idle_sweep* the_sweep;
  next_one = &second;
  the_sweep = &sweep;
  sweep.add(first, 10ms, clock_type::now(), [](idle_sweep::entry& e) {
    flow::on_expire(e);
    the_sweep->add(*next_one, 10ms, clock_type::now(), &flow::on_expire);  // same lane, from the sweep
  });
  REQUIRE(run_until(ioc, [&] { return log.size() == 2; }));
  REQUIRE(log == std::vector<std::string>{"first", "second"});
  // An entry watched for long and removed early: the io_context runs out of work at once.
  sweep.add(third, 1h, clock_type::now(), &flow::on_expire);
  asio::post(ioc, [&] { sweep.remove(third); });
  ioc.restart();
  ioc.run_for(20s);
  REQUIRE(ioc.stopped());
  REQUIRE_FALSE(third.expired);
}

TEST_CASE("idle_sweep: one per io_context", "[net][idle_sweep]") {
  asio::io_context a, b;
  REQUIRE(&asio::use_service<idle_sweep>(a) == &asio::use_service<idle_sweep>(a));
  REQUIRE(&asio::use_service<idle_sweep>(a) != &asio::use_service<idle_sweep>(b));
}
