// apps/h3-gateway/serve.cpp: the gateway's composition (serve, declared in gateway.hpp): the state
// kept across config versions (the groups' pools and health checks: app/pools.hpp, by group
// name), a world per version, listeners, admin API and reloads. Its flows are compiled in their
// own units (flows.hpp), its config decoder in config.cpp.
#include <rproxy/app/pools.hpp>

#include "admin_api.hpp"
#include "flows.hpp"
#include "gateway.hpp"
#include "h2_upstreams.hpp"
#include "h3_upstreams.hpp"
#include "listeners.hpp"

namespace h3_gateway {

/// State kept across config versions: pools and health monitors by group name, metrics.
struct app {
  app(runtime& r, const std::optional<rproxy::cluster::redis_options>& redis)
      : rt(r), shared(r, *r.config().get(), redis), pools(rproxy::app::pools::open(r)), h3_backends(r), h2_backends(r) {
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
    auto& conns = r.metrics().add_counter_family(
        "h3gw_upstream_connections", "Backend connections per request: new or reused (kept alive), by transport (tcp, tls).",
        {"transport", "connection"});
    for (std::size_t t = 0; t < 2; ++t)
      for (std::size_t k = 0; k < 2; ++k) upstream_connections[t][k] = &conns.with({t ? "tls" : "tcp", k ? "reused" : "new"});
    auto& tls_up = r.metrics().add_callback_counter_family(
        "h3gw_upstream_tls_handshakes", "TLS handshakes to backends that succeeded: full, or resumed (a session kept from an earlier one).",
        {"session"});
    tls_up.with({"full"}, [this] { return static_cast<double>(tls_handshakes.full.load(std::memory_order_relaxed)); });
    tls_up.with({"resumed"}, [this] { return static_cast<double>(tls_handshakes.resumed.load(std::memory_order_relaxed)); });
    connections_accepted = &r.metrics().add_counter("h3gw_connections", "Client connections accepted.");
    auto& by_protocol = r.metrics().add_counter_family(
        "h3gw_requests_by_protocol", "Requests by the protocol the client spoke (http/1.0, http/1.1, h2, h3).", {"protocol"});
    for (std::size_t i = 0; i < requests_by_protocol.size(); ++i)
      requests_by_protocol[i] = &by_protocol.with({std::string(request_metrics::protocols[i])});
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
        w->alt_svc = "h3=\":" + std::to_string(ep.port) + "\"; ma=86400";
      }
    }
    w->upstream_connections = &upstream_connections;
    w->requests_by_protocol = &requests_by_protocol;
    std::vector<std::shared_ptr<const rproxy::net::tls_client_context>> h2_tls(c->groups.size());  ///< per group (proto: h2)
    for (std::size_t i = 0; i < c->groups.size(); ++i) {  // TLS to backends: the CA files are read on every reload
      const auto& g = c->groups[i];
      auto& u = w->upstreams.emplace_back();
      const auto tls = g.tls_settings();
      if (!tls) continue;
      auto t = rproxy::net::tls_client_context::load(tls->options());
      if (!t) return rt.log().error("cannot load the backends' TLS settings", {{"group", g.name}, {"error", t.error().message}}), nullptr;
      if (!tls->verify) rt.log().warn("TLS to backends without certificate verification", {{"group", g.name}});
      auto ctx = std::make_shared<rproxy::net::tls_client_context>(std::move(*t));
      ctx->count_into(&tls_handshakes);  // (its sessions, kept per backend and SNI, go with this version)
      w->tls_clients.push_back(ctx);
      if (g.proto == rproxy::flow::upstream_proto::h2) {  // the flow reaches the plain loopback stand-in,
        h2_tls[i] = std::move(ctx);                         // whose HTTP/2 connections are TLS
        continue;
      }
      u.tls = ctx.get();
      u.sni = tls->sni;
    }
    // Groups with proto: h3, built aside: a reload failing from here on leaves the live ones as
    // they were (the staged set's new stand-ins stop when it is dropped).
    auto h3 = h3_backends.stage(*c);
    if (!h3) return nullptr;  // logged
    auto h2 = h2_backends.stage(*c, h2_tls);  // groups with proto: h2c or h2, the same way
    if (!h2) return nullptr;          // logged
    // Last, as nothing after it fails: a group keeps its pool (backends, counters, checks) while
    // its pool settings (breaker, outlier) stay.
    if (!pools->update(c->groups)) return nullptr;  // logged
    w->options.redirect = h3->table();
    if (!h2->table().empty()) {
      auto both = std::make_shared<rproxy::flow::upstream_redirect>();
      if (w->options.redirect) both->add_all(*w->options.redirect);
      both->add_all(h2->table());
      w->options.redirect = std::move(both);
    }
    h3_backends.commit(std::move(*h3));
    h2_backends.commit(std::move(*h2));
    for (const auto& g : c->groups)  // HTTP/3 and HTTP/2 backends are checked through their stand-ins
      if (g.proto != rproxy::flow::upstream_proto::http && g.health_check)
        if (auto* m = pools->monitor(g.name)) m->check_with(h3_probe::of(*g.health_check, w->options.redirect), g.health_check->options());
    for (const auto& g : c->groups) w->pools.push_back(pools->get(g.name));
    shared.cluster.bans.publish(w->bans);  // this file's bans reach the other instances
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
      w->pipelines.push_back(request_pipeline(*w, 0x9e3779b97f4a7c15ull * (i + 1), i));
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

  runtime& rt;
  shared_state shared;
  std::shared_ptr<rproxy::app::pools> pools;  ///< by group name, with their health checks
  h3_upstreams h3_backends;  ///< groups with proto: h3
  h2_upstreams h2_backends;  ///< groups with proto: h2c or h2
  obs::counter_family* requests = nullptr;
  obs::histogram_family* duration = nullptr;
  obs::histogram_family* upstream = nullptr;
  obs::counter_family* retries = nullptr;
  obs::counter_family* shed = nullptr;
  obs::counter_family* upgrades = nullptr;
  obs::counter_family* rejects = nullptr;
  obs::gauge* connections_open = nullptr;
  std::array<std::array<obs::counter*, 2>, 2> upstream_connections{};
  std::array<obs::counter*, 4> requests_by_protocol{};
  obs::counter* connections_accepted = nullptr;
  rproxy::net::tls_client_stats tls_handshakes;  ///< to backends, every version's contexts
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
  a->shared.cluster.start();
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
  mount_admin_api(rt, worlds);
  mount_bans_api(rt, a->shared.cluster.bans);
  c->h2.apply(a->h2.limits, c->limits);
  a->h2.limits.enable_connect_protocol = a->adapter.passes_upgrade("websocket");  // RFC 8441: WebSocket over HTTP/2
  auto ls = std::make_shared<listeners<world>>(listeners<world>{*worlds, rt.drain(), a->adapter, a->h2});
  rt.keep(ls);
  if (!ls->open(rt, *c)) return 1;
  if (c->quic) {
    c->quic->apply(a->quic_settings, a->h3.limits, c->limits);
    if (!open_quic(rt, *worlds, *c, a->quic_settings, a->h3)) return 1;
  }
  rt.on_stop_accepting([a] {
    a->h3_backends.stop();
    a->h2_backends.stop();
  });
  rt.on_reload([a, worlds](const std::shared_ptr<const config>& next) {
    auto w = a->build(next);
    if (!w) return a->rt.log().error("routes not updated; the previous config keeps serving");
    worlds->swap(std::move(w));
    a->rt.log().info("routes updated", {{"routes", next->http.routes.size()}, {"groups", next->groups.size()}});
  });
  return 0;
}

}  // namespace h3_gateway
