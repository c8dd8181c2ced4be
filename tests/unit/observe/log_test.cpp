#include <rproxy/observe/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "json_lines.hpp"

namespace obs = rproxy::observe;

namespace {

// A logger writing into a string stream.
struct captured {
  std::ostringstream out;
  obs::logger log;

  explicit captured(obs::log_format f, obs::log_level lvl = obs::log_level::trace, obs::redaction_policy p = {}) {
    obs::logger_options o;
    o.format = f;
    o.level = lvl;
    o.name = "test";
    o.sinks.push_back(std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    o.redaction = std::move(p);
    log = obs::make_logger(o);
  }
  std::vector<std::string> lines() const { return test_json::lines_of(out.str()); }
};

test_json::value parse_line(const std::string& line) {
  auto v = test_json::parse_json(line);
  INFO("line: " << line);
  REQUIRE(v);
  REQUIRE(v->k == test_json::value::kind::object);
  return *v;
}

const std::regex iso_ts{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"};

}  // namespace

TEST_CASE("json: one object per line with ts, level, logger, msg and typed fields", "[observe][log]") {
  captured c{obs::log_format::json};
  c.log.info("backend down", {{"backend", "10.0.0.7:25565"},
                              {"failures", 3},
                              {"latency_s", 0.25},
                              {"healthy", false},
                              {"bytes", std::uint64_t{18446744073709551615ull}},
                              {"delta", -7}});
  c.log.warn("second");
  const auto lines = c.lines();
  REQUIRE(lines.size() == 2);

  const auto v = parse_line(lines[0]);
  REQUIRE(v.members.size() == 10);
  CHECK(v.members[0].key == "ts");
  CHECK(std::regex_match(v.get("ts")->s, iso_ts));
  CHECK(v.members[1].key == "level");
  CHECK(v.get("level")->s == "info");
  CHECK(v.get("logger")->s == "test");
  CHECK(v.get("msg")->s == "backend down");
  CHECK(v.get("backend")->s == "10.0.0.7:25565");
  CHECK(v.get("failures")->k == test_json::value::kind::number);
  CHECK(v.get("failures")->s == "3");
  CHECK(v.get("latency_s")->n == 0.25);
  CHECK(v.get("healthy")->k == test_json::value::kind::boolean);
  CHECK_FALSE(v.get("healthy")->b);
  CHECK(v.get("bytes")->s == "18446744073709551615");
  CHECK(v.get("delta")->s == "-7");

  const auto w = parse_line(lines[1]);
  CHECK(w.get("level")->s == "warn");
  CHECK(w.get("msg")->s == "second");
  CHECK(w.members.size() == 4);
}

TEST_CASE("json: hostile text cannot break or forge lines", "[observe][log]") {
  captured c{obs::log_format::json};
  const std::string evil = "a\"b\\c\nd\r\te\x01\x1f\x7f \xff\xfe caf\xc3\xa9 \xe2\x82 end";
  c.log.error(evil, {{"host", evil}, {"path", "/x\"}{\"injected\":1"}});
  const auto lines = c.lines();
  REQUIRE(lines.size() == 1);
  const auto v = parse_line(lines[0]);
  const std::string sanitized = "a\"b\\c\nd\r\te\x01\x1f\x7f \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end";
  CHECK(v.get("msg")->s == sanitized);
  CHECK(v.get("host")->s == sanitized);
  CHECK(v.get("path")->s == "/x\"}{\"injected\":1");
  CHECK(v.get("injected") == nullptr);
  CHECK(v.get("level")->s == "error");
}

TEST_CASE("json: fields named like reserved keys do not shadow them", "[observe][log]") {
  captured c{obs::log_format::json};
  c.log.info("real", {{"msg", "fake"}, {"level", "fake"}, {"ts", 1}, {"logger", "fake"}});
  const auto v = parse_line(c.lines().at(0));
  for (auto k : {"msg", "level", "ts", "logger"}) CHECK(v.count(k) == 1);
  CHECK(v.get("msg")->s == "real");
  CHECK(v.get("_msg")->s == "fake");
  CHECK(v.get("_level")->s == "fake");
  CHECK(v.get("_ts")->s == "1");
}

TEST_CASE("json: non-finite numbers become strings", "[observe][log]") {
  captured c{obs::log_format::json};
  c.log.info("x", {{"nan", std::numeric_limits<double>::quiet_NaN()}, {"inf", std::numeric_limits<double>::infinity()}});
  const auto v = parse_line(c.lines().at(0));
  CHECK(v.get("nan")->s == "NaN");
  CHECK(v.get("inf")->s == "+Inf");
}

TEST_CASE("secrets never reach a log line, in either format", "[observe][log][redact]") {
  const std::vector<std::string> secrets = {"s3cr3t-bearer-value", "c00kie-value", "api-key-value", "pw-value",
                                            "tok-value", "session-value", "rawjwt"};
  for (auto format : {obs::log_format::json, obs::log_format::text}) {
    captured c{format};
    c.log.warn("auth failed", {{"Authorization", "Bearer s3cr3t-bearer-value"},
                               {"cookie", "c00kie-value"},
                               {"X-Api-Key", "api-key-value"},
                               {"password", "pw-value"},
                               {"refresh_token", "tok-value"},
                               {"session_id", "session-value"},
                               {"pin", 1234},
                               {"innocent", "Bearer s3cr3t-bearer-value"},
                               {"note", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyYXdqd3QifQ.rawjwt"},
                               {"user", "alice"}});
    const auto text = c.out.str();
    INFO(text);
    for (const auto& s : secrets) CHECK(text.find(s) == std::string::npos);
    CHECK(text.find("1234") == std::string::npos);
    CHECK(text.find("alice") != std::string::npos);
    CHECK(text.find("[REDACTED]") != std::string::npos);
    if (format == obs::log_format::json) {
      const auto v = parse_line(c.lines().at(0));
      for (auto k : {"Authorization", "cookie", "X-Api-Key", "password", "refresh_token", "session_id", "pin",
                     "innocent", "note"})
        CHECK(v.get(k)->s == "[REDACTED]");
      CHECK(v.get("user")->s == "alice");
    }
  }
}

TEST_CASE("a custom redaction policy adds names", "[observe][log][redact]") {
  obs::redaction_policy p;
  p.add_name("x-tenant-code").add_substring("internal");
  captured c{obs::log_format::json, obs::log_level::info, p};
  c.log.info("m", {{"X-Tenant-Code", "t-1"}, {"my_internal_id", "i-2"}, {"route", "r-3"}});
  const auto v = parse_line(c.lines().at(0));
  CHECK(v.get("X-Tenant-Code")->s == "[REDACTED]");
  CHECK(v.get("my_internal_id")->s == "[REDACTED]");
  CHECK(v.get("route")->s == "r-3");
}

TEST_CASE("text: one human line per record, fields as name=value", "[observe][log]") {
  captured c{obs::log_format::text};
  c.log.info("backend down", {{"backend", "10.0.0.7:25565"}, {"failures", 3}, {"reason", "connect refused"},
                              {"empty", ""}, {"ok", true}});
  c.log.error("multi\nline\x01msg", {{"bad name=x", "v\nw"}});
  const auto lines = c.lines();
  REQUIRE(lines.size() == 2);
  const std::regex first{
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info  test: backend down backend=10\.0\.0\.7:25565 failures=3 reason="connect refused" empty="" ok=true)"};
  CHECK(std::regex_match(lines[0], first));
  CHECK(lines[1].ends_with(" error test: multi\\nline\\x01msg bad_name_x=\"v\\nw\""));
}

TEST_CASE("levels filter, and a default logger discards", "[observe][log]") {
  captured c{obs::log_format::json, obs::log_level::info};
  CHECK_FALSE(c.log.should_log(obs::log_level::debug));
  CHECK(c.log.should_log(obs::log_level::info));
  c.log.debug("hidden");
  c.log.trace("hidden");
  c.log.critical("shown");
  REQUIRE(c.lines().size() == 1);
  CHECK(parse_line(c.lines()[0]).get("level")->s == "critical");
  c.log.set_level(obs::log_level::off);
  c.log.critical("hidden");
  CHECK(c.lines().size() == 1);
  CHECK(c.log.level() == obs::log_level::off);

  obs::logger none;
  CHECK_FALSE(none);
  CHECK_FALSE(none.should_log(obs::log_level::critical));
  none.error("nowhere", {{"k", 1}});  // no crash
  none.flush();
}

TEST_CASE("plain spdlog calls on the same logger get the format, without fields", "[observe][log]") {
  captured c{obs::log_format::json};
  c.log.shared()->info("formatted {} {}", 1, "two");
  const auto v = parse_line(c.lines().at(0));
  CHECK(v.get("msg")->s == "formatted 1 two");
  CHECK(v.members.size() == 4);
}

TEST_CASE("fields travel with their own thread's call", "[observe][log]") {
  captured c{obs::log_format::json};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) c.log.info("tick", {{"thread", t}, {"i", i}, {"tag", t % 2 ? "odd" : "even"}});
    });
  for (auto& th : ts) th.join();
  const auto lines = c.lines();
  REQUIRE(lines.size() == 800);
  int per_thread[4] = {};
  for (const auto& line : lines) {
    const auto v = test_json::parse_json(line);
    REQUIRE(v);
    const int t = std::stoi(v->get("thread")->s);
    REQUIRE((t >= 0 && t < 4));
    CHECK(v->get("tag")->s == (t % 2 ? "odd" : "even"));
    CHECK(std::stoi(v->get("i")->s) == per_thread[t]++);  // in order per thread
  }
}

TEST_CASE("timestamps are UTC RFC 3339 with milliseconds", "[observe][log]") {
  obs::detail::timestamp_cache ts;
  std::string out;
  const auto tp = std::chrono::system_clock::time_point(std::chrono::milliseconds(1714564800123));
  ts.append(out, tp);
  CHECK(out == "2024-05-01T12:00:00.123Z");
  out.clear();
  ts.append(out, tp + std::chrono::milliseconds(5));  // same second: cached part reused
  CHECK(out == "2024-05-01T12:00:00.128Z");
  out.clear();
  ts.append(out, tp + std::chrono::hours(24 * 365));
  CHECK(out == "2025-05-01T12:00:00.123Z");
}

TEST_CASE("parse_log_format and parse_log_level", "[observe][log]") {
  CHECK(*obs::parse_log_format("json") == obs::log_format::json);
  CHECK(*obs::parse_log_format("text") == obs::log_format::text);
  auto bad = obs::parse_log_format("yaml");
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == obs::error::unknown_log_format);
  CHECK(bad.error() == rproxy::condition::internal);
  CHECK_FALSE(bad.error() == rproxy::condition::retry_safe);
  CHECK(bad.error().category().name() == std::string("rproxy.observe"));

  CHECK(*obs::parse_log_level("warn") == obs::log_level::warn);
  CHECK(*obs::parse_log_level("warning") == obs::log_level::warn);
  CHECK(*obs::parse_log_level("error") == obs::log_level::err);
  CHECK(*obs::parse_log_level("off") == obs::log_level::off);
  auto lvl = obs::parse_log_level("loud");
  REQUIRE_FALSE(lvl);
  CHECK(lvl.error() == obs::error::unknown_log_level);
  CHECK_FALSE(lvl.error().message().empty());
  CHECK(obs::to_string(obs::log_level::err) == "error");
}

TEST_CASE("make_logger(format, level) writes to the given sink", "[observe][log]") {
  std::ostringstream out;
  auto log = obs::make_logger(obs::log_format::json, obs::log_level::warn,
                              std::make_shared<spdlog::sinks::ostream_sink_mt>(out), "app");
  log.info("dropped");
  log.warn("kept", {{"k", "v"}});
  const auto lines = test_json::lines_of(out.str());
  REQUIRE(lines.size() == 1);
  const auto v = parse_line(lines[0]);
  CHECK(v.get("logger")->s == "app");
  CHECK(v.get("k")->s == "v");
}
