// rproxy/app/mc_metrics.hpp: a Minecraft proxy's metrics: per server (app/mc_server_block.hpp)
// logins, status pings by where the answer came from, bytes each way, players online and
// whether each backend is in rotation; per flow, rejects by reason and the handshake time.
//
//     auto m = rproxy::app::mc_metrics::add_to(registry);          // once, at startup
//     auto series = m.bind(server_block, pool, list);              // per server, per config version
//     auto stage = rproxy::app::mc_metrics_stage{&m, [](const auto& ctx) { return &server_of(ctx)->series; }};
//
//   mc_logins{server}                logins relayed to a backend (the app counts them on connect)
//   mc_status_pings{server,source}   status pings answered (the list's counters: flow/mc_server_list.hpp)
//   mc_players_online{server,backend} players connected through the proxy (the app moves them)
//   mc_bytes{server,direction}       bytes relayed, from_client and to_client
//   mc_backend_up{server,backend}    1 when the backend is healthy
//   mc_rejects{reason}               connections refused, by reject_code
//   mc_handshake_seconds             from accept to a complete hello
//
// Label values are bound on the control path (add_to, bind); flows only touch counters.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <rproxy/app/mc_server_block.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/core/error.hpp>
#include <rproxy/flow/mc_server_list.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::app {

struct mc_metrics {
  observe::counter_family* logins = nullptr;
  observe::counter_family* pings = nullptr;
  observe::gauge_family* players = nullptr;
  observe::counter_family* bytes = nullptr;
  observe::callback_family* backend_up = nullptr;
  observe::histogram* handshake = nullptr;
  std::array<observe::counter*, static_cast<std::size_t>(reject_code::internal) + 1> rejects_by{};  ///< by reject_code

  /// One server's series.
  struct server {
    observe::counter* logins = nullptr;
    observe::counter* bytes_in = nullptr;
    observe::counter* bytes_out = nullptr;
    std::unordered_map<std::string, observe::gauge*> players;  ///< by backend id
  };

  /// The families, registered once per registry.
  static mc_metrics add_to(observe::registry& reg) {
    mc_metrics f;
    f.logins = &reg.add_counter_family("mc_logins", "Logins relayed to a backend.", {"server"});
    f.pings = &reg.add_counter_family("mc_status_pings", "Status pings answered, by where the answer came from.", {"server", "source"});
    f.players = &reg.add_gauge_family("mc_players_online", "Players connected through the proxy.", {"server", "backend"});
    f.bytes = &reg.add_counter_family("mc_bytes", "Bytes relayed.", {"server", "direction"});
    f.backend_up = &reg.add_callback_gauge_family("mc_backend_up", "1 when the backend is in rotation.", {"server", "backend"});
    f.handshake = &reg.add_histogram("mc_handshake_seconds", "From accept to a complete hello (handshake + login or status request).",
                                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
    auto& rejects = reg.add_counter_family("mc_rejects", "Connections refused, by reason.", {"reason"});
    for (std::size_t c = 0; c < f.rejects_by.size(); ++c) f.rejects_by[c] = &rejects.with({to_string(static_cast<reject_code>(c))});
    return f;
  }

  /// Server `sc`'s series over `pool` (its backends'): its own, and its list's ping counters.
  server bind(const mc_server_block& sc, std::shared_ptr<const balance::upstream_pool> pool, flow::mc_server_list& list) const {
    server s{&logins->with({sc.name}), &bytes->with({sc.name, "from_client"}), &bytes->with({sc.name, "to_client"}), {}};
    for (std::size_t i = 0; i < list.answered.size(); ++i) list.answered[i] = &pings->with({sc.name, flow::mc_ping_source_names[i]});
    for (const auto& b : sc.backends) {
      auto id = b.address.to_string();
      s.players[id] = &players->with({sc.name, id});
      backend_up->with({sc.name, id}, [pool, id] {
        auto be = pool->find(id);
        return be && be->state() == balance::backend_state::healthy ? 1.0 : 0.0;
      });
    }
    return s;
  }

  /// A flow's close: its reject reason, its handshake time, and its bytes on `s` (its server's
  /// series; null: it found none).
  template <class Ctx>
  void closed(const Ctx& ctx, const server* s) const {
    if (ctx.rejected) rejects_by[static_cast<std::size_t>(ctx.rejected->code)]->inc();
    if (ctx.hello_done != std::chrono::steady_clock::time_point{}) handshake->observe(ctx.hello_done - ctx.started);
    if (s) {
      s->bytes_in->inc(ctx.bytes_from_client);
      s->bytes_out->inc(ctx.bytes_to_client);
    }
  }
};

/// The stage that counts each flow once, when it closes: put it first (its on_close runs last).
/// `series(ctx)` is the flow's server's mc_metrics::server, or null.
template <class SeriesOf>
struct mc_metrics_stage {
  const mc_metrics* metrics = nullptr;
  SeriesOf series;
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    metrics->closed(ctx, series(std::as_const(ctx)));
  }
};
template <class SeriesOf>
mc_metrics_stage(const mc_metrics*, SeriesOf) -> mc_metrics_stage<SeriesOf>;

}  // namespace rproxy::app
