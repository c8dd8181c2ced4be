// h3-gateway: an HTTP API gateway and load balancer made of rproxy parts (gateway.hpp), HTTP/1.1
// for now. Routes pick a backend group, the group's balancer a backend; see docs/h3-gateway.md.
//   h3-gateway [run] --config h3-gateway.yaml | validate FILE | init | --version
#include <rproxy/app/run_main.hpp>

#include "gateway.hpp"

namespace h3_gateway {

/// State kept across config versions: pools and health monitors by group name, metrics.
struct app {
  explicit app(runtime& r) : rt(r), shared(r, *r.config().get()), pool_metrics(obs::pool_metrics::add_to(r.metrics())) {
    auto& fam = r.metrics().add_counter_family("h3gw_requests", "Requests by route, status class (none: no status sent) and backend.",
                                               {"route", "status_class", "backend"});
    requests = &fam;
  }

  std::shared_ptr<const world> build(const std::shared_ptr<const config>& c) {
    auto w = std::make_shared<world>(rt, c, shared);
    if (!w->load()) return nullptr;
    for (const auto& g : c->groups) {
      auto& p = pools[g.name];
      if (!p) p = std::make_shared<bal::upstream_pool>();
      w->pools.push_back(p);
    }
    static constexpr std::array<const char*, 6> classes{"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    auto row = [&](const std::string& route, const std::string& backend) {
      request_metrics::row r{};
      for (std::size_t i = 0; i < r.size(); ++i) r[i] = &requests->with({route, classes[i], backend});
      return r;
    };
    for (std::size_t i = 0; i < w->table.routes().size(); ++i) {
      auto& m = w->requests.emplace_back(request_metrics::per_route{row(w->table.routes()[i].name(), ""), {}});
      for (const auto g : w->groups[i])
        for (const auto& b : c->groups[g].backends)
          m.backends.emplace_back(asio::ip::tcp::endpoint{asio::ip::make_address(b.address.host), b.address.port},
                                  row(w->table.routes()[i].name(), b.address.to_string()));
    }
    w->requests.push_back({row("", ""), {}});
    for (std::size_t i = 0; i < rt.pool().size(); ++i) {
      w->connections.push_back(connection_pipeline(*w));
      w->pipelines.push_back(request_pipeline(*w, 0x9e3779b97f4a7c15ull * (i + 1)));
    }
    rproxy::flow::http1_adapter listener_only;  // the adapter's own settings are the first config's
    c->limits.apply(listener_only, w->options);
    return w;
  }

  /// Sets each group's backends and health checks (monitors kept by name; gone groups stop).
  bool apply(const config& c) {
    std::map<std::string, std::unique_ptr<rproxy::health::monitor<bal::upstream_pool>>> next;
    for (const auto& g : c.groups) {
      auto& m = next[g.name];
      if (auto it = monitors.find(g.name); it != monitors.end()) m = std::move(it->second);
      else m = std::make_unique<rproxy::health::monitor<bal::upstream_pool>>(rt.control().get_executor(), pools[g.name], g.name, rt.log());
      if (auto r = m->update(bal::pool_entries(g.backends), g.health_check, g.dynamic_weights); !r)
        return rt.log().error("bad backends", {{"group", g.name}, {"error", r.error().message()}}), false;
      pool_metrics->track(g.name, pools[g.name]);
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
  std::map<std::string, std::shared_ptr<bal::upstream_pool>> pools;
  std::map<std::string, std::unique_ptr<rproxy::health::monitor<bal::upstream_pool>>> monitors;
  rproxy::flow::http1_adapter adapter{};
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
  auto first = a->build(c);
  if (!first || !a->apply(*c)) return 1;
  auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
  rt.keep(worlds);
  if (!rproxy::app::listen(rt, c->listen, "http", worlds->handler(rt.drain(), a->adapter))) return 1;
  rt.on_stop_accepting([a] { a->monitors.clear(); });
  rt.on_reload([a, worlds](const std::shared_ptr<const config>& next) {
    auto w = a->build(next);
    if (!w || !a->apply(*next)) return a->rt.log().error("routes not updated; the previous config keeps serving");
    worlds->swap(std::move(w));
    a->rt.log().info("routes updated", {{"routes", next->http.routes.size()}, {"groups", next->groups.size()}});
  });
  return 0;
}

}  // namespace h3_gateway

int main(int argc, char** argv) {
  return rproxy::app::run_main<h3_gateway::config>(
      argc, argv, {"h3-gateway", "0.1.0", "h3-gateway.yaml", "rproxy h3-gateway: an HTTP API gateway and load balancer"},
      [](h3_gateway::runtime& rt) { return h3_gateway::serve(rt); });
}
