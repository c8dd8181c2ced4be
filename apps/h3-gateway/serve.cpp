// apps/h3-gateway/serve.cpp: the gateway's composition (serve, declared in gateway.hpp): the state
// kept across config versions, a world per version, listeners, admin API and reloads. Its flows
// are compiled in their own units (flows.hpp), its config decoder in config.cpp.
#include "admin_api.hpp"
#include "flows.hpp"
#include "gateway.hpp"
#include "listeners.hpp"

namespace h3_gateway {

/// State kept across config versions: pools and health monitors by group name, metrics.
struct app {
  explicit app(runtime& r) : rt(r), shared(r, *r.config().get()), pool_metrics(obs::pool_metrics::add_to(r.metrics())) {
    auto& fam = r.metrics().add_counter_family("h3gw_requests", "Requests by route, status class (none: no status sent) and backend.",
                                               {"route", "status_class", "backend"});
    requests = &fam;
    const auto buckets = obs::exponential_buckets(0.0001, 2, 17);  // 100 us .. 6.6 s
    duration = &r.metrics().add_histogram_family("h3gw_request_duration_seconds",
                                                 "Requests from their head read to their end (downstream latency).", {"route"}, buckets);
    upstream = &r.metrics().add_histogram_family(
        "h3gw_upstream_duration_seconds", "From the backend connection to its response head (upstream latency).", {"route", "backend"}, buckets);
    retries = &r.metrics().add_counter_family("h3gw_retries", "Attempts retried on another pick (failed connects, resets, 502/503).", {"route"});
    shed = &r.metrics().add_counter_family("h3gw_retries_shed", "Requests refused (503) because the route's retry budget was spent.", {"route"});
    upgrades = &r.metrics().add_counter_family("h3gw_upgrades", "Connections switched to another protocol (WebSocket): 101 relayed.",
                                               {"route"});
    rejects = &r.metrics().add_counter_family("h3gw_rejects", "Requests a stage refused, by reason (unauthorized, rate_limited, ...).",
                                              {"route", "reason"});
    connections_open = &r.metrics().add_gauge("h3gw_connections_active", "Open client connections.");
    connections_accepted = &r.metrics().add_counter("h3gw_connections", "Client connections accepted.");
  }

  std::shared_ptr<const world> build(const std::shared_ptr<const config>& c) {
    auto w = std::make_shared<world>(rt, c, shared);
    if (!w->load()) return nullptr;
    for (const auto& g : c->groups) {  // a group keeps its pool while its breaker and outlier settings stay
      auto it = pools.find(g.name);
      if (it != pools.end() && it->second.breaker == g.breaker && it->second.outlier == g.outlier) w->pools.push_back(it->second.pool);
      else w->pools.push_back(std::make_shared<bal::upstream_pool>(g.pool_settings()));
    }
    static constexpr std::array<const char*, 6> classes{"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    auto row = [&](const std::string& route, const std::string& backend) {
      request_metrics::row r{};
      for (std::size_t i = 0; i < r.size(); ++i) r[i] = &requests->with({route, classes[i], backend});
      return r;
    };
    for (std::size_t i = 0; i < w->table.routes().size(); ++i) {
      const auto& name = w->table.routes()[i].name();
      auto& m = w->requests.emplace_back(request_metrics::per_route{row(name, ""), {}, &duration->with({name}), &retries->with({name}),
                                                                    &shed->with({name}), &upgrades->with({name}), rejects, name});
      for (const auto g : w->groups[i])
        for (const auto& b : c->groups[g].backends)
          m.backends.push_back({asio::ip::tcp::endpoint{asio::ip::make_address(b.address.host), b.address.port},
                                row(name, b.address.to_string()), &upstream->with({name, b.address.to_string()})});
    }
    w->requests.push_back({row("", ""), {}, &duration->with({""}), &retries->with({""}), &shed->with({""}), &upgrades->with({""}), rejects, ""});
    w->connections_open = connections_open;
    w->connections_accepted = connections_accepted;
    for (std::size_t i = 0; i < rt.pool().size(); ++i) {
      w->connections.push_back(connection_pipeline(*w));
      w->pipelines.push_back(request_pipeline(*w, 0x9e3779b97f4a7c15ull * (i + 1)));
    }
    if (c->tls) {  // certificates are read again on every reload
      auto t = load_tls(*c->tls);
      if (!t) return rt.log().error("cannot load TLS certificates", {{"error", t.error().message}}), nullptr;
      w->tls.emplace(std::move(*t));
    }
    rproxy::flow::http1_adapter listener_only;  // the adapter's own settings are the first config's
    c->limits.apply(listener_only, w->options);
    const auto pp = rproxy::flow::make_options(c->proxy_protocol, {});
    w->options.accept = pp.accept;
    w->options.trusted = pp.trusted;
    w->options.send = pp.send;
    unsigned most = 2;  // the driver's attempts cover the route with the most retries
    for (const auto& r : w->retry_rules) most = std::max(most, r.max_retries);
    w->options.max_connect_attempts = most + 1;
    return w;
  }

  /// Sets each group's backends and health checks on the world's pools (monitors kept by name
  /// while their pool is; gone groups stop).
  bool apply(const config& c, const world& w) {
    std::map<std::string, std::unique_ptr<rproxy::health::monitor<bal::upstream_pool>>> next;
    for (std::size_t i = 0; i < c.groups.size(); ++i) {
      const auto& g = c.groups[i];
      const auto& pool = w.pools[i];
      pools[g.name] = {pool, g.breaker, g.outlier};
      auto& m = next[g.name];
      if (auto it = monitors.find(g.name); it != monitors.end() && it->second->pool() == pool) m = std::move(it->second);
      else m = std::make_unique<rproxy::health::monitor<bal::upstream_pool>>(rt.control().get_executor(), pool, g.name, rt.log());
      if (auto r = m->update(bal::pool_entries(g.backends), g.health_check, g.dynamic_weights); !r)
        return rt.log().error("bad backends", {{"group", g.name}, {"error", r.error().message()}}), false;
      pool_metrics->track(g.name, pool);
    }
    for (const auto& [name, m] : monitors)
      if (!next.contains(name)) pool_metrics->untrack(name);
    monitors = std::move(next);
    return true;
  }

  runtime& rt;
  shared_state shared;
  std::shared_ptr<obs::pool_metrics> pool_metrics;
  obs::counter_family* requests = nullptr;
  obs::histogram_family* duration = nullptr;
  obs::histogram_family* upstream = nullptr;
  obs::counter_family* retries = nullptr;
  obs::counter_family* shed = nullptr;
  obs::counter_family* upgrades = nullptr;
  obs::counter_family* rejects = nullptr;
  obs::gauge* connections_open = nullptr;
  obs::counter* connections_accepted = nullptr;
  /// A group's pool and the settings it was made with (kept across reloads while they stay).
  struct group_pool {
    std::shared_ptr<bal::upstream_pool> pool;
    std::optional<rproxy::health::breaker_block> breaker;
    rproxy::health::outlier_block outlier;
  };
  std::map<std::string, group_pool> pools;
  std::map<std::string, std::unique_ptr<rproxy::health::monitor<bal::upstream_pool>>> monitors;
  rproxy::flow::http1_adapter adapter{};
  rproxy::flow::h2_adapter h2{.http1 = &adapter};
};

int serve(runtime& rt) {
  auto a = std::make_shared<app>(rt);
  rt.keep(a);
  const auto c = rt.config().get();
  if (!a->shared.sink.ok()) return rt.log().error("cannot open the audit file", {{"file", c->audit.file}}), 1;
  a->adapter.drain = &rt.drain();
  a->adapter.json_errors = true;
  rproxy::flow::options unused;
  c->limits.apply(a->adapter, unused);
  c->forwarding.apply(a->adapter);
  if (c->jwt && c->jwt->issuers.empty() && c->jwt->audiences.empty())
    rt.log().warn("jwt: neither issuers nor audiences are set: any token one of the keys signed is accepted, whoever it was issued for");
  auto first = a->build(c);
  if (!first || !a->apply(*c, *first)) return 1;
  auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
  rt.keep(worlds);
  mount_admin_api(rt, worlds);
  c->h2.apply(a->h2.limits, c->limits);
  auto ls = std::make_shared<listeners<world>>(listeners<world>{*worlds, rt.drain(), a->adapter, a->h2});
  rt.keep(ls);
  if (!ls->open(rt, *c)) return 1;
  rt.on_stop_accepting([a] { a->monitors.clear(); });
  rt.on_reload([a, worlds](const std::shared_ptr<const config>& next) {
    auto w = a->build(next);
    if (!w || !a->apply(*next, *w)) return a->rt.log().error("routes not updated; the previous config keeps serving");
    worlds->swap(std::move(w));
    a->rt.log().info("routes updated", {{"routes", next->http.routes.size()}, {"groups", next->groups.size()}});
  });
  return 0;
}

}  // namespace h3_gateway
