// Tests for rproxy/app/mc_metrics.hpp: a Minecraft proxy's series, as a scrape shows them: bound
// per server (logins, pings by source, bytes, players and backend_up per backend) and counted
// once per flow when it closes (reject reason, handshake time, bytes).
#include <rproxy/app/mc_metrics.hpp>

#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/pipeline/verdict.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace {

namespace bal = rproxy::balance;

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

/// The flow fields mc_metrics reads.
struct fake_flow {
  std::optional<rproxy::reject_reason> rejected{};
  std::chrono::steady_clock::time_point started{};
  std::chrono::steady_clock::time_point hello_done{};
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
};

rproxy::app::mc_server_block lobby() {
  rproxy::app::mc_server_block sc;
  sc.name = "lobby";
  sc.backends = {{.address = {"127.0.0.1", 25566}}, {.address = {"127.0.0.1", 25567}}};
  return sc;
}

}  // namespace

TEST_CASE("mc_metrics: bind gives a server its series and fills its list's ping counters", "[app][mc_metrics]") {
  rproxy::observe::registry reg;
  const auto m = rproxy::app::mc_metrics::add_to(reg);
  const auto sc = lobby();
  auto pool = std::make_shared<bal::upstream_pool>();
  REQUIRE(pool->update(bal::pool_entries(sc.backends)));
  rproxy::flow::mc_server_list list;
  auto s = m.bind(sc, pool, list);

  s.logins->inc();
  REQUIRE(s.players.size() == 2);
  s.players.at("127.0.0.1:25567")->inc();
  for (auto* c : list.answered) REQUIRE(c != nullptr);
  list.answered[static_cast<std::size_t>(rproxy::flow::mc_ping_source::cache)]->inc(2);

  const auto text = reg.serialize_prometheus();
  INFO(text);
  CHECK(has_line(text, R"(mc_logins_total{server="lobby"} 1)"));
  CHECK(has_line(text, R"(mc_players_online{server="lobby",backend="127.0.0.1:25567"} 1)"));
  CHECK(has_line(text, R"(mc_players_online{server="lobby",backend="127.0.0.1:25566"} 0)"));
  CHECK(has_line(text, R"(mc_status_pings_total{server="lobby",source="cache"} 2)"));
  CHECK(has_line(text, R"(mc_status_pings_total{server="lobby",source="starting"} 0)"));
  // a backend the pool has as healthy is up; one it no longer lists is not
  CHECK(has_line(text, R"(mc_backend_up{server="lobby",backend="127.0.0.1:25566"} 1)"));
  REQUIRE(pool->update(bal::pool_entries({sc.backends[0]})));
  CHECK(has_line(reg.serialize_prometheus(), R"(mc_backend_up{server="lobby",backend="127.0.0.1:25567"} 0)"));
}

TEST_CASE("mc_metrics_stage: each flow counted once on close: reason, handshake time, bytes on its server", "[app][mc_metrics]") {
  rproxy::observe::registry reg;
  const auto m = rproxy::app::mc_metrics::add_to(reg);
  const auto sc = lobby();
  rproxy::flow::mc_server_list list;
  const auto s = m.bind(sc, std::make_shared<bal::upstream_pool>(), list);

  const rproxy::app::mc_metrics::server* target = &s;
  rproxy::app::mc_metrics_stage stage{&m, [&target](const fake_flow&) { return target; }};
  fake_flow joined;
  joined.started = std::chrono::steady_clock::now();
  joined.hello_done = joined.started + std::chrono::milliseconds(3);
  joined.bytes_from_client = 100;
  joined.bytes_to_client = 2000;
  stage.on_close(joined, {});

  target = nullptr;  // refused before a server was found: no bytes series, a reason
  fake_flow refused;
  refused.rejected = rproxy::reject_reason{rproxy::reject_code::forbidden, "banned"};
  stage.on_close(refused, {});

  const auto text = reg.serialize_prometheus();
  INFO(text);
  CHECK(has_line(text, R"(mc_bytes_total{server="lobby",direction="from_client"} 100)"));
  CHECK(has_line(text, R"(mc_bytes_total{server="lobby",direction="to_client"} 2000)"));
  CHECK(has_line(text, R"(mc_rejects_total{reason="forbidden"} 1)"));
  CHECK(has_line(text, R"(mc_handshake_seconds_count 1)"));  // the refused flow never completed a hello
  CHECK(has_line(text, R"(mc_handshake_seconds_bucket{le="0.005"} 1)"));
}
