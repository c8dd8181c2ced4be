// rproxy/app/quic_listen.hpp: an HTTP app's HTTP/3 listener: one QUIC endpoint per worker on
// the UDP port (SO_REUSEPORT with several workers; a packet that reached another worker's
// socket is handed to the worker whose connection ID it carries: net/quic/server_endpoint.hpp),
// each connection a flow::h3_app on the current world's pipelines of that worker. On shutdown:
// no new connection, GOAWAY on the others; each holds a drain guard until its requests are done.
// A World (app/versions.hpp) has `connections` and `pipelines` per worker, `options`, and
// `quic_tls` (an optional net::quic::tls_credentials: no connection is taken without it).
// Metrics, named `<prefix>_quic_*` and `<prefix>_early_data_requests`, are summed over the
// workers' endpoints at scrape time. Heavy to compile: an app instantiates it in a unit of its
// own and declares it extern in the others (as app/http_flows.hpp's flows):
//     extern template struct rproxy::app::h3_listener<my_app::runtime, my_app::world>;   // flows.hpp
//     template struct rproxy::app::h3_listener<my_app::runtime, my_app::world>;          // flows_h3.cpp
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/address.hpp>
#include <asio/post.hpp>

#include <rproxy/app/versions.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/flow/drain.hpp>
#include <rproxy/flow/h3.hpp>
#include <rproxy/net/quic/server_endpoint.hpp>
#include <rproxy/net/quic/udp.hpp>
#include <rproxy/observe/metrics.hpp>

namespace rproxy::app {

namespace detail {

template <class World>
struct h3_factory {
  using app_type = flow::h3_app<typename decltype(World::connections)::value_type, typename decltype(World::pipelines)::value_type>;
  versions<World>* worlds;
  const flow::h3_adapter* adapter;
  flow::drain_tracker* drain;
  std::size_t worker;
  std::uint64_t max_streams;
  std::array<observe::counter*, 2> early{};  ///< 0-RTT requests: forwarded, too_early

  std::optional<typename app_type::start_type> start() const {
    auto w = worlds->current();
    if (!w || !w->quic_tls || drain->draining()) return std::nullopt;
    const auto i = worker % w->pipelines.size();
    typename app_type::start_type s;
    s.conn = &w->connections[i];
    s.reqs = &w->pipelines[i];
    s.adapter = adapter;
    s.opts = &w->options;
    s.creds = &*w->quic_tls;
    s.max_streams = max_streams;
    s.early_forwarded = early[0], s.early_too_early = early[1];
    s.guard = drain->track();
    s.keep = std::move(w);
    return s;
  }
};

}  // namespace detail

/// The HTTP/3 listener of a World on a Runtime: a class so that one `extern template` line
/// keeps it out of a unit. Apps call open_quic.
template <class Runtime, class World>
struct h3_listener {
  static bool open(Runtime& rt, versions<World>& worlds, const config::endpoint& at, const net::quic::endpoint_settings& s,
                   const flow::h3_adapter& a, std::string_view prefix);
};

/// Opens the HTTP/3 listener on `at` (UDP) into `worlds`' pipelines, kept by the runtime until
/// it stops. False (logged): it cannot listen.
template <class Runtime, class World>
bool open_quic(Runtime& rt, versions<World>& worlds, const config::endpoint& at, const net::quic::endpoint_settings& s,
               const flow::h3_adapter& a, std::string_view prefix) {
  return h3_listener<Runtime, World>::open(rt, worlds, at, s, a, prefix);
}

// Defined out of the class (not inline), so that `extern template` keeps it out of a unit.
template <class Runtime, class World>
bool h3_listener<Runtime, World>::open(Runtime& rt, versions<World>& worlds, const config::endpoint& at,
                                       const net::quic::endpoint_settings& s, const flow::h3_adapter& a, std::string_view prefix) {
  using endpoint = net::quic::server_endpoint<detail::h3_factory<World>>;
  struct quic_listener {
    net::quic::endpoint_secrets secrets = net::quic::endpoint_secrets::generate();
    std::vector<std::unique_ptr<endpoint>> endpoints;
  };
  std::error_code ec;
  const auto addr = asio::ip::make_address(at.host, ec);
  if (ec) return rt.log().error("cannot listen", {{"listener", "quic"}, {"address", at.to_string()}, {"error", ec.message()}}), false;
  auto l = std::make_shared<quic_listener>();
  const std::string p(prefix);
  auto& early = rt.metrics().add_counter_family(
      p + "_early_data_requests", "HTTP/3 requests that came in 0-RTT: forwarded (with Early-Data: 1) or answered 425 (too_early).", {"outcome"});
  const std::array<observe::counter*, 2> early_counters{&early.with({"forwarded"}), &early.with({"too_early"})};
  const auto n = rt.pool().size();
  for (std::size_t i = 0; i < n; ++i) {
    auto sock = net::quic::open_udp_socket(rt.pool().executor(i), {addr, at.port}, n > 1);
    if (!sock) return rt.log().error("cannot listen", {{"listener", "quic"}, {"address", at.to_string()}, {"error", sock.error().message()}}), false;
    typename endpoint::options o{.worker = i, .workers = n, .secrets = &l->secrets, .settings = s};
    l->endpoints.push_back(std::make_unique<endpoint>(
        std::move(*sock), o, detail::h3_factory<World>{&worlds, &a, &rt.drain(), i, s.transport.max_streams_bidi, early_counters}));
  }
  std::vector<endpoint*> peers;
  for (auto& e : l->endpoints) peers.push_back(e.get());
  for (auto& e : l->endpoints) {
    e->set_peers(peers);
    auto* ep = e.get();
    asio::post(ep->get_executor(), [ep] { ep->start(); });
  }
  rt.keep(l);
  using stats = net::quic::endpoint_stats;
  auto sum = [l](stats::counter stats::*m) {
    return [l, m] {
      std::uint64_t t = 0;
      for (const auto& e : l->endpoints) t += stats::get(e->stats().*m);
      return static_cast<double>(t);
    };
  };
  auto& reg = rt.metrics();
  reg.add_callback_counter(p + "_quic_connections", "QUIC connections started (after address validation, if any).", sum(&stats::connections));
  reg.add_callback_gauge(p + "_quic_connections_active", "QUIC connections open.", sum(&stats::open));
  reg.add_callback_counter(p + "_quic_handshakes", "QUIC handshakes completed.", sum(&stats::handshakes));
  reg.add_callback_counter(p + "_quic_retries_sent", "Retry packets sent (address validation).", sum(&stats::retries_sent));
  reg.add_callback_counter(p + "_quic_bad_tokens", "Initial packets with an invalid or expired Retry token (closed with INVALID_TOKEN).",
                           sum(&stats::bad_tokens));
  reg.add_callback_counter(p + "_quic_version_negotiations", "Version Negotiation packets sent.", sum(&stats::version_negotiations));
  reg.add_callback_counter(p + "_quic_stateless_resets", "Stateless Reset packets sent (packets for connections we do not have).",
                           sum(&stats::stateless_resets));
  reg.add_callback_counter(p + "_quic_refused", "New QUIC connections refused (draining, or max connections).", sum(&stats::refused));
  reg.add_callback_counter(p + "_quic_handed_off", "Datagrams passed to the worker that owns their connection.", sum(&stats::handed_off));
  reg.add_callback_counter(p + "_quic_datagrams_dropped", "Datagrams received and dropped (undecodable, not for us).", sum(&stats::dropped));
  reg.add_callback_counter(p + "_quic_send_dropped", "Datagrams not sent: the socket's buffer was full (QUIC sends them again).",
                           sum(&stats::send_dropped));
  reg.add_callback_counter(p + "_quic_packets_lost",
                           "Sent packets with stream data that QUIC declared lost and sent again (counted per stream as it closes: "
                           "a packet of two streams counts twice; handshake and ACK-only packets are not seen).",
                           sum(&stats::packets_lost));
  reg.add_callback_gauge(p + "_quic_smoothed_rtt_seconds", "Mean smoothed RTT of the QUIC connections closed so far (0: none yet).", [l] {
    std::uint64_t k = 0, us = 0;
    for (const auto& e : l->endpoints) k += stats::get(e->stats().rtt_samples), us += stats::get(e->stats().rtt_sum_us);
    return k == 0 ? 0.0 : static_cast<double>(us) / static_cast<double>(k) / 1e6;
  });
  rt.log().info("listening", {{"listener", "quic"}, {"address", at.to_string()}, {"retry", s.retry}});
  rt.on_stop_accepting([l] {
    for (auto& e : l->endpoints) {
      auto* ep = e.get();
      asio::post(ep->get_executor(), [ep] {
        ep->stop_accepting();
        ep->for_each_connection([](auto& conn) { conn.app().shutdown(); });
      });
    }
  });
  return true;
}

}  // namespace rproxy::app
