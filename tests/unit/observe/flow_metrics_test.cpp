// Tests for rproxy/observe/flow_metrics.hpp: the per-route flow counters a pipeline stage keeps.
#include <rproxy/observe/flow_metrics.hpp>

#include <rproxy/net/error.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/verdict.hpp>

#include <catch2/catch.hpp>

#include <asio/error.hpp>

#include <chrono>
#include <string>
#include <system_error>

namespace obs = rproxy::observe;
using namespace std::chrono_literals;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

// One flow through the stage: accepted, then closed with `ec` after moving the given bytes.
void run_flow(obs::flow_metrics& m, std::error_code ec, std::uint64_t in = 0, std::uint64_t out = 0,
              std::optional<rproxy::reject_reason> rejected = {}) {
  rproxy::flow_info ctx;
  ctx.started = std::chrono::steady_clock::now() - 5ms;
  REQUIRE(m.on_accept(ctx).is_next());
  ctx.bytes_from_client = in;
  ctx.bytes_to_client = out;
  ctx.rejected = rejected;
  m.on_close(ctx, ec);
}

}  // namespace

TEST_CASE("flow_metrics: flows, bytes and each outcome counted on its route", "[observe][flow_metrics]") {
  obs::registry reg;
  auto fam = obs::flow_metrics::families::add_to(reg);
  obs::flow_metrics lobby(fam, "lobby");

  run_flow(lobby, {}, 10, 200);                                                   // ok
  run_flow(lobby, rproxy::net::error::backend_reset, 3, 4);                        // upstream
  run_flow(lobby, rproxy::net::error::connect_refused);                            // upstream
  run_flow(lobby, rproxy::net::error::client_reset, 5, 0);                         // downstream
  run_flow(lobby, rproxy::net::error::accept_exhausted);                           // internal
  run_flow(lobby, make_error_code(asio::error::connection_reset));                 // foreign: downstream
  run_flow(lobby, {}, 1, 0, rproxy::reject_reason{rproxy::reject_code::rate_limited, "slow down", 3});
  run_flow(lobby, rproxy::net::error::client_reset, 0, 0,                          // a rejection wins over ec
           rproxy::reject_reason{rproxy::reject_code::banned, "", 0});

  const auto t = reg.serialize_prometheus();
  CHECK(has_line(t, R"(rproxy_flows_total{route="lobby"} 8)"));
  CHECK(has_line(t, R"(rproxy_flows_in_progress{route="lobby"} 0)"));
  CHECK(has_line(t, R"(rproxy_flows_closed_total{route="lobby",outcome="ok"} 1)"));
  CHECK(has_line(t, R"(rproxy_flows_closed_total{route="lobby",outcome="upstream"} 2)"));
  CHECK(has_line(t, R"(rproxy_flows_closed_total{route="lobby",outcome="downstream"} 2)"));
  CHECK(has_line(t, R"(rproxy_flows_closed_total{route="lobby",outcome="internal"} 1)"));
  CHECK(has_line(t, R"(rproxy_flows_closed_total{route="lobby",outcome="rejected"} 2)"));
  CHECK(has_line(t, R"(rproxy_rejects_total{route="lobby",reason="rate_limited"} 1)"));
  CHECK(has_line(t, R"(rproxy_rejects_total{route="lobby",reason="banned"} 1)"));
  CHECK(has_line(t, R"(rproxy_bytes_total{route="lobby",direction="from_client"} 19)"));
  CHECK(has_line(t, R"(rproxy_bytes_total{route="lobby",direction="to_client"} 204)"));
  CHECK(has_line(t, R"(rproxy_flow_duration_seconds_count{route="lobby"} 8)"));
  // each flow lasted at least 5 ms: none falls in the first bucket (1 ms)
  CHECK(has_line(t, R"(rproxy_flow_duration_seconds_bucket{route="lobby",le="0.001"} 0)"));
}

TEST_CASE("flow_metrics: in progress between accept and close; routes kept apart", "[observe][flow_metrics]") {
  obs::registry reg;
  auto fam = obs::flow_metrics::families::add_to(reg);
  obs::flow_metrics a(fam, "a"), b(fam, "b");
  rproxy::flow_info f1, f2;
  REQUIRE(a.on_accept(f1).is_next());
  REQUIRE(a.on_accept(f2).is_next());
  auto t = reg.serialize_prometheus();
  CHECK(has_line(t, R"(rproxy_flows_in_progress{route="a"} 2)"));
  CHECK(has_line(t, R"(rproxy_flows_in_progress{route="b"} 0)"));
  a.on_close(f1, {});
  t = reg.serialize_prometheus();
  CHECK(has_line(t, R"(rproxy_flows_in_progress{route="a"} 1)"));
  CHECK(has_line(t, R"(rproxy_flows_total{route="b"} 0)"));
  // a flow without a start time (never started) is not observed in the duration histogram
  a.on_close(f2, {});
  t = reg.serialize_prometheus();
  CHECK(has_line(t, R"(rproxy_flow_duration_seconds_count{route="a"} 0)"));
  CHECK(has_line(t, R"(rproxy_flows_closed_total{route="a",outcome="ok"} 2)"));
  run_flow(b, {});
  t = reg.serialize_prometheus();
  CHECK(has_line(t, R"(rproxy_flows_total{route="b"} 1)"));
  CHECK(has_line(t, R"(rproxy_flows_total{route="a"} 2)"));
}

TEST_CASE("flow_metrics: a prefix names the families", "[observe][flow_metrics]") {
  obs::registry reg;
  auto fam = obs::flow_metrics::families::add_to(reg, "mc");
  obs::flow_metrics m(fam, "survival");
  run_flow(m, {}, 7, 9);
  const auto t = reg.serialize_prometheus();
  CHECK(has_line(t, R"(mc_flows_total{route="survival"} 1)"));
  CHECK(has_line(t, R"(mc_bytes_total{route="survival",direction="to_client"} 9)"));
  CHECK(t.find("rproxy_") == std::string::npos);
}
