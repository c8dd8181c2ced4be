#include <rproxy/balance/sticky.hpp>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
namespace bal = rproxy::balance;

namespace {

struct test_clock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<test_clock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static inline std::atomic<std::int64_t> t{3'600'000'000'000};
  static time_point now() noexcept { return time_point{duration{t.load()}}; }
  static void advance(duration d) noexcept { t += d.count(); }
};

using pool_t = bal::basic_pool<int, test_clock>;

std::string pick_id(bal::sticky<bal::round_robin>& s, const pool_t& p, std::string_view key) {
  auto h = s.pick(p, key);
  return h ? h->id() : std::string{};
}

}  // namespace

TEST_CASE("a key sticks to its backend; new keys go through the inner balancer", "[balance][sticky]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}, {"c", 3, 1}}));
  bal::sticky<bal::round_robin> s;
  CHECK(pick_id(s, p, "alice") == "a");  // round robin: a, b, c
  CHECK(pick_id(s, p, "bob") == "b");
  for (int i = 0; i < 10; ++i) {
    CHECK(pick_id(s, p, "alice") == "a");
    CHECK(pick_id(s, p, "bob") == "b");
  }
  CHECK(pick_id(s, p, "carol") == "c");
  CHECK(s.size() == 3);
  CHECK(s.hits() == 20);
}

TEST_CASE("an unavailable or removed backend sends the key elsewhere, and it sticks there", "[balance][sticky]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  bal::sticky<bal::round_robin> s;
  CHECK(pick_id(s, p, "alice") == "a");
  REQUIRE(p.set_health("a", false));
  CHECK(pick_id(s, p, "alice") == "b");
  REQUIRE(p.set_health("a", true));
  CHECK(pick_id(s, p, "alice") == "b");  // rebound to b

  REQUIRE(p.update({{"a", 1, 1}}));  // b removed
  CHECK(pick_id(s, p, "alice") == "a");
}

TEST_CASE("entries expire after ttl without use; each use extends them", "[balance][sticky]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  bal::sticky_config cfg;
  cfg.ttl = 10s;
  bal::sticky<bal::round_robin> s{{}, cfg};
  CHECK(pick_id(s, p, "alice") == "a");
  test_clock::advance(9s);
  CHECK(pick_id(s, p, "alice") == "a");  // used: good for 10 s more
  test_clock::advance(9s);
  CHECK(pick_id(s, p, "alice") == "a");
  test_clock::advance(10s);                // expired: round robin's next turn is b
  CHECK(pick_id(s, p, "alice") == "b");
  CHECK(pick_id(s, p, "alice") == "b");
}

TEST_CASE("the table is bounded: the least recently used entry goes", "[balance][sticky]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  bal::sticky_config cfg;
  cfg.max_entries = 16 * 4;  // 4 per shard
  bal::sticky<bal::round_robin> s{{}, cfg};
  for (int i = 0; i < 1000; ++i) (void)s.pick(p, std::string_view{"user-" + std::to_string(i)});
  CHECK(s.size() <= cfg.max_entries);
  CHECK(s.size() >= cfg.max_entries / 2);

  // A key in constant use survives a flood of new keys in its shard.
  bal::sticky<bal::round_robin> t{{}, cfg};
  const auto home = pick_id(t, p, "keeper");
  for (int i = 0; i < 1000; ++i) {
    (void)t.pick(p, std::string_view{"flood-" + std::to_string(i)});
    REQUIRE(pick_id(t, p, "keeper") == home);
  }
  t.clear();
  CHECK(t.size() == 0);
}

TEST_CASE("sticky keys can be addresses", "[balance][sticky]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  bal::sticky<bal::round_robin> s;
  auto ip = asio::ip::make_address("198.51.100.7");
  auto first = s.pick(p, ip)->id();
  for (int i = 0; i < 5; ++i) CHECK(s.pick(p, ip)->id() == first);
  CHECK(s.pick(p, asio::ip::tcp::endpoint(ip, 1234))->id() == first);
}
