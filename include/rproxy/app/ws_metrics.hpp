// rproxy/app/ws_metrics.hpp: a WebSocket server's metrics, from the counters its flows keep
// (flow::ws_stats, read at scrape time) and its hub's fan-out latency (flow/ws_hub.hpp).
//
//     rproxy::app::add_ws_metrics(rt.metrics(), stats, hub);   // once, at startup
//
//   ws_connections                  open connections (after the upgrade)
//   ws_upgrades_total, ws_handshake_failures_total, ws_silent_connections_total, ws_pages_total
//   ws_messages_in_total, ws_bytes_in_total, ws_messages_out_total, ws_bytes_out_total
//   ws_protocol_errors_total, ws_idle_closes_total
//   ws_send_dropped_total{policy}   messages a slow consumer did not get: drop_oldest,
//                                   drop_newest, close, over_limit
//   ws_fanout_latency_seconds       from a delivery to its frame on the last recipient's queue
//
// `stats` and `hub` must outlive the registry's scrapes (an app keeps them for the process).
#pragma once

#include <atomic>
#include <cstdint>

#include <rproxy/flow/ws.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::app {

inline void add_ws_metrics(observe::registry& m, const flow::ws_stats& st, flow::ws_hub& hub) {
  auto counter = [&m](const char* name, const char* help, const std::atomic<std::uint64_t>& v) {
    m.add_callback_counter(name, help, [&v] { return static_cast<double>(v.load(std::memory_order_relaxed)); });
  };
  m.add_callback_gauge("ws_connections", "Open WebSocket connections (after the upgrade).",
                       [&st] { return static_cast<double>(st.open.load(std::memory_order_relaxed)); });
  counter("ws_upgrades_total", "Upgrades accepted (101).", st.upgrades);
  counter("ws_handshake_failures_total", "Upgrade requests refused as malformed (400, 426, 431) or too slow (408).", st.handshake_failures);
  counter("ws_silent_connections_total", "Connections that ended before sending a byte (port probes); not handshake failures.", st.silent);
  counter("ws_pages_total", "Pages served (a plain GET without an upgrade).", st.pages);
  counter("ws_messages_in_total", "Messages received.", st.messages_in);
  counter("ws_bytes_in_total", "Bytes received after the upgrade.", st.bytes_in);
  counter("ws_messages_out_total", "Messages written.", st.messages_out);
  counter("ws_bytes_out_total", "Bytes written after the upgrade (frames).", st.bytes_out);
  counter("ws_protocol_errors_total", "Connections closed for a protocol error (1002, 1007, 1009).", st.protocol_errors);
  counter("ws_idle_closes_total", "Connections closed for idleness (no pong).", st.idle_closes);
  auto& drops = m.add_callback_counter_family("ws_send_dropped_total", "Messages not delivered to a slow consumer, by policy.", {"policy"});
  auto per_policy = [&drops](const char* policy, const std::atomic<std::uint64_t>& v) {
    drops.with({policy}, [&v] { return static_cast<double>(v.load(std::memory_order_relaxed)); });
  };
  per_policy("drop_oldest", st.dropped_oldest);
  per_policy("drop_newest", st.dropped_newest);
  per_policy("close", st.closed_slow);
  per_policy("over_limit", st.dropped_over_limit);
  hub.set_fanout_latency(&m.add_histogram(
      "ws_fanout_latency_seconds", "From a delivery (room message, event) to its frame on the last recipient's send queue.",
      {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5}));
}

}  // namespace rproxy::app
