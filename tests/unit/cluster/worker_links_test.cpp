// cluster::worker_links: an instance that cannot reach Redis at start says so once (warning, with
// host:port, the reason and the policy in effect), then once per transition (connected, lost),
// never per retry; /metrics shows rproxy_cluster_redis_up, rproxy_cluster_degraded and the count
// of transitions. Redis is a redis-server of the test's own, on a port where nothing listens at
// first.
#include <rproxy/cluster/worker_links.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "redis_server.hpp"
#include "run_until.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;
namespace obs = rproxy::observe;

namespace {

std::size_t count_lines(const std::vector<std::string>& lines, std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; }));
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool has_metric(const obs::registry& m, std::string_view line) {
  const std::string text = m.serialize_prometheus();
  return text.find(std::string(line) + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("worker_links: unreachable at start is logged once with the policy; each transition after once; gauges follow",
          "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  rs.kill();  // the port is now one where nothing listens

  // The test drives the only worker's context on this thread: the stream is written here alone.
  std::ostringstream text;
  obs::logger log = obs::make_logger(obs::log_format::text, obs::log_level::info, std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
  auto lines = [&] { return split_lines(text.str()); };

  cl::redis_options o;
  o.port = rs.port();
  o.key_prefix = "t:";
  o.password = "s3cret-never-logged";
  o.connect_timeout = 500ms;
  o.reconnect_min = 10ms;
  o.reconnect_max = 20ms;  // many retries while nothing listens: none of them may log

  rproxy::net::io_pool pool(1);  // not started: the test drives the worker's context itself
  obs::registry metrics;
  rproxy::middleware::local_counter_store local;
  cl::worker_links links(pool, o, metrics, log, local);
  links.policy("rate limits on_failure=closed");
  int failures = 0;  // connect attempts that failed, seen by the client
  links.client(0)->on_connect_failed([&](std::string_view) { ++failures; });
  links.start();

  auto& io = pool.context(0);
  REQUIRE(rproxy::test::run_until(io, [&] { return count_lines(lines(), "unreachable at start") == 1; }));
  // Several back-off retries fail (each a connect to a closed port); none may log.
  const auto retries_before = count_lines(lines(), "redis");
  REQUIRE(rproxy::test::run_until(io, [&] { return failures >= 5; }));
  auto l = lines();
  CHECK(count_lines(l, "unreachable at start") == 1);
  CHECK(count_lines(l, "redis") == retries_before);  // nothing per retry
  const std::string start_line = l.at(0);
  CHECK(start_line.find("127.0.0.1:" + std::to_string(rs.port())) != std::string::npos);
  CHECK(start_line.find("on_failure=closed") != std::string::npos);
  CHECK(start_line.find("s3cret") == std::string::npos);
  CHECK(links.degraded_workers() == 1);
  CHECK(has_metric(metrics, "rproxy_cluster_redis_up 0"));
  CHECK(has_metric(metrics, "rproxy_cluster_degraded 1"));
  CHECK(has_metric(metrics, "rproxy_cluster_redis_transitions_total 0"));

  // Redis comes up: "connected" once, the gauges turn.
  REQUIRE(rs.restart());
  REQUIRE(rproxy::test::run_until(io, [&] { return links.client(0)->ready() && links.degraded_workers() == 0; }));
  l = lines();
  CHECK(count_lines(l, "redis connected") == 1);
  CHECK(has_metric(metrics, "rproxy_cluster_redis_up 1"));
  CHECK(has_metric(metrics, "rproxy_cluster_degraded 0"));
  CHECK(has_metric(metrics, "rproxy_cluster_redis_transitions_total 1"));

  // Redis goes away: "unavailable" once (with the policy), whatever the retries; then back once more.
  rs.kill();
  REQUIRE(rproxy::test::run_until(io, [&] { return links.degraded_workers() == 1; }));
  failures = 0;
  REQUIRE(rproxy::test::run_until(io, [&] { return failures >= 5; }));
  l = lines();
  CHECK(count_lines(l, "redis unavailable") == 1);
  CHECK(count_lines(l, "unreachable at start") == 1);
  CHECK(has_metric(metrics, "rproxy_cluster_redis_up 0"));
  CHECK(has_metric(metrics, "rproxy_cluster_redis_transitions_total 2"));
  REQUIRE(rs.restart());
  REQUIRE(rproxy::test::run_until(io, [&] { return links.degraded_workers() == 0; }));
  l = lines();
  CHECK(count_lines(l, "redis connected") == 2);
  CHECK(has_metric(metrics, "rproxy_cluster_redis_transitions_total 3"));
  for (const auto& line : l) CHECK(line.find("s3cret") == std::string::npos);
}

TEST_CASE("worker_links without a redis block: nothing logged, not degraded, redis_up 0", "[cluster]") {
  std::ostringstream text;
  obs::logger log = obs::make_logger(obs::log_format::text, obs::log_level::info, std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
  rproxy::net::io_pool pool(1);
  obs::registry metrics;
  rproxy::middleware::local_counter_store local;
  cl::worker_links links(pool, std::nullopt, metrics, log, local);
  links.start();
  pool.context(0).poll();
  CHECK_FALSE(links.enabled());
  CHECK(links.degraded_workers() == 0);
  CHECK(text.str().empty());
  CHECK(has_metric(metrics, "rproxy_cluster_degraded 0"));
  CHECK(has_metric(metrics, "rproxy_cluster_redis_up 0"));
}
