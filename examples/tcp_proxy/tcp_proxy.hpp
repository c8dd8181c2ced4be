// examples/tcp_proxy/tcp_proxy.hpp: an L4 proxy made of rproxy parts. Per route: a listener,
// the flow driver's L4 adapter (PROXY protocol in and out, connect with failover, splice(2)
// relay), a pipeline per worker (metrics, route name, balancer), the pool's health checks and
// dynamic weights. A reload builds the next world (pools keep their state; flows keep theirs).
// Adding, removing or moving a listener needs a restart (the reload says so in the log).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/listen.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/flow/config.hpp>
#include <rproxy/flow/l4.hpp>
#include <rproxy/health/monitor.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/observe/pool_metrics.hpp>
#include <rproxy/route/fixed.hpp>

namespace tcp_proxy {

using namespace std::chrono_literals;
namespace cfg = rproxy::config;
namespace bal = rproxy::balance;

struct route_config {
  std::string name;
  cfg::endpoint listen;
  std::vector<bal::backend_settings> backends;
  bal::algorithm balancer = bal::algorithm::round_robin;
  std::chrono::milliseconds connect_timeout = 5s;
  std::chrono::milliseconds idle_timeout = 5min;
  rproxy::flow::proxy_protocol_config proxy_protocol{};
  std::optional<rproxy::health::check_config> health_check{};
  std::optional<rproxy::health::weights_config> dynamic_weights{};

  static constexpr auto describe() {
    return cfg::fields(cfg::required<&route_config::name>("route name (metrics label)"),
                       cfg::required<&route_config::listen>("address and port to accept clients on"),
                       cfg::required<&route_config::backends>("where flows go"),
                       cfg::doc<&route_config::balancer>("round_robin, weighted_round_robin, least_conn, random or lowest_latency"),
                       cfg::doc<&route_config::connect_timeout>("give up on a backend after this long, try the next"),
                       cfg::doc<&route_config::idle_timeout>("close flows with no bytes either way for this long"),
                       cfg::doc<&route_config::proxy_protocol>("PROXY protocol in and out"),
                       cfg::doc<&route_config::health_check>("active health checks of the backends (off when absent)"),
                       cfg::doc<&route_config::dynamic_weights>("weights from the backends' load reports (off when absent)"));
  }
  void validate(cfg::validator& v) const {
    if (backends.empty()) v.at(&route_config::backends).error("a route needs at least one backend");
    if (std::error_code ec; (void)asio::ip::make_address(listen.host, ec), ec)
      v.at(&route_config::listen).error("listen address must be an IP address: '" + listen.host + "'");
  }
};

struct config {
  rproxy::app::admin_config admin{};
  std::vector<route_config> routes;
  rproxy::flow::relay_config relay{};
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&config::admin>("admin HTTP endpoint (off when listen is unset)"),
                       cfg::required<&config::routes>("one listener and backend pool each"),
                       cfg::doc<&config::relay>("byte relay settings (a route's idle_timeout wins)"));
  }
  void validate(cfg::validator& v) const {
    std::set<std::string> names, listens;
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (!names.insert(routes[i].name).second)
        v.at(&config::routes).at(i).at(&route_config::name).error("duplicate route name '" + routes[i].name + "'");
      if (!listens.insert(routes[i].listen.to_string()).second)
        v.at(&config::routes).at(i).at(&route_config::listen).error("two routes listen on " + routes[i].listen.to_string());
    }
  }
};

using runtime = rproxy::app::runtime<config>;
using monitor = rproxy::health::monitor<bal::upstream_pool>;
using pipeline = decltype(rproxy::make_pipeline(std::declval<rproxy::observe::flow_metrics>(), rproxy::route::fixed{},
                                                bal::make_stage(std::shared_ptr<bal::upstream_pool>(), bal::any_balancer{})));

/// One config version of a route: what its flows run (a pipeline per worker); by route index,
/// none for a route a reload removed.
struct route_share { mutable std::vector<pipeline> pipelines; rproxy::flow::options options; };
struct world { std::vector<std::optional<route_share>> routes; };

inline int serve(runtime& rt) {
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  auto backend_metrics = rproxy::observe::pool_metrics::add_to(rt.metrics());
  auto& load_reports = monitor::report_family(rt.metrics());
  // Per route, as long as the process runs: its pool (state kept across reloads) and health.
  auto states = std::make_shared<std::vector<std::unique_ptr<monitor>>>();
  for (const auto& rc : rt.config().get()->routes) {
    auto& m = *states->emplace_back(std::make_unique<monitor>(rt.control().get_executor(), std::make_shared<bal::upstream_pool>(), rc.name, rt.log()));
    m.export_reports(load_reports);
  }
  // Applies a config to the pools and checks; the world its flows run (null: bad backends).
  auto apply = [&rt, states, families, backend_metrics](const std::shared_ptr<const config>& c) -> std::shared_ptr<const world> {
    auto w = std::make_shared<world>();
    for (auto& m : *states) {
      auto& share = w->routes.emplace_back();
      const route_config* rc = nullptr;
      for (const auto& x : c->routes) rc = x.name == m->label() ? &x : rc;
      if (!rc) {
        m->stop();
        rt.log().warn("route removed from config: it refuses new flows until restart", {{"route", m->label()}});
        continue;
      }
      if (auto r = m->update(bal::pool_entries(rc->backends), rc->health_check, rc->dynamic_weights); !r) {
        rt.log().error("bad backends", {{"route", m->label()}, {"error", r.error().message()}});
        return nullptr;
      }
      backend_metrics->track(m->label(), m->pool());
      share.emplace();
      share->options = rproxy::flow::make_options(rc->proxy_protocol, c->relay);
      share->options.connect_timeout = rc->connect_timeout;
      share->options.relay.idle_timeout = rc->idle_timeout;
      for (std::size_t i = 0; i < rt.pool().size(); ++i)
        share->pipelines.push_back(rproxy::make_pipeline(rproxy::observe::flow_metrics{families, m->label()}, rproxy::route::fixed{m->label()},
                                                         bal::make_stage(m->pool(), bal::any_balancer::make(rc->balancer, i + 1))));
    }
    return w;
  };
  auto first = apply(rt.config().get());
  if (!first) return 1;
  auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
  rt.keep(worlds);
  for (std::size_t i = 0; i < states->size(); ++i) {
    auto part = [i](const world& w) { return w.routes[i] ? &*w.routes[i] : nullptr; };
    if (!rproxy::app::listen(rt, rt.config().get()->routes[i].listen, (*states)[i]->label(),
                             worlds->handler(rt.drain(), rproxy::flow::l4_adapter{}, part)))
      return 1;
  }
  rt.on_stop_accepting([states] {
    for (auto& m : *states) m->stop();
  });
  rt.on_reload([worlds, apply](const std::shared_ptr<const config>& c) {
    if (auto w = apply(c)) worlds->swap(std::move(w));
  });
  return 0;
}

}  // namespace tcp_proxy
