// Laws every balancer obeys (distribution by weight, health exclusion, nothing when nothing is
// available, weight changes at once, thread safety), then the laws particular to some.
#include <rproxy/balance/consistent_hash.hpp>
#include <rproxy/balance/ip_hash.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/p2c_ewma.hpp>
#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/random.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/sticky.hpp>
#include <rproxy/balance/weighted_round_robin.hpp>

#include <rproxy/balance/balancer.hpp>

#include <asio/ip/address_v4.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
namespace bal = rproxy::balance;
using asio::ip::tcp;

namespace {

struct test_clock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<test_clock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static inline std::atomic<std::int64_t> t{3'600'000'000'000};
  static time_point now() noexcept { return time_point{duration{t.load(std::memory_order_relaxed)}}; }
  static void advance(duration d) noexcept { t += d.count(); }
};

using pool_t = bal::basic_pool<tcp::endpoint, test_clock>;
using cfg_t = pool_t::config_type;
using counts = std::map<std::string, long>;

enum class key_kind { none, address, text };

// How the laws drive each balancer.
template <class B>
struct law;
template <>
struct law<bal::random> {
  static bal::random make() { return bal::random{42}; }
  static constexpr key_kind key = key_kind::none;
  static constexpr bool weighted = true;
};
template <>
struct law<bal::round_robin> {
  static bal::round_robin make() { return {}; }
  static constexpr key_kind key = key_kind::none;
  static constexpr bool weighted = false;  // equal shares; weight 0 still means never
};
template <>
struct law<bal::weighted_round_robin> {
  static bal::weighted_round_robin make() { return {}; }
  static constexpr key_kind key = key_kind::none;
  static constexpr bool weighted = true;
};
template <>
struct law<bal::least_conn> {
  static bal::least_conn make() { return bal::least_conn{7}; }
  static constexpr key_kind key = key_kind::none;
  static constexpr bool weighted = true;
};
template <>
struct law<bal::p2c_ewma> {
  static bal::p2c_ewma make() { return bal::p2c_ewma{11}; }
  static constexpr key_kind key = key_kind::none;
  static constexpr bool weighted = true;
};
template <>
struct law<bal::ip_hash> {
  static bal::ip_hash make() { return bal::ip_hash{}; }
  static constexpr key_kind key = key_kind::address;
  static constexpr bool weighted = true;
};
template <>
struct law<bal::consistent_hash> {
  static bal::consistent_hash make() { return bal::consistent_hash{}; }
  static constexpr key_kind key = key_kind::text;
  static constexpr bool weighted = true;
};
template <>
struct law<bal::sticky<bal::random>> {
  static bal::sticky<bal::random> make() { return bal::sticky<bal::random>{bal::random{5}}; }
  static constexpr key_kind key = key_kind::text;
  static constexpr bool weighted = true;
};

using all_balancers = std::tuple<bal::random, bal::round_robin, bal::weighted_round_robin, bal::least_conn,
                                 bal::p2c_ewma, bal::ip_hash, bal::consistent_hash, bal::sticky<bal::random>>;

template <class B>
using key_type = std::conditional_t<law<B>::key == key_kind::none, bal::no_key,
                                    std::conditional_t<law<B>::key == key_kind::address, asio::ip::address,
                                                       std::string_view>>;

// The i-th distinct key: one /24 per i for IPs (ip_hash groups by /24), or a string.
template <class B>
std::optional<pool_t::handle_type> pick(B& b, const pool_t& p, std::uint32_t i) {
  if constexpr (law<B>::key == key_kind::address) {
    return b.pick(p, asio::ip::address(asio::ip::address_v4(0x0A000000u + (i << 8) + 1)));
  } else if constexpr (law<B>::key == key_kind::text) {
    return b.pick(p, std::string_view{"key-" + std::to_string(i)});
  } else {
    return b.pick(p);
  }
}

tcp::endpoint ep(int i) { return {asio::ip::make_address_v4("127.0.0.1"), static_cast<unsigned short>(20000 + i)}; }

std::vector<cfg_t> config(std::initializer_list<std::uint32_t> weights) {
  std::vector<cfg_t> v;
  int i = 0;
  for (auto w : weights) {
    v.push_back({std::string(1, static_cast<char>('a' + i)), ep(i), w});
    ++i;
  }
  return v;
}

// Picks n times with fresh keys, releasing each pick at once (success).
template <class B>
counts run(B& b, const pool_t& p, std::uint32_t n, std::uint32_t& key) {
  counts c;
  long misses = 0;
  for (std::uint32_t k = 0; k < n; ++k) {
    auto h = pick(b, p, key++);
    if (!h) {
      ++misses;
      continue;
    }
    ++c[h->id()];
    h->finish({});
  }
  CHECK(misses == 0);
  return c;
}

// Every backend's share is within 5% (relative) of weight / total (or 1 / n, unweighted).
template <class B>
void check_shares(const counts& c, const pool_t& p, std::uint32_t n) {
  auto s = p.snapshot();
  double total = 0;
  std::size_t live = 0;
  for (const auto& b : s->backends) {
    total += b->weight();
    live += b->weight() > 0;
  }
  for (const auto& b : s->backends) {
    double expected = law<B>::weighted ? n * b->weight() / total : (b->weight() > 0 ? double(n) / live : 0.0);
    auto it = c.find(b->id());
    double got = it == c.end() ? 0.0 : double(it->second);
    INFO("backend " << b->id() << " weight " << b->weight() << ": expected " << expected << ", got " << got);
    CHECK(std::abs(got - expected) <= 0.05 * expected + 2);
  }
}

// Fails `id` `times` times through the pool (feeds outlier detection and the breaker).
void fail(pool_t& p, std::string_view id, int times) {
  for (int i = 0; i < times; ++i) {
    auto h = p.acquire(p.find(id), test_clock::now());
    REQUIRE(h);
    h->fail();
  }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("balancer law: picks follow the weights", "[balance][laws]", all_balancers) {
  STATIC_REQUIRE(bal::balancer<TestType, pool_t, key_type<TestType>>);
  pool_t p;
  REQUIRE(p.update(config({5, 1, 1, 3})));
  auto b = law<TestType>::make();
  std::uint32_t key = 0;
  const std::uint32_t n = 100000;
  auto c = run(b, p, n, key);
  check_shares<TestType>(c, p, n);
}

TEMPLATE_LIST_TEST_CASE("balancer law: never an unavailable backend while one is available", "[balance][laws]",
                        all_balancers) {
  bal::pool_config cfg;
  cfg.outlier.max_ejected_percent = 100;
  cfg.outlier.consecutive_failures = 3;
  cfg.breaker = rproxy::health::breaker_config::disabled();
  std::string how = GENERATE(as<std::string>{}, "unhealthy", "ejected", "draining", "removed", "breaker open", "weight 0");
  if (how == "breaker open") {
    cfg.outlier.consecutive_failures = 0;
    cfg.breaker.consecutive_failures = 2;
    cfg.breaker.cool_down = 1h;
  }
  pool_t p{cfg};
  REQUIRE(p.update(config({5, 1, 1, 3})));
  auto b = law<TestType>::make();
  std::uint32_t key = 0;
  run(b, p, 100, key);  // warm state (sticky entries, wrr scores) that must not leak through

  std::vector<std::string> down{"a", "b", "c"};
  for (const auto& id : down) {
    if (how == "unhealthy") REQUIRE(p.set_health(id, false));
    else if (how == "ejected") fail(p, id, 3);
    else if (how == "draining") REQUIRE(p.drain(id));
    else if (how == "breaker open") fail(p, id, 2);
    else if (how == "weight 0") REQUIRE(p.set_weight(id, 0));
  }
  if (how == "removed") REQUIRE(p.update({{"d", ep(3), 3}}));
  INFO(how);
  if (how == "ejected") REQUIRE(p.find("a")->state() == bal::backend_state::ejected);

  auto c = run(b, p, 2000, key);
  CHECK(c == counts{{"d", 2000}});
  key = 0;  // keys seen before the change too
  c = run(b, p, 200, key);
  CHECK(c == counts{{"d", 200}});

  // And nothing at all once the last one goes.
  REQUIRE(p.set_health("d", false));
  for (std::uint32_t i = 0; i < 50; ++i) CHECK_FALSE(pick(b, p, i));
}

TEMPLATE_LIST_TEST_CASE("balancer law: nothing from an empty pool", "[balance][laws]", all_balancers) {
  pool_t p;
  auto b = law<TestType>::make();
  CHECK_FALSE(pick(b, p, 1));
  REQUIRE(p.update(config({1, 1})));
  CHECK(pick(b, p, 1));
  REQUIRE(p.update(std::vector<cfg_t>{}));
  CHECK_FALSE(pick(b, p, 1));
}

TEMPLATE_LIST_TEST_CASE("balancer law: weight changes take effect on the next pick", "[balance][laws]",
                        all_balancers) {
  pool_t p;
  REQUIRE(p.update(config({1, 1, 1, 1})));
  auto b = law<TestType>::make();
  std::uint32_t key = 0;
  run(b, p, 400, key);

  REQUIRE(p.set_weight("a", 0));
  auto c = run(b, p, 2000, key);
  CHECK(c.count("a") == 0);
  CHECK(c.size() == 3);

  REQUIRE(p.set_weight("a", 5));
  REQUIRE(p.set_weight("d", 3));
  const std::uint32_t n = 100000;
  c = run(b, p, n, key);
  check_shares<TestType>(c, p, n);

  // Through a config update as well.
  REQUIRE(p.update(config({1, 1, 0, 2})));
  c = run(b, p, n, key);
  check_shares<TestType>(c, p, n);
}

TEMPLATE_LIST_TEST_CASE("balancer law: concurrent picks from 4 threads are safe", "[balance][laws]",
                        all_balancers) {
  pool_t p;
  REQUIRE(p.update(config({3, 1, 1, 2})));
  REQUIRE(p.set_health("a", false));  // never available during the run
  auto b = law<TestType>::make();

  constexpr int threads = 4;
  constexpr std::uint32_t per_thread = 20000;
  std::atomic<bool> stop{false};
  std::atomic<long> picked{0}, missed{0}, wrong{0}, errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::vector<pool_t::handle_type> held;
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        auto h = pick(b, p, static_cast<std::uint32_t>(t) * per_thread + i % 997);
        if (!h) {
          ++missed;
          continue;
        }
        ++picked;
        if (h->id() == "a") ++wrong;
        h->observe_latency(std::chrono::microseconds(100 + i % 50));
        held.push_back(std::move(*h));
        if (held.size() > 8) {  // keep a few in flight, finish in another order
          held.front().finish(i % 10 == 0 ? std::error_code(bal::error::no_backend) : std::error_code{});
          held.erase(held.begin());
        }
      }
    });
  }
  // Meanwhile: reloads (e comes and goes), weight changes and health flaps of b.
  std::thread writer([&] {
    bool flip = false;
    while (!stop.load()) {
      flip = !flip;
      auto cfg = config({3, 1, 1, 2});
      if (flip) cfg.push_back({"e", ep(4), 1});
      if (!p.update(cfg)) ++errors;  // (no Catch assertions off the main thread)
      if (!p.set_health("a", false)) ++errors;
      p.set_health("b", flip);
      p.set_weight("c", flip ? 2 : 1);
      p.collect();
      std::this_thread::yield();
    }
  });
  for (auto& t : ts) t.join();
  stop = true;
  writer.join();

  CHECK(picked + missed == threads * per_thread);
  CHECK(errors == 0);
  CHECK(missed == 0);  // c or d is always there
  CHECK(wrong == 0);
  for (const auto& x : p.snapshot()->backends) CHECK(x->in_flight() == 0);
  CHECK(p.collect() == 0);
}

// ---- laws of particular balancers ----------------------------------------------------------

TEST_CASE("smooth WRR gives nginx's sequence for {5, 1, 1}", "[balance][laws][wrr]") {
  pool_t p;
  REQUIRE(p.update(config({5, 1, 1})));
  bal::weighted_round_robin wrr;
  std::string seq;
  for (int i = 0; i < 14; ++i) {
    auto h = wrr.pick(p);
    REQUIRE(h);
    seq += h->id();
  }
  CHECK(seq == "aabacaaaabacaa");
}

TEST_CASE("round robin takes turns", "[balance][laws][rr]") {
  pool_t p;
  REQUIRE(p.update(config({5, 1, 1})));
  bal::round_robin rr;
  std::string seq;
  for (int i = 0; i < 6; ++i) seq += rr.pick(p)->id();
  CHECK(seq == "abcabc");
  REQUIRE(p.set_health("b", false));
  seq.clear();
  for (int i = 0; i < 6; ++i) seq += rr.pick(p)->id();
  CHECK(seq.find('b') == std::string::npos);
}

TEST_CASE("least_conn follows in-flight counts, weighted", "[balance][laws][least_conn]") {
  pool_t p;
  REQUIRE(p.update(config({3, 1})));
  bal::least_conn lc{3};
  std::vector<pool_t::handle_type> held;
  for (int i = 0; i < 40; ++i) held.push_back(std::move(*lc.pick(p)));
  auto a = p.find("a"), b = p.find("b");
  CHECK(a->in_flight() == 30);
  CHECK(b->in_flight() == 10);

  // Free 5 on b: the next 5 go to b.
  int freed = 0;
  for (auto& h : held)
    if (freed < 5 && h.id() == "b") {
      h.release();
      ++freed;
    }
  for (int i = 0; i < 5; ++i) CHECK(lc.pick(p)->id() == "b");  // released at once: b stays at 5
  auto h = lc.pick(p);
  CHECK(h->id() == "b");
  held.push_back(std::move(*h));
  CHECK(b->in_flight() == 6);
}

TEST_CASE("p2c_ewma prefers the faster backend", "[balance][laws][p2c]") {
  pool_t p;
  REQUIRE(p.update(config({1, 1, 1})));
  // Latencies: a 1 ms, b 5 ms, c 20 ms.
  std::map<std::string, std::chrono::milliseconds> lat{{"a", 1ms}, {"b", 5ms}, {"c", 20ms}};
  for (auto& [id, l] : lat) p.acquire(p.find(id), test_clock::now())->finish({}, l);
  bal::p2c_ewma p2c{99};
  counts c;
  for (int i = 0; i < 3000; ++i) {
    auto h = p2c.pick(p);
    REQUIRE(h);
    ++c[h->id()];
    h->finish({}, lat[h->id()]);
  }
  // With no load, the faster of each pair wins: a whenever drawn (2/3), b against c (1/3).
  CHECK(c["a"] > 1800);
  CHECK(c["b"] > 800);
  CHECK(c["c"] == 0);

  // Two backends: always the faster one; load evens it out (cost = latency x (in flight + 1)).
  pool_t q;
  REQUIRE(q.update(config({1, 1})));
  q.acquire(q.find("a"), test_clock::now())->finish({}, 1ms);
  q.acquire(q.find("b"), test_clock::now())->finish({}, 3700us);
  std::vector<pool_t::handle_type> held;
  for (int i = 0; i < 10; ++i) held.push_back(std::move(*p2c.pick(q)));
  // Cost a = 1 ms x (in flight + 1), b = 3.7 ms x (in flight + 1): a a a b a a a a b a.
  CHECK(q.find("a")->in_flight() == 8);
  CHECK(q.find("b")->in_flight() == 2);
}

TEST_CASE("consistent hash remaps about 1/N of the keys when a backend goes", "[balance][laws][chash]") {
  constexpr int n = 10;
  constexpr int keys = 10000;
  std::vector<cfg_t> cfg;
  for (int i = 0; i < n; ++i) cfg.push_back({"backend-" + std::to_string(i), ep(i), 1});
  pool_t p;
  REQUIRE(p.update(cfg));
  bal::consistent_hash ch;
  auto where = [&] {
    std::vector<std::string> w;
    for (int k = 0; k < keys; ++k) w.push_back(ch.pick(p, std::string_view{"user-" + std::to_string(k)})->id());
    return w;
  };
  auto before = where();

  SECTION("removal") {
    cfg.erase(cfg.begin() + 3);
    REQUIRE(p.update(cfg));
    auto after = where();
    int moved = 0, moved_elsewhere = 0;
    for (int k = 0; k < keys; ++k) {
      if (before[k] != after[k]) {
        ++moved;
        if (before[k] != "backend-3") ++moved_elsewhere;
      }
    }
    INFO("moved " << moved << " of " << keys << ", of which not from the removed backend: " << moved_elsewhere);
    CHECK(moved <= keys / n + keys / 50);  // 1/N + 2%
    CHECK(moved >= keys / n - keys / 50);  // its own keys had to move
    CHECK(moved_elsewhere <= keys / 50);
  }
  SECTION("addition") {
    cfg.push_back({"backend-new", ep(99), 1});
    REQUIRE(p.update(cfg));
    auto after = where();
    int moved = 0, to_new = 0;
    for (int k = 0; k < keys; ++k)
      if (before[k] != after[k]) {
        ++moved;
        to_new += after[k] == "backend-new";
      }
    INFO("moved " << moved << ", to the new backend " << to_new);
    CHECK(moved <= keys / (n + 1) + keys / 50);
    CHECK(to_new >= keys / (n + 1) - keys / 50);
  }
  SECTION("a health flap moves only the keys of the backend that is down") {
    REQUIRE(p.set_health("backend-5", false));
    auto after = where();
    for (int k = 0; k < keys; ++k)
      if (before[k] != "backend-5") REQUIRE(after[k] == before[k]);
    REQUIRE(p.set_health("backend-5", true));
    CHECK(where() == before);
  }
  SECTION("the same key always goes to the same backend; order of config does not matter") {
    std::reverse(cfg.begin(), cfg.end());
    pool_t q;
    REQUIRE(q.update(cfg));
    bal::consistent_hash other;
    for (int k = 0; k < keys; k += 7)
      CHECK(other.pick(q, std::string_view{"user-" + std::to_string(k)})->id() == before[k]);
  }
}

TEST_CASE("ip_hash keeps a client (and its /24) on one backend", "[balance][laws][ip_hash]") {
  pool_t p;
  REQUIRE(p.update(config({1, 1, 1, 1})));
  bal::ip_hash ih;
  auto ip = [](const char* s) { return asio::ip::make_address(s); };
  auto first = ih.pick(p, ip("192.0.2.10"))->id();
  for (int i = 0; i < 20; ++i) CHECK(ih.pick(p, ip("192.0.2.10"))->id() == first);
  CHECK(ih.pick(p, ip("192.0.2.200"))->id() == first);  // same /24
  CHECK(ih.pick(p, tcp::endpoint(ip("192.0.2.77"), 5555))->id() == first);

  bal::ip_hash exact{false};
  std::map<std::string, int> seen;
  for (int i = 1; i < 255; ++i) seen[exact.pick(p, ip(("192.0.2." + std::to_string(i)).c_str()))->id()]++;
  CHECK(seen.size() == 4);  // without grouping, one /24 spreads over every backend
  auto v6 = ih.pick(p, ip("2001:db8::1"))->id();
  CHECK(ih.pick(p, ip("2001:db8::1"))->id() == v6);
}
