// Tests for rproxy/app/ws_metrics.hpp: a WebSocket server's series, as a scrape shows them: each
// counter of flow::ws_stats read at scrape time, drops by policy, the fan-out histogram set on
// the hub.
#include <rproxy/app/ws_metrics.hpp>

#include <rproxy/observe/registry.hpp>

#include <asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

}  // namespace

TEST_CASE("ws_metrics: every ws_stats counter is scraped as it is then, drops by policy", "[app][ws_metrics]") {
  asio::io_context ioc;
  rproxy::flow::ws_hub hub({ioc.get_executor()});
  rproxy::flow::ws_stats st;
  rproxy::observe::registry reg;
  rproxy::app::add_ws_metrics(reg, st, hub);

  auto text = reg.serialize_prometheus();
  CHECK(has_line(text, "ws_connections 0"));
  CHECK(has_line(text, "ws_upgrades_total 0"));
  CHECK(has_line(text, "ws_send_dropped_total{policy=\"close\"} 0"));

  st.open = 3;
  st.upgrades = 5;
  st.handshake_failures = 2;
  st.silent = 1;
  st.pages = 4;
  st.messages_in = 7;
  st.bytes_in = 700;
  st.messages_out = 9;
  st.bytes_out = 900;
  st.protocol_errors = 6;
  st.idle_closes = 8;
  st.dropped_oldest = 11;
  st.dropped_newest = 12;
  st.closed_slow = 13;
  st.dropped_over_limit = 14;
  text = reg.serialize_prometheus();
  CHECK(has_line(text, "ws_connections 3"));
  CHECK(has_line(text, "ws_upgrades_total 5"));
  CHECK(has_line(text, "ws_handshake_failures_total 2"));
  CHECK(has_line(text, "ws_silent_connections_total 1"));
  CHECK(has_line(text, "ws_pages_total 4"));
  CHECK(has_line(text, "ws_messages_in_total 7"));
  CHECK(has_line(text, "ws_bytes_in_total 700"));
  CHECK(has_line(text, "ws_messages_out_total 9"));
  CHECK(has_line(text, "ws_bytes_out_total 900"));
  CHECK(has_line(text, "ws_protocol_errors_total 6"));
  CHECK(has_line(text, "ws_idle_closes_total 8"));
  CHECK(has_line(text, "ws_send_dropped_total{policy=\"drop_oldest\"} 11"));
  CHECK(has_line(text, "ws_send_dropped_total{policy=\"drop_newest\"} 12"));
  CHECK(has_line(text, "ws_send_dropped_total{policy=\"close\"} 13"));
  CHECK(has_line(text, "ws_send_dropped_total{policy=\"over_limit\"} 14"));
  CHECK(has_line(text, "ws_fanout_latency_seconds_count 0"));
}
