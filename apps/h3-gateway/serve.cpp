// apps/h3-gateway/serve.cpp: the gateway's composition (serve, declared in gateway.hpp): the state
// kept across config versions, a world per version, listeners, admin API and reloads. Its flows
// are compiled in their own units (flows.hpp), its backend groups (pools, health checks, TLS to
// backends, stand-ins) in groups.cpp, its config decoder in config.cpp.
#include <rproxy/admin/bans_api.hpp>
#include <rproxy/app/cluster.hpp>
#include <rproxy/app/groups_api.hpp>
#include <rproxy/app/http_listeners.hpp>

#include "flows.hpp"  // and gateway.hpp

namespace h3_gateway {

/// State kept across config versions: pools and health monitors by group name, the backends'
/// transports and stand-ins, metrics.
struct app {
  app(runtime& r, const std::optional<rproxy::cluster::redis_options>& redis)
      : rt(r), shared(r, *r.config().get()), groups(open_groups(r)), metrics(rproxy::app::http_metrics::add_to(r.metrics(), "h3gw")) {
    const auto& c = *r.config().get();
    shared.cluster = std::make_shared<rproxy::cluster::instance>(
        r.pool(), redis, r.metrics(), r.log(),
        rproxy::app::sharing(c.rate_limit && c.rate_limit->distributed ? &*c.rate_limit->distributed : nullptr, {.kicks_metric = "h3gw_ban_kicks"}));
    shared.shares = shared.cluster->shares_by_worker();
  }

  std::shared_ptr<const world> build(const std::shared_ptr<const config>& c) {
    auto w = std::make_shared<world>(rt, c, shared);
    if (!w->load()) return nullptr;
    if (c->tls) {  // certificates are read again on every reload
      auto t = rproxy::app::load_tls(*c->tls, {"h2", "http/1.1"});
      if (!t) return rt.log().error("cannot load TLS certificates", {{"error", t.error().message}}), nullptr;
      w->tls.emplace(std::move(*t));
      if (c->quic) {  // HTTP/3: the same certificates in GnuTLS
        std::vector<rproxy::net::quic::tls_credentials::certificate_files> files;
        for (const auto& f : c->tls->certificates) files.push_back({f.cert, f.key});
        auto q = rproxy::net::quic::tls_credentials::server(files);
        if (!q) return rt.log().error("cannot load TLS certificates for QUIC", {{"error", q.error()}}), nullptr;
        w->quic_tls.emplace(std::move(*q));
        const auto& ep = c->quic->listen ? *c->quic->listen : c->tls->listen;
        w->alt_svc = rproxy::middleware::alt_svc::h3(ep.port);
      }
    }
    if (!update_groups(*groups, *c, w->pools, w->upstreams)) return nullptr;  // logged
    w->options.redirect = w->upstreams.redirect;
    shared.cluster->bans.publish(w->bans);  // this file's bans reach the other instances
    w->metrics = &metrics;
    w->requests = metrics.bind(w->table, w->routes.groups, c->groups);
    w->connections = rproxy::app::per_worker(rt, [&](std::size_t i) { return connection_pipeline(*w, i); });
    w->pipelines = rproxy::app::per_worker(rt, [&](std::size_t i) { return request_pipeline(*w, 0x9e3779b97f4a7c15ull * (i + 1), i); });
    rproxy::flow::http1_adapter listener_only;  // the adapter's own settings are the first config's
    c->limits.apply(listener_only, w->options);
    const auto pp = rproxy::flow::make_options(c->proxy_protocol, {});
    w->options.accept = pp.accept;
    w->options.trusted = pp.trusted;
    w->options.send = pp.send;
    w->options.max_connect_attempts = w->routes.max_connect_attempts();  // the route with the most retries
    return w;
  }

  runtime& rt;
  shared_state shared;
  std::shared_ptr<upstream_groups> groups;  ///< pools by group name, with their health checks; TLS to backends, stand-ins (groups.cpp)
  rproxy::app::http_metrics metrics;
  rproxy::flow::http1_adapter adapter{};
  rproxy::flow::h2_adapter h2{.http1 = &adapter};
  rproxy::flow::h3_adapter h3{.http1 = &adapter};
  rproxy::net::quic::endpoint_settings quic_settings{};
};

int serve(runtime& rt) {
  const auto c = rt.config().get();
  auto redis = rproxy::cluster::instance::options_of(c->redis);  // reads the password (never logged)
  if (!redis) return rt.log().error("cannot use the redis: block", {{"error", redis.error()}}), 1;
  auto a = std::make_shared<app>(rt, *redis);
  rt.keep(a);
  a->shared.cluster->start();
  if (!a->shared.sink.ok()) return rt.log().error("cannot open the audit file", {{"file", c->audit.file}}), 1;
  a->adapter.drain = &rt.drain();
  a->adapter.json_errors = true;
  rproxy::flow::options unused;
  c->limits.apply(a->adapter, unused);
  c->forwarding.apply(a->adapter);
  if (c->jwt && c->jwt->issuers.empty() && c->jwt->audiences.empty())
    rt.log().warn("jwt: neither issuers nor audiences are set: any token one of the keys signed is accepted, whoever it was issued for");
  auto first = a->build(c);
  if (!first) return 1;
  auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
  rt.keep(worlds);
  rproxy::app::mount_groups_api(rt, worlds);  // routes, backends, weights, drain, reload
  // Bans (admin/bans_api.hpp) under /api/bans, where the gateway always served them (its query
  // form: POST /api/bans?kind=addr&subject=...&ttl=600), and under /bans, as the other apps.
  rt.on_admin([&bans = a->shared.cluster->bans](rproxy::admin::server& s) {
    rproxy::admin::mount_bans_api(s, bans, "/api/bans");
    rproxy::admin::mount_bans_api(s, bans);
  });
  c->h2.apply(a->h2.limits, c->limits);
  a->h2.limits.enable_connect_protocol = a->adapter.passes_upgrade("websocket");  // RFC 8441: WebSocket over HTTP/2
  auto ls = std::make_shared<rproxy::app::http_listeners<world>>(rproxy::app::http_listeners<world>{*worlds, rt.drain(), a->adapter, a->h2});
  rt.keep(ls);
  if (!ls->open(rt, *c)) return 1;
  if (c->quic) {
    c->quic->apply(a->quic_settings, a->h3.limits, c->limits);
    if (!rproxy::app::open_quic(rt, *worlds, c->quic->listen ? *c->quic->listen : c->tls->listen, a->quic_settings, a->h3, "h3gw")) return 1;
  }
  rt.on_stop_accepting([a] { stop_groups(*a->groups); });
  rt.on_reload([a, worlds](const std::shared_ptr<const config>& next) {
    auto w = a->build(next);
    if (!w) return a->rt.log().error("routes not updated; the previous config keeps serving");
    worlds->swap(std::move(w));
    a->rt.log().info("routes updated", {{"routes", next->http.routes.size()}, {"groups", next->groups.size()}});
  });
  return 0;
}

}  // namespace h3_gateway
