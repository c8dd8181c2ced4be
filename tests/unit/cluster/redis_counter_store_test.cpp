// cluster::redis_counter_store: exact decisions agree with the local store's algorithm, two
// "instances" (two clients, two stores) share one limit, batched counts stay within their bound,
// and Redis going away applies the route's failure policy.
#include <rproxy/cluster/redis_counter_store.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "redis_server.hpp"
#include "redis_test_options.hpp"
#include "run_until.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;
namespace mw = rproxy::middleware;

namespace {

mw::rate_decision acquire(asio::io_context& io, cl::redis_counter_store& s, std::string_view key, const mw::rate_policy& p) {
  mw::rate_decision d;
  bool done = false;
  std::exception_ptr err;
  asio::co_spawn(io, s.async_acquire(key, p, mw::rate_clock::now()), [&](std::exception_ptr e, mw::rate_decision r) {
    err = e;
    d = r;
    done = true;
  });
  REQUIRE(rproxy::test::run_until(io, [&] { return done; }));
  if (err) std::rethrow_exception(err);
  return d;
}

mw::rate_policy policy(mw::rate_algorithm a, std::uint32_t limit, std::chrono::nanoseconds window, mw::rate_mode mode,
                       mw::rate_failure f = mw::rate_failure::local) {
  mw::rate_policy p;
  p.rule.algorithm = a;
  p.rule.limit = limit;
  p.rule.window = window;
  p.sharing = {mode, f};
  return p;
}

}  // namespace

TEST_CASE("exact: the script's decisions are the local store's, for both algorithms and penalties", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_client c(io.get_executor(), rproxy::test::redis_options_for(rs));
  c.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c.ready(); }));
  mw::local_counter_store fallback, oracle;
  cl::redis_counter_store store(&c, fallback);

  for (auto algo : {mw::rate_algorithm::token_bucket, mw::rate_algorithm::sliding_window}) {
    auto p = policy(algo, 5, 60s, mw::rate_mode::exact);
    p.penalty.after = 2;
    p.penalty.block = 30s;
    const std::string key = algo == mw::rate_algorithm::token_bucket ? "tb" : "sw";
    for (int i = 0; i < 9; ++i) {
      auto got = acquire(io, store, key, p);
      auto want = oracle.acquire(key, p, mw::rate_clock::now());
      INFO("algorithm " << int(algo) << " request " << i);
      CHECK(got.allowed == want.allowed);
      CHECK(got.blocked == want.blocked);
      CHECK(got.remaining == want.remaining);
      CHECK(got.limit == want.limit);
      // times come from two clocks a few ms apart; both are around a minute or the block. A
      // sliding window's reset is its oldest slot's end: when a slot boundary falls between the
      // two clocks' readings, the two resets are one slot (window / slots) apart.
      const auto slack = algo == mw::rate_algorithm::sliding_window ? p.rule.window / p.rule.slots + 1s : std::chrono::nanoseconds(1s);
      CHECK(std::chrono::abs(got.retry_after - want.retry_after) < slack);
      CHECK(std::chrono::abs(got.reset - want.reset) < slack);
    }
  }
  CHECK(store.stats().exact == 18);
  CHECK(store.stats().fallback == 0);
  CHECK(fallback.size() == 0);
  CHECK(rs.command({"EXISTS", "t:rl{tb}"}) == "1");
}

TEST_CASE("exact: two instances together admit exactly the limit", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_client c1(io.get_executor(), rproxy::test::redis_options_for(rs)), c2(io.get_executor(), rproxy::test::redis_options_for(rs));
  c1.start();
  c2.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c1.ready() && c2.ready(); }));
  mw::local_counter_store l1, l2;
  cl::redis_counter_store s1(&c1, l1), s2(&c2, l2);
  for (auto algo : {mw::rate_algorithm::token_bucket, mw::rate_algorithm::sliding_window}) {
    const auto p = policy(algo, 20, 60s, mw::rate_mode::exact);
    const std::string key = "shared" + std::to_string(int(algo));
    int admitted = 0;
    for (int i = 0; i < 60; ++i) admitted += acquire(io, i % 2 ? s2 : s1, key, p).allowed ? 1 : 0;
    CHECK(admitted == 20);
  }
}

TEST_CASE("batched: two instances stay within limit + one interval, and learn each other's counts", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_client c1(io.get_executor(), rproxy::test::redis_options_for(rs)), c2(io.get_executor(), rproxy::test::redis_options_for(rs));
  c1.start();
  c2.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c1.ready() && c2.ready(); }));
  mw::local_counter_store l1, l2;
  cl::redis_counter_store s1(&c1, l1, {.sync_interval = 20ms}), s2(&c2, l2, {.sync_interval = 20ms});
  s1.start();
  s2.start();
  const auto p = policy(mw::rate_algorithm::sliding_window, 30, 60s, mw::rate_mode::batched);
  // Instance 1 alone, before any sync: it admits up to the limit by itself.
  int a1 = 0;
  for (int i = 0; i < 40; ++i) a1 += acquire(io, s1, "k", p).allowed ? 1 : 0;
  CHECK(a1 == 30);
  CHECK(s1.stats().batched == 40);
  // Its counts reach Redis at its next sync (the window's counter; its index is Redis' clock's).
  auto window_total = [&] {
    return rs.command({"EVAL", "local k = redis.call('KEYS', ARGV[1]) if #k == 0 then return 0 end return redis.call('GET', k[1])", "0",
                       "t:rlb{k}:*"});
  };
  REQUIRE(rproxy::test::run_until(io, [&] { return window_total() == "30"; }));
  // Instance 2 admits its first request (it has not heard of the others yet); its first sync
  // brings back the total, and it admits nothing more.
  int a2 = acquire(io, s2, "k", p).allowed ? 1 : 0;
  CHECK(a2 == 1);
  REQUIRE(rproxy::test::run_until(io, [&] { return s2.stats().syncs >= 2; }));  // the first answer came (a second send followed it)
  for (int i = 0; i < 20; ++i) a2 += acquire(io, s2, "k", p).allowed ? 1 : 0;
  CHECK(a2 == 1);
  CHECK(window_total() == "31");
  // the bound: the limit plus what instance 2 admitted before it learned the total
  CHECK(a1 + a2 <= 30 + 1);
}

TEST_CASE("Redis down: the route's failure policy decides (local, open, closed)", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_client c(io.get_executor(), rproxy::test::redis_options_for(rs));
  c.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c.ready(); }));
  rs.kill();
  REQUIRE(rproxy::test::run_until(io, [&] { return !c.ready(); }));
  mw::local_counter_store local;
  cl::redis_counter_store store(&c, local);
  auto p = policy(mw::rate_algorithm::token_bucket, 2, 60s, mw::rate_mode::exact, mw::rate_failure::local);
  int admitted = 0;
  for (int i = 0; i < 5; ++i) admitted += acquire(io, store, "a", p).allowed ? 1 : 0;
  CHECK(admitted == 2);  // counted here
  p.sharing.on_failure = mw::rate_failure::open;
  admitted = 0;
  for (int i = 0; i < 5; ++i) admitted += acquire(io, store, "b", p).allowed ? 1 : 0;
  CHECK(admitted == 5);
  p.sharing.on_failure = mw::rate_failure::closed;
  auto d = acquire(io, store, "c", p);
  CHECK(!d.allowed);
  CHECK(d.retry_after == 1s);
  p.sharing.mode = mw::rate_mode::batched;
  CHECK(!acquire(io, store, "d", p).allowed);
  CHECK(store.stats().fallback == 12);
  CHECK(store.stats().exact == 0);
}
