#include <rproxy/middleware/rate_limit_store.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

namespace mw = rproxy::middleware;
using namespace std::chrono_literals;

namespace {
mw::rate_clock::time_point at(std::chrono::nanoseconds t) { return mw::rate_clock::time_point(t); }
}  // namespace

TEST_CASE("SipHash-2-4 matches the reference vectors", "[middleware][rate_limit]") {
  const std::uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
  CHECK(mw::detail::siphash24(k0, k1, "") == 0x726fdb47dd0e0e31ull);
  std::string msg;
  for (int i = 0; i < 15; ++i) msg.push_back(static_cast<char>(i));
  CHECK(mw::detail::siphash24(k0, k1, msg) == 0xa129ca6149be45e5ull);
  msg.push_back(15);  // 16 bytes: two full blocks
  CHECK(mw::detail::siphash24(k0, k1, msg) == 0x3f2acc7f57c29bdbull);
}

TEST_CASE("token bucket decision values", "[middleware][rate_limit]") {
  mw::rate_policy p{{mw::rate_algorithm::token_bucket, 4, 2s, 0, 10}, {}};  // one token per 500 ms
  mw::rate_state s;
  auto d = mw::apply(s, p, at(10s));
  CHECK(d.allowed);
  CHECK(d.limit == 4);
  CHECK(d.remaining == 3);
  CHECK(d.reset == 500ms);
  for (int i = 0; i < 3; ++i) CHECK(mw::apply(s, p, at(10s)).allowed);
  d = mw::apply(s, p, at(10s));
  CHECK_FALSE(d.allowed);
  CHECK(d.remaining == 0);
  CHECK(d.retry_after == 500ms);
  CHECK(d.reset == 2s);
  d = mw::apply(s, p, at(10s + 700ms));
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  d = mw::apply(s, p, at(10s + 700ms));
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == 300ms);
  // a clock going backwards refills nothing
  CHECK_FALSE(mw::apply(s, p, at(1s)).allowed);
  // limit 0 refuses everything
  mw::rate_state z;
  mw::rate_policy zero{{mw::rate_algorithm::token_bucket, 0, 1s, 0, 10}, {}};
  CHECK_FALSE(mw::apply(z, zero, at(0s)).allowed);
}

TEST_CASE("sliding window decision values", "[middleware][rate_limit]") {
  mw::rate_policy p{{mw::rate_algorithm::sliding_window, 3, 10s, 0, 10}, {}};  // 1 s slots
  mw::rate_state s;
  CHECK(mw::apply(s, p, at(100s)).remaining == 2);
  CHECK(mw::apply(s, p, at(103s + 500ms)).remaining == 1);
  auto d = mw::apply(s, p, at(105s));
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  d = mw::apply(s, p, at(106s));
  CHECK_FALSE(d.allowed);
  // slot [100,101) leaves the counted range when (t - 10 s) reaches slot 101: t = 111 s - 1 ns
  CHECK(d.retry_after == 5s - 1ns);
  CHECK_FALSE(mw::apply(s, p, at(111s - 2ns)).allowed);
  CHECK(mw::apply(s, p, at(111s - 1ns)).allowed);
}

TEST_CASE("a changed rule starts the key over but keeps its block", "[middleware][rate_limit]") {
  mw::rate_policy p1{{mw::rate_algorithm::token_bucket, 1, 1min, 0, 10}, {1, 30s, 1h, 1h}};
  mw::rate_state s;
  CHECK(mw::apply(s, p1, at(0s)).allowed);
  CHECK(mw::apply(s, p1, at(0s)).blocked);
  auto p2 = p1;
  p2.rule.limit = 100;
  CHECK(mw::apply(s, p2, at(1s)).blocked);  // still blocked
  CHECK(mw::apply(s, p2, at(31s)).allowed);
  CHECK(mw::apply(s, p2, at(31s)).remaining == 98);
}

TEST_CASE("local store: LRU eviction and concurrent use", "[middleware][rate_limit]") {
  mw::local_counter_store store({.max_keys = 4, .shards = 1});
  mw::rate_policy p{{mw::rate_algorithm::token_bucket, 1, 1h, 0, 10}, {}};
  for (const char* k : {"a", "b", "c", "d"}) CHECK(store.acquire(k, p, at(0s)).allowed);
  CHECK_FALSE(store.acquire("a", p, at(0s)).allowed);  // a is now most recent
  CHECK(store.acquire("e", p, at(0s)).allowed);         // evicts b (least recent)
  CHECK(store.size() == 4);
  CHECK(store.evictions() == 1);
  CHECK_FALSE(store.acquire("a", p, at(0s)).allowed);
  CHECK(store.acquire("b", p, at(0s)).allowed);  // b was forgotten (evicts c)
  CHECK_FALSE(store.acquire("d", p, at(0s)).allowed);
  store.clear();
  CHECK(store.size() == 0);
  CHECK(store.acquire("a", p, at(0s)).allowed);

  // Several workers on one key: exactly `limit` admissions in total.
  mw::local_counter_store shared;
  mw::rate_policy q{{mw::rate_algorithm::sliding_window, 1000, 1h, 0, 10}, {}};
  std::atomic<int> admitted{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (shared.acquire("same", q, at(1s)).allowed) admitted.fetch_add(1);
    });
  for (auto& t : workers) t.join();
  CHECK(admitted.load() == 1000);
}
