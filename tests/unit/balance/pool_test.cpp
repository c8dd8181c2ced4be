#include <rproxy/balance/pool.hpp>

#include <rproxy/balance/error.hpp>
#include <rproxy/balance/round_robin.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace bal = rproxy::balance;

namespace {

// A clock the test moves by hand.
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

using pool_t = bal::basic_pool<int, test_clock>;  // backends addressed by a plain int
using cfg_t = pool_t::config_type;

std::optional<pool_t::handle_type> take(const pool_t& p, std::string_view id) {
  return p.acquire(p.find(id), test_clock::now());
}

}  // namespace

TEST_CASE("update validates ids and changes nothing on error", "[balance][pool]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  auto r = p.update({{"a", 1, 1}, {"a", 3, 1}});
  REQUIRE_FALSE(r);
  REQUIRE(r.error() == bal::error::duplicate_backend);
  REQUIRE(r.error() == rproxy::condition::internal);
  auto e = p.update({{"", 1, 1}});
  REQUIRE(e.error() == bal::error::empty_backend_id);
  REQUIRE(p.snapshot()->size() == 2);
  REQUIRE(p.snapshot()->version == 1);

  std::error_code none = bal::error::no_backend;
  REQUIRE(none == rproxy::condition::upstream);
  REQUIRE(none == rproxy::condition::retry_safe);
  REQUIRE(none.message() == "no backend available");
}

TEST_CASE("update keeps backends by identity with their counters and flows", "[balance][pool]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}, {"c", 3, 1}}));
  auto a = p.find("a");
  auto h1 = take(p, "a");
  auto h2 = take(p, "b");
  h1->succeed();
  REQUIRE(a->selections() == 1);
  REQUIRE(a->in_flight() == 1);

  // a kept (new weight), b removed while a flow is in flight, c removed idle, d added.
  REQUIRE(p.update({{"a", 1, 4}, {"d", 4, 1}}));
  auto s = p.snapshot();
  REQUIRE(s->version == 2);
  REQUIRE(s->size() == 2);
  REQUIRE(p.find("a") == a);  // the same object: counters and flows kept
  REQUIRE(a->weight() == 4);
  REQUIRE(a->selections() == 1);
  REQUIRE(a->successes() == 1);
  REQUIRE(a->in_flight() == 1);
  REQUIRE(p.find("b") == nullptr);

  auto draining = p.draining();
  REQUIRE(draining.size() == 1);
  REQUIRE(draining[0]->id() == "b");
  REQUIRE(draining[0]->state() == bal::backend_state::draining);
  REQUIRE_FALSE(draining[0]->available());
  REQUIRE(p.collect() == 1);

  // The flow on b finishes normally, then b is forgotten.
  h2->finish({});
  REQUIRE(draining[0]->in_flight() == 0);
  REQUIRE(draining[0]->successes() == 1);
  REQUIRE(p.draining().empty());
  REQUIRE(p.collect() == 0);
  h1->release();
  REQUIRE(a->in_flight() == 0);
}

TEST_CASE("a new address under the same id is a new backend", "[balance][pool]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}}));
  auto old = p.find("a");
  auto h = take(p, "a");
  REQUIRE(p.update({{"a", 2, 1}}));
  auto fresh = p.find("a");
  REQUIRE(fresh != old);
  REQUIRE(fresh->address() == 2);
  REQUIRE(fresh->selections() == 0);
  REQUIRE(old->state() == bal::backend_state::draining);
  REQUIRE(p.draining().size() == 1);
}

TEST_CASE("a removed backend that comes back while draining is kept", "[balance][pool]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  auto b = p.find("b");
  auto h = take(p, "b");
  REQUIRE(p.update({{"a", 1, 1}}));
  REQUIRE(b->state() == bal::backend_state::draining);
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}}));
  REQUIRE(p.find("b") == b);
  REQUIRE(b->state() == bal::backend_state::healthy);
  REQUIRE(b->in_flight() == 1);
  REQUIRE(p.draining().empty());
}

TEST_CASE("probe health, operator drain and weights", "[balance][pool]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 2}, {"b", 2, 1}}));
  REQUIRE(p.max_weight() == 2);
  auto epoch = p.weights_epoch();

  REQUIRE(p.set_health("a", false));
  REQUIRE_FALSE(p.set_health("zz", false));
  REQUIRE(p.find("a")->state() == bal::backend_state::unhealthy);
  REQUIRE_FALSE(take(p, "a"));
  REQUIRE(p.set_health("a", true));
  REQUIRE(take(p, "a"));

  REQUIRE(p.drain("b"));
  REQUIRE(p.find("b")->state() == bal::backend_state::draining);
  REQUIRE_FALSE(take(p, "b"));
  REQUIRE(p.update({{"a", 1, 2}, {"b", 2, 1}}));  // a config reload does not undo a drain
  REQUIRE(p.find("b")->state() == bal::backend_state::draining);
  REQUIRE(p.undrain("b"));
  REQUIRE(take(p, "b"));

  REQUIRE(p.set_weight("b", 7));
  REQUIRE(p.weights_epoch() > epoch);
  REQUIRE(p.max_weight() == 7);
  REQUIRE(p.set_weight("b", 0));  // standby: kept, never picked
  REQUIRE(p.find("b")->state() == bal::backend_state::healthy);
  REQUIRE_FALSE(take(p, "b"));
  REQUIRE(p.max_weight() == 2);
}

TEST_CASE("slow start ramps the effective weight linearly from 10%", "[balance][pool]") {
  bal::pool_config cfg;
  cfg.slow_start = 10s;
  pool_t p{cfg};
  REQUIRE(p.update({{"a", 1, 10}}));
  auto a = p.find("a");
  const std::uint64_t full = 10 * bal::weight_scale;
  REQUIRE(a->effective_weight(test_clock::now()) == full);  // the first config starts at full weight

  REQUIRE(p.update({{"a", 1, 10}, {"b", 2, 10}}));  // added later: ramps
  auto b = p.find("b");
  auto t = test_clock::now();
  REQUIRE(b->effective_weight(t) == full / 10);
  REQUIRE(b->effective_weight(t + 5s) == Approx(full * 0.55).epsilon(0.001));
  REQUIRE(b->effective_weight(t + 9s) == Approx(full * 0.91).epsilon(0.001));
  REQUIRE(b->effective_weight(t + 10s) == full);
  REQUIRE(b->effective_weight(t + 1h) == full);
  REQUIRE(a->effective_weight(t) == full);

  // Back from unhealthy: the ramp starts again.
  test_clock::advance(1h);
  REQUIRE(p.set_health("a", false));
  test_clock::advance(1s);
  REQUIRE(p.set_health("a", true));
  t = test_clock::now();
  REQUIRE(a->effective_weight(t) == full / 10);
  REQUIRE(a->effective_weight(t + 2500ms) == Approx(full * 0.325).epsilon(0.001));
  REQUIRE(a->effective_weight(t + 10s) == full);
}

TEST_CASE("handles count in-flight flows and report outcomes", "[balance][pool]") {
  pool_t p;
  REQUIRE(p.update({{"a", 1, 1}}));
  auto a = p.find("a");
  {
    auto h = take(p, "a");
    REQUIRE(h);
    REQUIRE((*h)->id() == "a");
    REQUIRE(a->in_flight() == 1);
    auto moved = std::move(*h);
    REQUIRE(a->in_flight() == 1);
    moved.observe_latency(10ms);
    moved.succeed();
    moved.fail();  // the first outcome counts
    REQUIRE(a->successes() == 1);
    REQUIRE(a->failures() == 0);
  }  // released on destruction
  REQUIRE(a->in_flight() == 0);
  REQUIRE(a->latency() == 10ms);

  auto h = take(p, "a");
  h->observe_latency(20ms);  // EWMA, alpha 0.3: 10 + 0.3 * 10
  REQUIRE(a->latency().count() == Approx(13e6));
  h->release();
  h->release();
  REQUIRE(a->in_flight() == 0);
  REQUIRE_FALSE(*h);

  auto st = a->stats();
  REQUIRE(st.selections == 2);
  REQUIRE(st.successes == 1);
  REQUIRE(st.in_flight == 0);
  REQUIRE(st.state == bal::backend_state::healthy);
}

TEST_CASE("failures eject a backend through outlier detection, within the guard", "[balance][pool]") {
  bal::pool_config cfg;
  cfg.outlier.consecutive_failures = 3;
  cfg.outlier.base_ejection = 10s;
  cfg.outlier.max_ejected_percent = 50;
  cfg.slow_start = 4s;
  pool_t p{cfg};
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}, {"c", 3, 1}, {"d", 4, 1}}));
  auto fail3 = [&](std::string_view id) {
    for (int i = 0; i < 3; ++i)
      if (auto h = take(p, id)) h->finish(std::error_code(bal::error::no_backend));  // an upstream error
  };
  fail3("a");
  fail3("b");
  fail3("c");  // 50% of 4 = 2: the guard keeps c in
  auto now = test_clock::now();
  REQUIRE(p.find("a")->state(now) == bal::backend_state::ejected);
  REQUIRE(p.find("b")->state(now) == bal::backend_state::ejected);
  REQUIRE(p.find("c")->state(now) == bal::backend_state::healthy);
  REQUIRE(p.find("a")->ejections() == 1);
  REQUIRE(p.find("c")->failures() == 3);
  REQUIRE_FALSE(take(p, "a"));

  // After the ejection, a is back and ramps up (slow start from the end of the ejection).
  test_clock::advance(10s);
  auto a = p.find("a");
  REQUIRE(a->state() == bal::backend_state::healthy);
  REQUIRE(a->effective_weight() == bal::weight_scale / 10);
  REQUIRE(take(p, "a"));
}

TEST_CASE("the circuit breaker refuses flows while open", "[balance][pool]") {
  bal::pool_config cfg;
  cfg.breaker.consecutive_failures = 2;
  cfg.breaker.cool_down = 5s;
  cfg.breaker.half_open_trials = 1;
  cfg.outlier.consecutive_failures = 0;
  pool_t p{cfg};
  REQUIRE(p.update({{"a", 1, 1}}));
  for (int i = 0; i < 2; ++i) take(p, "a")->fail();
  auto a = p.find("a");
  REQUIRE(a->stats().breaker == rproxy::health::breaker_state::open);
  REQUIRE_FALSE(a->available());
  REQUIRE_FALSE(take(p, "a"));

  test_clock::advance(5s);
  REQUIRE(a->available());
  auto trial = take(p, "a");
  REQUIRE(trial);
  REQUIRE(trial->trial());
  REQUIRE_FALSE(take(p, "a"));  // one trial at a time
  trial->release();            // no outcome: the slot comes back
  auto trial2 = take(p, "a");
  REQUIRE(trial2);
  trial2->succeed();
  trial2->release();
  REQUIRE(a->stats().breaker == rproxy::health::breaker_state::closed);
  REQUIRE(take(p, "a"));
}

TEST_CASE("a balancer picks through the pool", "[balance][pool]") {
  pool_t p;
  bal::round_robin rr;
  REQUIRE_FALSE(rr.pick(p));  // empty pool
  REQUIRE(p.update({{"a", 1, 1}}));
  auto h = rr.pick(p);
  REQUIRE(h);
  REQUIRE(h->address() == 1);
}

TEST_CASE("a probe that sees an ejected, probe-down backend recover ends its ejection", "[balance][pool]") {
  bal::pool_config cfg;
  cfg.outlier.consecutive_failures = 2;
  cfg.outlier.base_ejection = 30s;
  cfg.outlier.max_ejected_percent = 50;
  pool_t p{cfg};
  REQUIRE(p.update({{"a", 1, 1}, {"b", 2, 1}, {"c", 3, 1}, {"d", 4, 1}}));
  auto fail2 = [&](std::string_view id) {
    for (int i = 0; i < 2; ++i)
      if (auto h = take(p, id)) h->finish(std::error_code(bal::error::no_backend));
  };
  fail2("a");
  REQUIRE(p.find("a")->state() == bal::backend_state::ejected);
  REQUIRE(p.set_health("a", true));  // a probe that never saw it down: the ejection stays
  REQUIRE(p.find("a")->state() == bal::backend_state::ejected);
  REQUIRE(p.set_health("a", false));
  test_clock::advance(1s);
  REQUIRE(p.set_health("a", true));  // down -> up: recovered
  REQUIRE(p.find("a")->state() == bal::backend_state::healthy);
  REQUIRE(p.find("a")->available());
  // The guard no longer counts a's ejection: two more may go (50% of 4).
  fail2("b");
  fail2("c");
  REQUIRE(p.find("b")->state() == bal::backend_state::ejected);
  REQUIRE(p.find("c")->state() == bal::backend_state::ejected);
  fail2("a");  // the back-off grows on repeat: 2 x 30 s, but the guard (2 of 4) refuses
  REQUIRE(p.find("a")->state() == bal::backend_state::healthy);
}
