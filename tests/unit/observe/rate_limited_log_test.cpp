#include <rproxy/observe/rate_limited_log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "json_lines.hpp"

namespace obs = rproxy::observe;
using namespace std::chrono_literals;

namespace {

// A clock the test moves by hand.
struct manual_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<manual_clock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static inline time_point current{std::chrono::hours(1)};
  static time_point now() noexcept { return current; }
  static void advance(duration d) { current += d; }
};

using limited = obs::basic_rate_limited_logger<manual_clock>;

struct fixture {
  std::ostringstream out;
  obs::logger log = obs::make_logger(obs::log_format::json, obs::log_level::info,
                                     std::make_shared<spdlog::sinks::ostream_sink_mt>(out), "audit");

  std::vector<test_json::value> records() const {
    std::vector<test_json::value> r;
    for (const auto& line : test_json::lines_of(out.str())) {
      auto v = test_json::parse_json(line);
      INFO(line);
      REQUIRE(v);
      r.push_back(*v);
    }
    return r;
  }
};

}  // namespace

TEST_CASE("rate limited: N lines per window per key, then a summary", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 3};
  int written = 0;
  for (int i = 0; i < 10; ++i) written += audit.log("10.0.0.1", obs::log_level::warn, "banned ip", {{"i", i}});
  CHECK(written == 3);
  CHECK(audit.suppressed_total() == 7);
  // Another key has its own budget.
  CHECK(audit.log("10.0.0.2", obs::log_level::warn, "banned ip"));

  auto recs = fx.records();
  REQUIRE(recs.size() == 4);
  CHECK(recs[2].get("i")->s == "2");
  CHECK(recs[3].get("i") == nullptr);

  // Next window: the summary comes first, then the new line.
  manual_clock::advance(1s);
  CHECK(audit.log("10.0.0.1", obs::log_level::warn, "banned ip", {{"i", 10}}));
  recs = fx.records();
  REQUIRE(recs.size() == 6);
  CHECK(recs[4].get("msg")->s == "7 messages suppressed");
  CHECK(recs[4].get("level")->s == "warn");
  CHECK(recs[4].get("log_key")->s == "10.0.0.1");
  CHECK(recs[4].get("suppressed")->s == "7");
  CHECK(recs[4].get("window_ms")->n == 1000);
  CHECK(recs[5].get("i")->s == "10");
}

TEST_CASE("rate limited: flush writes summaries of finished windows only", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 1};
  for (int i = 0; i < 5; ++i) audit.log("k", obs::log_level::err, "bad handshake");
  audit.flush();  // window still open: nothing yet
  CHECK(fx.records().size() == 1);
  manual_clock::advance(999ms);
  audit.flush();
  CHECK(fx.records().size() == 1);
  manual_clock::advance(1ms);
  audit.flush();
  auto recs = fx.records();
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].get("msg")->s == "4 messages suppressed");
  CHECK(recs[1].get("level")->s == "error");
  CHECK(audit.keys() == 0);  // the finished key was forgotten
  audit.flush();
  CHECK(fx.records().size() == 2);  // summaries are written once
}

TEST_CASE("rate limited: flush_all writes pending summaries at once", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 2};
  for (int i = 0; i < 4; ++i) audit.log("a", obs::log_level::info, "x");
  for (int i = 0; i < 3; ++i) audit.log("b", obs::log_level::info, "y");
  audit.flush_all();
  auto recs = fx.records();
  REQUIRE(recs.size() == 6);
  std::vector<std::string> summaries;
  for (std::size_t i = 4; i < 6; ++i) summaries.push_back(recs[i].get("log_key")->s + ":" + recs[i].get("msg")->s);
  std::sort(summaries.begin(), summaries.end());
  CHECK(summaries == std::vector<std::string>{"a:2 messages suppressed", "b:1 messages suppressed"});
  audit.flush_all();
  CHECK(fx.records().size() == 6);
}

TEST_CASE("rate limited: the key table is bounded", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 1, 4};
  for (int k = 0; k < 100; ++k) audit.log("ip" + std::to_string(k), obs::log_level::warn, "flood");
  CHECK(audit.keys() == 5);  // 4 keys + the shared overflow key
  CHECK(fx.records().size() == 5);
  CHECK(audit.suppressed_total() == 95);
  // After a window, stale keys make room again.
  manual_clock::advance(1s);
  CHECK(audit.log("fresh", obs::log_level::warn, "flood"));
  CHECK(audit.keys() == 1);
  const auto recs = fx.records();
  REQUIRE(recs.size() == 7);  // + the overflow key's summary + the fresh line
  CHECK(recs[5].get("log_key")->s == "*");
  CHECK(recs[5].get("suppressed")->s == "95");
}

TEST_CASE("rate limited: levels below the logger's are not counted", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 1};
  for (int i = 0; i < 5; ++i) CHECK_FALSE(audit.log("k", obs::log_level::debug, "noise"));
  CHECK(audit.suppressed_total() == 0);
  CHECK(audit.keys() == 0);
}

TEST_CASE("rate limited: secrets in fields are redacted like any log", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 5};
  audit.log("k", obs::log_level::warn, "bad token", {{"token", "abc123xyz"}});
  CHECK(fx.out.str().find("abc123xyz") == std::string::npos);
}

TEST_CASE("rate limited: safe from several threads", "[observe][log]") {
  fixture fx;
  limited audit{fx.log, 10};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) audit.log(t % 2 ? "odd" : "even", obs::log_level::warn, "m", {{"t", t}});
    });
  for (auto& th : ts) th.join();
  CHECK(fx.records().size() == 20);
  CHECK(audit.suppressed_total() == 4000 - 20);
}

TEST_CASE("rate limited: the real clock works too", "[observe][log]") {
  fixture fx;
  obs::rate_limited_logger audit{fx.log, 2};
  int written = 0;
  for (int i = 0; i < 5; ++i) written += audit.log("k", obs::log_level::info, "m");
  CHECK(written <= 5);
  CHECK(written >= 2);  // no timing assertion beyond the budget
  audit.flush_all();
}
