#include <rproxy/health/checker.hpp>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace health = rproxy::health;
namespace bal = rproxy::balance;

using rproxy::test::run_until;

tcp::endpoint ep(std::uint16_t port) { return {asio::ip::address_v4::loopback(), port}; }

/// Answers from a script per port: true = healthy. Counts calls per port; past the end of a
/// script the last answer repeats.
struct scripted_probe {
  struct shared {
    std::map<std::uint16_t, std::vector<bool>> script;
    std::map<std::uint16_t, std::size_t> calls;
  };
  std::shared_ptr<shared> s = std::make_shared<shared>();

  asio::awaitable<health::probe_result> check(asio::any_io_executor, const tcp::endpoint& e, std::chrono::milliseconds) {
    auto n = s->calls[e.port()]++;
    const auto& sc = s->script[e.port()];
    bool ok = sc.empty() ? true : sc[std::min(n, sc.size() - 1)];
    health::probe_result r;
    r.latency = 3ms;
    if (!ok) r.error = make_error_code(rproxy::net::error::connect_refused);
    co_return r;
  }
};

/// Never completes on its own (a probe ignoring its timeout); cancellable like any asio wait.
struct stuck_probe {
  std::shared_ptr<int> started = std::make_shared<int>(0);
  asio::awaitable<health::probe_result> check(asio::any_io_executor ex, const tcp::endpoint&, std::chrono::milliseconds) {
    ++*started;
    asio::steady_timer t(ex, std::chrono::hours(1));
    auto [ec] = co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    health::probe_result r;
    r.error = ec;
    co_return r;
  }
};

struct change {
  std::string id;
  bool healthy;
  std::size_t calls;  // probe calls for that backend when the verdict changed
};

}  // namespace

TEST_CASE("health_threshold: fall failures take it down, rise successes bring it back", "[health][checker]") {
  health::health_threshold t;
  REQUIRE(t.healthy());
  REQUIRE_FALSE(t.record(false, 2, 3));
  REQUIRE_FALSE(t.record(false, 2, 3));
  REQUIRE_FALSE(t.record(true, 2, 3));  // a success resets the run
  REQUIRE_FALSE(t.record(false, 2, 3));
  REQUIRE_FALSE(t.record(false, 2, 3));
  REQUIRE(t.record(false, 2, 3));
  REQUIRE_FALSE(t.healthy());
  REQUIRE_FALSE(t.record(false, 2, 3));
  REQUIRE_FALSE(t.record(true, 2, 3));
  REQUIRE_FALSE(t.record(false, 2, 3));  // a failure resets the run of successes
  REQUIRE_FALSE(t.record(true, 2, 3));
  REQUIRE(t.record(true, 2, 3));
  REQUIRE(t.healthy());

  health::health_threshold z{false};  // rise/fall of 0 act as 1
  REQUIRE(z.record(true, 0, 0));
  REQUIRE(z.record(false, 0, 0));
}

TEST_CASE("jittered_interval stays within +/- jitter and at least 1 ms", "[health][checker]") {
  std::uint64_t x = 0x12345678;
  auto lo = 1000ms, hi = 0ms;
  for (int i = 0; i < 100000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    auto d = health::jittered_interval(1000ms, 0.1, x);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  REQUIRE(lo >= 900ms);
  REQUIRE(hi <= 1100ms);
  REQUIRE(lo < 910ms);  // the whole range is used
  REQUIRE(hi > 1090ms);
  REQUIRE(health::jittered_interval(1000ms, 0.0, x) == 1000ms);
  REQUIRE(health::jittered_interval(1000ms, 5.0, 0) >= 1ms);  // clamped to 100%
  REQUIRE(health::jittered_interval(0ms, 0.1, x) == 1ms);
  REQUIRE(health::jittered_interval(1000ms, 0.5, ~0ull) <= 1500ms);
}

TEST_CASE("checker: fall failures mark a backend down in the pool, rise successes bring it back",
          "[health][checker]") {
  asio::io_context ioc;
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(1001), 1}, {"b", ep(1002), 1}}));
  scripted_probe probe;
  //                     1     2     3      4     5      6     7
  probe.s->script[1001] = {false, false, false, false, true, true, true};
  probe.s->script[1002] = {true};
  health::checker<scripted_probe> hc(ioc.get_executor(), pool, probe,
                                     {.interval = 5ms, .timeout = 1s, .jitter = 0.5, .rise = 2, .fall = 3});
  std::vector<change> changes;
  hc.on_change([&](std::string_view id, bool up, const health::probe_result& r) {
    changes.push_back({std::string(id), up, probe.s->calls[id == "a" ? 1001 : 1002]});
    if (!up) REQUIRE(r.error == rproxy::net::error::connect_refused);
  });
  hc.start();
  REQUIRE(run_until(ioc, [&] { return changes.size() >= 1; }));
  REQUIRE(changes[0].id == "a");
  REQUIRE_FALSE(changes[0].healthy);
  REQUIRE(changes[0].calls == 3);  // exactly `fall` failures
  REQUIRE_FALSE(hc.healthy("a"));
  REQUIRE(pool->find("a")->state() == bal::backend_state::unhealthy);
  REQUIRE_FALSE(pool->find("a")->available());
  bal::round_robin rr;
  for (int i = 0; i < 10; ++i) REQUIRE(rr.pick(*pool)->id() == "b");

  REQUIRE(run_until(ioc, [&] { return changes.size() >= 2; }));
  REQUIRE(changes[1].id == "a");
  REQUIRE(changes[1].healthy);
  REQUIRE(changes[1].calls == 6);  // the 5th and 6th succeed: `rise` = 2
  REQUIRE(hc.healthy("a"));
  REQUIRE(pool->find("a")->available());
  REQUIRE(hc.healthy("b"));
  hc.stop();
  REQUIRE(changes.size() == 2);
  // Successful probes fed the latency EWMA.
  REQUIRE(pool->find("b")->latency() == 3ms);
}

TEST_CASE("checker: backends added by update() are probed, removed ones forgotten", "[health][checker]") {
  asio::io_context ioc;
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(2001), 1}}));
  scripted_probe probe;
  probe.s->script[2002] = {false};
  health::checker<scripted_probe> hc(ioc.get_executor(), pool, probe,
                                     {.interval = 5ms, .timeout = 1s, .jitter = 0.1, .rise = 1, .fall = 1});
  hc.start();
  REQUIRE(run_until(ioc, [&] { return probe.s->calls[2001] >= 2; }));
  REQUIRE(hc.healthy("a"));
  REQUIRE_FALSE(hc.healthy("b"));  // unknown

  REQUIRE(pool->update({{"b", ep(2002), 1}}));
  REQUIRE(run_until(ioc, [&] { return !pool->find("b")->available(); }));
  REQUIRE_FALSE(hc.healthy("b"));
  REQUIRE_FALSE(hc.last_result("a"));  // forgotten
  auto a_calls = probe.s->calls[2001];
  REQUIRE(run_until(ioc, [&] { return probe.s->calls[2002] >= 4; }));
  REQUIRE(probe.s->calls[2001] == a_calls);
  hc.stop();
}

TEST_CASE("checker: a new checker starts from the pool's verdict", "[health][checker]") {
  asio::io_context ioc;
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(3001), 1}}));
  REQUIRE(pool->set_health("a", false));  // an earlier checker's verdict
  scripted_probe probe;
  std::vector<change> changes;
  health::checker<scripted_probe> hc(ioc.get_executor(), pool, probe,
                                     {.interval = 5ms, .timeout = 1s, .jitter = 0.1, .rise = 2, .fall = 1});
  hc.on_change([&](std::string_view id, bool up, const health::probe_result&) {
    changes.push_back({std::string(id), up, probe.s->calls[3001]});
  });
  hc.start();
  REQUIRE(run_until(ioc, [&] { return !changes.empty(); }));
  REQUIRE(changes[0].healthy);
  REQUIRE(changes[0].calls == 2);
  REQUIRE(pool->find("a")->available());
}

TEST_CASE("checker: real probes against loopback listeners", "[health][checker]") {
  asio::io_context ioc;
  tcp::acceptor live(ioc, {asio::ip::address_v4::loopback(), 0});
  std::uint16_t dead_port;
  {
    tcp::acceptor tmp(ioc, {asio::ip::address_v4::loopback(), 0});
    dead_port = tmp.local_endpoint().port();
  }
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"live", live.local_endpoint(), 1}, {"dead", ep(dead_port), 1}}));
  health::checker<health::tcp_probe> hc(ioc.get_executor(), pool, {},
                                        {.interval = 20ms, .timeout = 1s, .jitter = 0.1, .rise = 1, .fall = 2});
  hc.start();
  REQUIRE(run_until(ioc, [&] { return hc.last_result("dead") && !hc.healthy("dead"); }));
  REQUIRE(hc.last_result("dead")->error == rproxy::net::error::connect_refused);
  REQUIRE(hc.healthy("live"));
  REQUIRE(pool->find("live")->latency().count() > 0);
  REQUIRE(pool->find("live")->available());
  REQUIRE_FALSE(pool->find("dead")->available());
  hc.stop();
}

TEST_CASE("checker: stop() cancels the timer and probes in flight; nothing is left to run", "[health][checker]") {
  asio::io_context ioc;
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(4001), 1}, {"b", ep(4002), 1}}));
  stuck_probe probe;
  bool called = false;
  auto hc = std::make_unique<health::checker<stuck_probe>>(
      ioc.get_executor(), pool, probe, health::check_options{.interval = 10s, .timeout = 10s, .jitter = 0, .rise = 1, .fall = 1});
  hc->on_change([&](std::string_view, bool, const health::probe_result&) { called = true; });
  hc->start();
  REQUIRE(run_until(ioc, [&] { return *probe.started == 2; }));
  hc->stop();
  hc.reset();  // safe to destroy after stop, with the probes still unwinding
  ioc.restart();
  const auto t0 = std::chrono::steady_clock::now();
  ioc.run_for(20s);  // returns early only when no work is left: timers and probes are gone
  REQUIRE(std::chrono::steady_clock::now() - t0 < 10s);
  REQUIRE_FALSE(called);
  REQUIRE(pool->find("a")->available());
}

TEST_CASE("checker: a probe that overruns its timeout is cancelled and counts as a timeout", "[health][checker]") {
  asio::io_context ioc;
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(5001), 1}}));
  stuck_probe probe;
  std::vector<change> changes;
  health::checker<stuck_probe> hc(ioc.get_executor(), pool, probe,
                                  {.interval = 10ms, .timeout = 20ms, .jitter = 0, .rise = 1, .fall = 1});
  hc.on_change([&](std::string_view id, bool up, const health::probe_result& r) {
    changes.push_back({std::string(id), up, 0});
    REQUIRE(r.error == health::error::probe_timeout);
  });
  hc.start();
  REQUIRE(run_until(ioc, [&] { return !changes.empty(); }));
  REQUIRE_FALSE(changes[0].healthy);
  REQUIRE_FALSE(pool->find("a")->available());
  REQUIRE(*probe.started >= 1);
  hc.stop();
}

TEST_CASE("checker: runs on a multi-threaded executor", "[health][checker]") {
  asio::io_context ioc{2};
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", ep(6001), 1}, {"b", ep(6002), 1}, {"c", ep(6003), 1}}));
  scripted_probe probe;
  probe.s->script[6002] = {false, true};
  std::atomic<int> changes{0};
  auto hc = std::make_unique<health::checker<scripted_probe>>(
      ioc.get_executor(), pool, probe, health::check_options{.interval = 1ms, .timeout = 1s, .jitter = 0.2, .rise = 3, .fall = 1});
  hc->on_change([&](std::string_view, bool, const health::probe_result&) { ++changes; });
  hc->start();
  auto work = asio::make_work_guard(ioc);
  std::thread t1([&] { ioc.run(); }), t2([&] { ioc.run(); });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (changes.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  hc->stop();
  const int after_stop = changes.load();
  // Not a wait for a condition: time passes on purpose (20 intervals), in which a checker that
  // did not stop would report again.
  std::this_thread::sleep_for(20ms);
  REQUIRE(changes.load() == after_stop);  // no verdict after stop() returned
  REQUIRE(after_stop == 2);
  hc.reset();
  work.reset();
  t1.join();
  t2.join();
}
