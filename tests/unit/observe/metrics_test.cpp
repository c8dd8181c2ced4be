#include <rproxy/observe/metrics.hpp>
#include <rproxy/observe/worker_index.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

namespace obs = rproxy::observe;

namespace {

// Runs fn(i) on `n` threads, each marked as worker i, and joins them.
template <class F>
void on_workers(std::size_t n, F fn) {
  std::vector<std::thread> ts;
  for (std::size_t i = 0; i < n; ++i)
    ts.emplace_back([i, &fn] {
      obs::set_worker_index(i);
      fn(i);
    });
  for (auto& t : ts) t.join();
}

}  // namespace

TEST_CASE("worker index is per thread and defaults to 0", "[observe]") {
  REQUIRE(obs::worker_index() == 0);
  std::size_t seen = 99;
  std::thread([&] {
    obs::set_worker_index(3);
    seen = obs::worker_index();
  }).join();
  CHECK(seen == 3);
  CHECK(obs::worker_index() == 0);  // this thread is unaffected
}

TEST_CASE("shards are cache-line sized and aligned", "[observe]") {
  STATIC_REQUIRE(sizeof(obs::detail::padded_atomic<std::uint64_t>) == obs::cache_line_size);
  STATIC_REQUIRE(alignof(obs::detail::padded_atomic<std::uint64_t>) == obs::cache_line_size);
  STATIC_REQUIRE(sizeof(obs::detail::word_line) == obs::cache_line_size);
  STATIC_REQUIRE(std::atomic<std::uint64_t>::is_always_lock_free);
}

TEST_CASE("counter sums increments from 4 workers", "[observe]") {
  obs::counter c{4};
  constexpr int per_thread = 100000;
  on_workers(4, [&](std::size_t i) {
    for (int k = 0; k < per_thread; ++k) c.inc();
    c.inc(i);  // 0 + 1 + 2 + 3
  });
  CHECK(c.value() == 4u * per_thread + 6u);
  CHECK(c.shards() == 4);
}

TEST_CASE("a worker index past the shard count wraps around", "[observe]") {
  obs::counter c{2};
  on_workers(5, [&](std::size_t) { c.inc(10); });
  CHECK(c.value() == 50);
  obs::counter one{1};
  one.inc();
  CHECK(one.value() == 1);
  CHECK_THROWS_AS(obs::counter{0}, std::invalid_argument);
}

TEST_CASE("gauge: adds and subtracts across workers net out", "[observe]") {
  obs::gauge g{4};
  // Each connection opens on worker i and closes on worker (i + 1) % 4: shards go negative,
  // the sum is still exact.
  on_workers(4, [&](std::size_t) {
    for (int k = 0; k < 50000; ++k) g.inc();
  });
  CHECK(g.value() == 200000);
  on_workers(4, [&](std::size_t i) {
    for (int k = 0; k < 50000 - static_cast<int>(i); ++k) g.dec();
    g.sub(0);
  });
  CHECK(g.value() == 6);  // 0 + 1 + 2 + 3 left open
  g.add(-6);
  CHECK(g.value() == 0);
}

TEST_CASE("gauge: set makes the sum equal to the value", "[observe]") {
  obs::gauge g{4};
  on_workers(4, [&](std::size_t i) { g.add(static_cast<std::int64_t>(10 * (i + 1))); });
  CHECK(g.value() == 100);
  g.set(7);
  CHECK(g.value() == 7);
  on_workers(4, [&](std::size_t) { g.inc(); });  // adds after the set are kept
  CHECK(g.value() == 11);
  g.set(-3);
  CHECK(g.value() == -3);
}

TEST_CASE("histogram bucket math: v lands in the first bucket with v <= bound", "[observe]") {
  obs::histogram h{1, {1, 2, 5}};
  for (double v : {0.5, 1.0, 1.0000001, 2.0, 3.0, 5.0, 5.5, 100.0, -4.0}) h.observe(v);
  const auto s = h.collect();
  REQUIRE(s.buckets.size() == 4);          // 3 bounds + +Inf
  CHECK(s.buckets[0] == 3);                // 0.5, 1.0, -4
  CHECK(s.buckets[1] == 2);                // 1.0000001, 2
  CHECK(s.buckets[2] == 2);                // 3, 5
  CHECK(s.buckets[3] == 2);                // 5.5, 100 (+Inf)
  CHECK(s.count == 9);
  CHECK(s.sum == Approx(0.5 + 1 + 1.0000001 + 2 + 3 + 5 + 5.5 + 100 - 4));
}

TEST_CASE("histogram: infinities count, NaN is dropped", "[observe]") {
  obs::histogram h{1, {1}};
  h.observe(std::numeric_limits<double>::quiet_NaN());
  CHECK(h.collect().count == 0);
  h.observe(std::numeric_limits<double>::infinity());
  h.observe(-std::numeric_limits<double>::infinity());
  const auto s = h.collect();
  CHECK(s.buckets[0] == 1);
  CHECK(s.buckets[1] == 1);
  CHECK(std::isnan(s.sum));  // +Inf + -Inf, as Prometheus clients do
}

TEST_CASE("histogram: durations are observed in seconds", "[observe]") {
  obs::histogram h{1, obs::default_buckets()};
  h.observe(std::chrono::milliseconds(30));   // <= 0.05
  h.observe(std::chrono::microseconds(100));  // <= 0.005
  const auto s = h.collect();
  CHECK(s.buckets[0] == 1);
  CHECK(s.buckets[3] == 1);
  CHECK(s.sum == Approx(0.0301));
}

TEST_CASE("histogram sums observations from 4 workers", "[observe]") {
  // 20 bounds: a shard spans several cache lines (20 buckets + +Inf + sum = 22 words).
  obs::histogram h{4, obs::linear_buckets(1, 1, 20)};
  constexpr int per_thread = 20000;
  on_workers(4, [&](std::size_t i) {
    for (int k = 0; k < per_thread; ++k) h.observe(static_cast<double>(k % 25) + 0.5 * static_cast<double>(i % 2));
  });
  const auto s = h.collect();
  CHECK(s.count == 4u * per_thread);
  // Per thread, k % 25 cycles 800 times through 0..24; sum = 800 * 300 (+ 0.5 per obs on odd workers).
  CHECK(s.sum == Approx(4 * 800 * 300.0 + 2 * per_thread * 0.5));
  // Bucket le=1 holds values <= 1: from even workers 0, 1 (2 per cycle); odd: 0.5 (1 per cycle).
  CHECK(s.buckets[0] == 2u * (2 * 800) + 2u * 800);
  // +Inf: values > 20: even workers 21..24 (4), odd 20.5..24.5 (5) per cycle.
  CHECK(s.buckets[20] == 2u * (4 * 800) + 2u * (5 * 800));
  std::uint64_t total = 0;
  for (auto b : s.buckets) total += b;
  CHECK(total == s.count);
}

TEST_CASE("histogram bounds are validated", "[observe]") {
  CHECK_THROWS_AS((obs::histogram{1, {1, 1}}), std::invalid_argument);
  CHECK_THROWS_AS((obs::histogram{1, {2, 1}}), std::invalid_argument);
  CHECK_THROWS_AS((obs::histogram{1, {1, std::numeric_limits<double>::infinity()}}), std::invalid_argument);
  CHECK_THROWS_AS((obs::histogram{1, {std::numeric_limits<double>::quiet_NaN()}}), std::invalid_argument);
  CHECK_NOTHROW((obs::histogram{1, {}}));  // only +Inf
}

TEST_CASE("bucket helpers", "[observe]") {
  CHECK(obs::default_buckets().size() == 11);
  CHECK(obs::exponential_buckets(1, 2, 4) == std::vector<double>{1, 2, 4, 8});
  CHECK(obs::linear_buckets(0.5, 0.5, 3) == std::vector<double>{0.5, 1, 1.5});
  CHECK_THROWS_AS(obs::exponential_buckets(0, 2, 3), std::invalid_argument);
  CHECK_THROWS_AS(obs::linear_buckets(0, 0, 3), std::invalid_argument);
}
