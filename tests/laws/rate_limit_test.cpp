// Laws of the rate limiter (rproxy/middleware/rate_limit_store.hpp, rate_limit.hpp):
// never more than the limit over any window, exact refill rate, independent keys, tiers,
// penalties, and bounded memory under a million distinct keys.
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mw = rproxy::middleware;
using namespace std::chrono_literals;
using ns = std::chrono::nanoseconds;

namespace {

mw::rate_clock::time_point at(ns t) { return mw::rate_clock::time_point(t); }

// Random arrival times: bursts and gaps, sorted, starting at `start`.
std::vector<ns> arrivals(std::mt19937_64& rng, std::size_t n, ns window, ns start) {
  std::vector<ns> t;
  t.reserve(n);
  ns now = start;
  std::uniform_int_distribution<int> mode(0, 9);
  for (std::size_t i = 0; i < n; ++i) {
    int m = mode(rng);
    std::int64_t w = window.count();
    std::int64_t gap = m < 5 ? std::uniform_int_distribution<std::int64_t>(0, w / 50)(rng)       // dense
                     : m < 8 ? std::uniform_int_distribution<std::int64_t>(0, w / 5)(rng)         // moderate
                     : m < 9 ? std::int64_t{0}                                                    // same instant
                             : std::uniform_int_distribution<std::int64_t>(0, 2 * w)(rng);        // idle
    now += ns(gap);
    t.push_back(now);
  }
  return t;
}

std::vector<ns> admitted(mw::rate_state& s, const mw::rate_policy& p, const std::vector<ns>& times) {
  std::vector<ns> out;
  for (ns t : times)
    if (mw::apply(s, p, at(t)).allowed) out.push_back(t);
  return out;
}

// Max admissions in any closed interval [a, a + len] (enough to check intervals starting at an admission).
std::size_t max_in_interval(const std::vector<ns>& adm, ns len, bool closed) {
  std::size_t best = 0;
  for (std::size_t i = 0, j = 0; i < adm.size(); ++i) {
    if (j < i) j = i;
    while (j < adm.size() && (closed ? adm[j] - adm[i] <= len : adm[j] - adm[i] < len)) ++j;
    best = std::max(best, j - i);
  }
  return best;
}

struct rule_case {
  const char* name;
  mw::rate_rule rule;
};

std::vector<rule_case> rules() {
  using A = mw::rate_algorithm;
  return {
      {"tb 10/1s", {A::token_bucket, 10, 1s, 0, 10}},
      {"tb 3/1s (non-integer interval)", {A::token_bucket, 3, 1s, 0, 10}},
      {"tb 5/1s burst 20", {A::token_bucket, 5, 1s, 20, 10}},
      {"tb 1/1min", {A::token_bucket, 1, 1min, 0, 10}},
      {"tb 1000/1s", {A::token_bucket, 1000, 1s, 0, 10}},
      {"sw 10/1s 10 slots", {A::sliding_window, 10, 1s, 0, 10}},
      {"sw 7/3s 3 slots", {A::sliding_window, 7, 3s, 0, 3}},
      {"sw 5/1s 1 slot", {A::sliding_window, 5, 1s, 0, 1}},
      {"sw 100/10s 16 slots", {A::sliding_window, 100, 10s, 0, 16}},
      {"sw 3/999999999ns 7 slots", {A::sliding_window, 3, ns(999'999'999), 0, 7}},
  };
}

}  // namespace

TEST_CASE("never admits more than the limit over any window", "[middleware][rate_limit][laws]") {
  for (const auto& rc : rules()) {
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
      INFO(rc.name << " seed " << seed);
      std::mt19937_64 rng(seed);
      mw::rate_policy p{rc.rule, {}};
      mw::rate_state s;
      // start at an arbitrary (possibly negative) clock value
      ns start = ns(std::uniform_int_distribution<std::int64_t>(-5'000'000'000, 5'000'000'000)(rng));
      auto adm = admitted(s, p, arrivals(rng, 3000, rc.rule.window, start));
      REQUIRE(!adm.empty());
      const std::int64_t W = rc.rule.window.count();
      if (rc.rule.algorithm == mw::rate_algorithm::sliding_window) {
        // any half-open window [a, a + W) holds at most `limit` admissions
        CHECK(max_in_interval(adm, rc.rule.window, false) <= rc.rule.limit);
      } else {
        const std::uint64_t burst = rc.rule.burst ? rc.rule.burst : rc.rule.limit;
        for (ns len : {ns(0), ns(W / 3), ns(W), ns(5 * W / 2), ns(10 * W)}) {
          INFO("interval " << len.count());
          // closed interval of length L: burst + floor(L * limit / W)
          auto bound = burst + static_cast<std::uint64_t>(static_cast<unsigned __int128>(len.count()) * rc.rule.limit / W);
          CHECK(max_in_interval(adm, len, true) <= bound);
        }
      }
    }
  }
}

TEST_CASE("token bucket refills at exactly limit/window", "[middleware][rate_limit][laws]") {
  for (const auto& rc : rules()) {
    if (rc.rule.algorithm != mw::rate_algorithm::token_bucket) continue;
    INFO(rc.name);
    mw::rate_policy p{rc.rule, {}};
    mw::rate_state s;
    const std::uint32_t burst = rc.rule.burst ? rc.rule.burst : rc.rule.limit;
    const std::int64_t W = rc.rule.window.count();
    ns t0 = 123'456'789ns;
    std::uint32_t n = 0;
    while (mw::apply(s, p, at(t0)).allowed) ++n;
    REQUIRE(n == burst);  // a fresh key has a full bucket
    // After d, exactly floor(d * limit / W) more pass (measured once per step, bucket drained again).
    ns t = t0;
    for (std::int64_t frac : {1, 2, 3, 7, 10, 13}) {
      ns d = ns(W * frac / 10);
      t += d;
      std::uint64_t expect = std::min<std::uint64_t>(
          burst, static_cast<std::uint64_t>(static_cast<unsigned __int128>(d.count()) * rc.rule.limit / W));
      std::uint64_t got = 0;
      while (mw::apply(s, p, at(t)).allowed) ++got;
      // the previous step's remainder (less than one token) can add at most one
      CHECK(got >= expect);
      CHECK(got <= expect + 1);
    }
    // Over a long saturated run the admitted count is burst + floor(T * limit / W), exactly.
    mw::rate_state s2;
    std::uint64_t total = 0;
    const ns T = 50 * rc.rule.window;
    const ns step = std::max<ns>(ns(1), rc.rule.window / (4 * static_cast<std::int64_t>(rc.rule.limit)));
    for (ns x = 0ns; x <= T; x += step)
      while (mw::apply(s2, p, at(x)).allowed) ++total;
    auto exact = burst + static_cast<std::uint64_t>(static_cast<unsigned __int128>(T.count()) * rc.rule.limit / W);
    CHECK(total <= exact);
    CHECK(total + 1 >= exact);
  }
}

TEST_CASE("retry_after is exact: refused just before, admitted at it", "[middleware][rate_limit][laws]") {
  for (const auto& rc : rules()) {
    INFO(rc.name);
    std::mt19937_64 rng(42);
    mw::rate_policy p{rc.rule, {}};
    for (int trial = 0; trial < 20; ++trial) {
      mw::rate_state s;
      ns t = ns(std::uniform_int_distribution<std::int64_t>(0, 10 * rc.rule.window.count())(rng));
      mw::rate_decision d;
      for (;;) {  // saturate, with random small advances
        d = mw::apply(s, p, at(t));
        if (!d.allowed) break;
        // advance less than one token's worth on average, so the key saturates
        t += ns(std::uniform_int_distribution<std::int64_t>(0, rc.rule.window.count() / (2 * rc.rule.limit))(rng));
      }
      REQUIRE(d.retry_after > 0ns);
      mw::rate_state probe = s;
      CHECK_FALSE(mw::apply(probe, p, at(t + d.retry_after - 1ns)).allowed);
      probe = s;
      CHECK(mw::apply(probe, p, at(t + d.retry_after)).allowed);
    }
  }
}

TEST_CASE("sliding window recovers after a window and admits limit*k/(k+1) per window saturated",
          "[middleware][rate_limit][laws]") {
  for (const auto& rc : rules()) {
    if (rc.rule.algorithm != mw::rate_algorithm::sliding_window) continue;
    INFO(rc.name);
    mw::rate_policy p{rc.rule, {}};
    mw::rate_state s;
    ns t0 = 0ns;
    std::uint32_t n = 0;
    while (mw::apply(s, p, at(t0)).allowed) ++n;
    CHECK(n == rc.rule.limit);
    const ns slot = ns((rc.rule.window.count() + rc.rule.slots - 1) / rc.rule.slots);
    n = 0;
    while (mw::apply(s, p, at(t0 + rc.rule.window + slot)).allowed) ++n;
    CHECK(n == rc.rule.limit);

    mw::rate_state s2;
    std::uint64_t total = 0;
    const std::int64_t windows = 40;
    const ns step = std::max<ns>(ns(1), slot / 7);
    for (ns x = 0ns; x < windows * rc.rule.window; x += step)
      while (mw::apply(s2, p, at(x)).allowed) ++total;
    const double k = rc.rule.slots;
    CHECK(total <= static_cast<std::uint64_t>(windows) * rc.rule.limit);
    CHECK(static_cast<double>(total) >= (windows - 1) * rc.rule.limit * k / (k + 1) - 1);
  }
}

TEST_CASE("keys are independent", "[middleware][rate_limit][laws]") {
  mw::local_counter_store store({.max_keys = 1000, .shards = 4});
  mw::rate_policy p{{mw::rate_algorithm::token_bucket, 5, 1s, 0, 10}, {3, 10s, 1min, 10min}};
  std::mt19937_64 rng(7);
  auto times = arrivals(rng, 2000, 1s, 0ns);
  // Alone: the decisions key "b" gets on its own.
  mw::local_counter_store alone_store;
  std::vector<bool> alone;
  for (std::size_t i = 0; i < times.size(); i += 2) alone.push_back(alone_store.acquire("b", p, at(times[i])).allowed);
  // Interleaved with a hammering "a" (ten requests per step, penalties included).
  std::vector<bool> mixed;
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (i % 2 == 0) mixed.push_back(store.acquire("b", p, at(times[i])).allowed);
    for (int j = 0; j < 10; ++j) (void)store.acquire("a", p, at(times[i]));
  }
  CHECK(mixed == alone);
}

namespace {

struct fake_clock {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  static inline time_point t{};
  static time_point now() { return t; }
};

// A stage that publishes a principal with a tier, as jwt_auth / api_key_auth do.
struct fake_auth {
  struct state {
    mw::principal auth;
  };
  const char* tier;
  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    auto& a = ctx.template state<fake_auth>().auth;
    a.authenticated = tier != nullptr;
    if (tier) {
      a.tier = tier;
      a.subject = "user";
      ctx.identity = a.subject;
    }
    return rproxy::next;
  }
};

}  // namespace

TEST_CASE("tiers and operations select their own limits", "[middleware][rate_limit][laws]") {
  mw::rate_limit_config cfg;
  cfg.key = {{mw::rate_key_part::source::identity, {}}};
  cfg.accept_operation = "connect";
  cfg.tiers = {{"default", {{"connect", {mw::rate_algorithm::token_bucket, 2, 1min}}}},
               {"premium", {{"connect", {mw::rate_algorithm::sliding_window, 5, 1min}}}}};
  mw::local_counter_store store;
  using limiter = mw::basic_rate_limit<mw::local_counter_store, void, fake_clock>;
  fake_clock::t = fake_clock::time_point(1h);

  auto count_admitted = [&](const char* tier, const char* ip) {
    auto p = rproxy::make_pipeline(fake_auth{tier}, limiter{&cfg, &store, nullptr});
    int n = 0;
    for (int i = 0; i < 20; ++i) {
      auto ctx = p.make_context();
      ctx.client = {asio::ip::make_address(ip), 1000};
      if (p.accept(ctx).is_next()) ++n;
    }
    return n;
  };
  CHECK(count_admitted("premium", "192.0.2.1") == 5);
  CHECK(count_admitted("gold", "192.0.2.2") == 2);  // unknown tier: default limits (own key: tier is part of it)
  CHECK(count_admitted(nullptr, "192.0.2.3") == 2);    // anonymous: default tier, keyed by IP
  CHECK(count_admitted(nullptr, "192.0.2.3") == 0);
  CHECK(count_admitted(nullptr, "192.0.2.4") == 2);
  // an operation without any limit is not counted
  cfg.accept_operation = "status";
  CHECK(count_admitted(nullptr, "192.0.2.3") == 20);
}

TEST_CASE("penalties: blocks double for repeat offenders, then are forgiven", "[middleware][rate_limit][laws]") {
  mw::rate_policy p{{mw::rate_algorithm::token_bucket, 1, 1s, 0, 10}, {2, 10s, 35s, 5min}};
  mw::rate_state s;
  ns t = 0ns;
  CHECK(mw::apply(s, p, at(t)).allowed);
  auto d = mw::apply(s, p, at(t));  // violation 1: refused, not blocked yet
  CHECK_FALSE(d.allowed);
  CHECK_FALSE(d.blocked);
  d = mw::apply(s, p, at(t));  // violation 2: block 10 s
  CHECK(d.blocked);
  CHECK(d.retry_after == 10s);
  CHECK(mw::apply(s, p, at(t + 9s)).blocked);  // still blocked, even though the bucket refilled
  CHECK(mw::apply(s, p, at(t + 10s)).allowed);
  d = mw::apply(s, p, at(t + 10s));  // violation 3: 20 s
  CHECK(d.blocked);
  CHECK(d.retry_after == 20s);
  CHECK(mw::apply(s, p, at(t + 30s)).allowed);
  d = mw::apply(s, p, at(t + 30s));  // violation 4: 40 s capped at 35 s
  CHECK(d.retry_after == 35s);
  CHECK(mw::apply(s, p, at(t + 65s)).allowed);
  // quiet for longer than forgive_after: the count starts over (first refusal does not block)
  ns later = t + 65s + 6min;
  CHECK(mw::apply(s, p, at(later)).allowed);
  d = mw::apply(s, p, at(later));
  CHECK_FALSE(d.allowed);
  CHECK_FALSE(d.blocked);
}

TEST_CASE("memory stays bounded with a million distinct keys", "[middleware][rate_limit][laws]") {
  mw::local_counter_store store({.max_keys = 10'000, .shards = 16});
  mw::rate_policy p{{mw::rate_algorithm::token_bucket, 1, 1h, 0, 10}, {}};
  // a key kept hot survives (LRU): it stays exhausted
  CHECK(store.acquire("hot", p, at(0ns)).allowed);
  std::string key;
  for (std::uint32_t i = 0; i < 1'000'000; ++i) {
    key = "k";
    key += std::to_string(i);
    (void)store.acquire(key, p, at(ns(i)));
    if (i % 500 == 0) CHECK_FALSE(store.acquire("hot", p, at(ns(i))).allowed);
    if (i % 100'000 == 0) REQUIRE(store.size() <= store.capacity());
  }
  CHECK(store.capacity() <= 10'000);
  CHECK(store.size() <= 10'000);
  CHECK(store.size() >= 9'000);
  CHECK(store.evictions() >= 1'000'000 - 10'000);
  CHECK_FALSE(store.acquire("hot", p, at(2s)).allowed);
  // an evicted cold key starts over
  CHECK(store.acquire("k0", p, at(2s)).allowed);
}
