#include <rproxy/observe/access_log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "json_lines.hpp"

namespace obs = rproxy::observe;
using namespace std::chrono_literals;

namespace {

obs::logger json_logger(std::ostringstream& out, obs::log_level lvl = obs::log_level::info) {
  return obs::make_logger(obs::log_format::json, lvl, std::make_shared<spdlog::sinks::ostream_sink_mt>(out), "access");
}

test_json::value only_line(const std::ostringstream& out) {
  const auto lines = test_json::lines_of(out.str());
  REQUIRE(lines.size() == 1);
  auto v = test_json::parse_json(lines[0]);
  INFO(lines[0]);
  REQUIRE(v);
  return *v;
}

// A protocol's own flow type, as the http codec might declare it.
struct http_flow : rproxy::flow_info {
  std::string method;
};

}  // namespace

TEST_CASE("access log: a successful flow", "[observe][log]") {
  std::ostringstream out;
  const auto log = json_logger(out);
  rproxy::flow_info f;
  f.id = 42;
  f.client = {asio::ip::make_address("127.0.0.1"), 50312};
  f.local = {asio::ip::make_address("::1"), 25565};
  f.route = "lobby";
  f.backend = asio::ip::tcp::endpoint{asio::ip::make_address("10.0.0.7"), 25566};
  f.identity = "alice";
  f.bytes_from_client = 1200;
  f.bytes_to_client = 34000;
  f.started = std::chrono::steady_clock::time_point(10s);

  obs::access_log(log, f, {}, std::span<const obs::field>{}, f.started + 1500ms);
  const auto v = only_line(out);
  CHECK(v.get("msg")->s == "access");
  CHECK(v.get("logger")->s == "access");
  CHECK(v.get("flow_id")->s == "42");
  CHECK(v.get("client")->s == "127.0.0.1:50312");
  CHECK(v.get("local")->s == "[::1]:25565");
  CHECK(v.get("route")->s == "lobby");
  CHECK(v.get("backend")->s == "10.0.0.7:25566");
  CHECK(v.get("identity")->s == "alice");
  CHECK(v.get("bytes_in")->s == "1200");
  CHECK(v.get("bytes_out")->s == "34000");
  CHECK(v.get("duration_ms")->n == 1500);
  CHECK(v.get("outcome")->s == "ok");
  CHECK(v.get("reject_code") == nullptr);
  CHECK(v.get("error") == nullptr);
}

TEST_CASE("access log: a rejected flow with extra fields, secrets redacted", "[observe][log]") {
  std::ostringstream out;
  const auto log = json_logger(out);
  http_flow f;
  f.id = 7;
  f.client = {asio::ip::make_address("127.0.0.1"), 4000};
  f.method = "GET";
  f.rejected = rproxy::reject_reason{rproxy::reject_code::rate_limited, "slow down", 30};

  obs::access_log(log, f, {}, {{"method", f.method}, {"status", 429}, {"authorization", "Basic dXNlcjpwYXNz"}});
  const auto v = only_line(out);
  CHECK(v.get("outcome")->s == "rejected");
  CHECK(v.get("reject_code")->s == "rate_limited");
  CHECK(v.get("reject_reason")->s == "slow down");
  CHECK(v.get("retry_after_s")->s == "30");
  CHECK(v.get("method")->s == "GET");
  CHECK(v.get("status")->s == "429");
  CHECK(v.get("authorization")->s == "[REDACTED]");
  CHECK(out.str().find("dXNlcjpwYXNz") == std::string::npos);
  CHECK(v.get("backend")->s.empty());
  CHECK(v.get("route")->s.empty());
  CHECK(v.get("duration_ms")->n == 0);  // never started
}

TEST_CASE("access log: an error closes the flow", "[observe][log]") {
  std::ostringstream out;
  const auto log = json_logger(out);
  rproxy::flow_info f;
  f.id = 9;
  obs::access_log(log, f, std::make_error_code(std::errc::connection_reset));
  const auto v = only_line(out);
  CHECK(v.get("outcome")->s == "error");
  CHECK(v.get("error")->s == std::make_error_code(std::errc::connection_reset).message());
  CHECK(v.get("client")->s.empty());  // unset endpoint
}

TEST_CASE("access log: nothing is built when info is off", "[observe][log]") {
  std::ostringstream out;
  const auto log = json_logger(out, obs::log_level::warn);
  rproxy::flow_info f;
  obs::access_log(log, f);
  CHECK(out.str().empty());
  obs::access_log(obs::logger{}, f);  // a null logger is fine too
}

TEST_CASE("endpoint_text", "[observe]") {
  CHECK(obs::endpoint_text({asio::ip::make_address("192.168.1.2"), 80}) == "192.168.1.2:80");
  CHECK(obs::endpoint_text({asio::ip::make_address("2001:db8::1"), 443}) == "[2001:db8::1]:443");
  CHECK(obs::endpoint_text({}) == "");
}

TEST_CASE("access log: a flow with no backend (flow_base) logs its route and backend empty", "[observe][log]") {
  std::ostringstream out;
  const auto log = json_logger(out);
  struct session_flow : rproxy::flow_base {  // as flow/ws.hpp's ws_flow
    int worker = 0;
  } f;
  f.id = 7;
  f.client = {asio::ip::make_address("192.0.2.1"), 4000};
  f.identity = "bob";
  obs::access_log(log, f);
  const auto v = only_line(out);
  CHECK(v.get("flow_id")->s == "7");
  CHECK(v.get("client")->s == "192.0.2.1:4000");
  CHECK(v.get("identity")->s == "bob");
  CHECK(v.get("route")->s.empty());
  CHECK(v.get("backend")->s.empty());
}
