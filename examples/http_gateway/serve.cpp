// examples/http_gateway/serve.cpp: an HTTP/1.1 reverse proxy made of rproxy parts.
//
// The flow driver with the HTTP/1.1 adapter (flow/http1.hpp) serves each connection: the
// connection pipeline (ip_filter, conn_limit) once, the request pipeline (bans, JWT, API keys,
// require_auth, rate limit, round robin) per request. The stages and the adapter bring their
// config blocks (http_gateway.hpp); this file builds what the stages point at.
#include <memory>
#include <string>
#include <vector>

#include <rproxy/app/listen.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/observe/access_log_stage.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/route/fixed.hpp>

#include "http_gateway.hpp"

namespace http_gateway {

namespace flow = rproxy::flow;

/// Refuses requests that no auth stage authenticated (those stages let a request without
/// credentials through, so that either a JWT or an API key will do).
struct require_auth {
  bool required = false;
  mw::audit_log* audit = nullptr;
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const rproxy::codec::http1::request_view&) {
    if (!required || mw::find_principal(ctx) != nullptr) return rproxy::next;
    return mw::reject_and_audit(ctx, audit, {rproxy::reject_code::unauthorized, "credentials required"}, "require_auth",
                                "no token or API key");
  }
};

/// What the stages point at, built once from the config; reload() re-reads the files.
struct gateway {
  gateway(runtime& r, std::shared_ptr<const config> snapshot)
      : rt(&r), snap(std::move(snapshot)), sink(&r.log(), cfg.audit.file), audit(cfg.audit.make(sink)), ip(cfg.ip_filter.build()),
        conn_cfg(cfg.conn_limit.config()), ban_cfg(cfg.bans.config()),
        keys(cfg.jwt ? cfg.jwt->key_sources() : std::vector<mw::key_source>{}),
        api_keys(cfg.api_keys ? cfg.api_keys->file : std::string()),
        counters({.max_keys = cfg.rate_limit ? cfg.rate_limit->max_keys : 1}) {
    if (cfg.jwt) jwt_cfg = cfg.jwt->config(cfg.rate_limit ? cfg.rate_limit->claims() : std::vector<std::string>{});
    else jwt_cfg.sources.clear();  // no token is ever looked for
    if (cfg.api_keys) key_cfg = cfg.api_keys->config();
    else key_cfg.sources.clear();
    jwt_cfg.optional = key_cfg.optional = true;  // "no credentials" is require_auth's call
    if (cfg.cors) cors_cfg = cfg.cors->config();
    if (cfg.rate_limit) rl_cfg = cfg.rate_limit->config("request");
    else rl_cfg.hello_operation.clear();  // nothing counted
  }

  /// Re-reads the ban file, the JWT keys and the API keys; a bad file keeps the old contents.
  bool reload() {
    auto fail = [&](std::string_view what, const std::error_code& ec, std::size_t line = 0) {
      rt->log().error("not reloaded; the previous contents stay in use", {{"what", what}, {"error", ec.message()}, {"line", line}});
    };
    bool ok = cfg.bans.load(bans, fail);
    if (cfg.jwt)
      if (auto r = keys.reload(); !r) fail("jwt keys", r.error()), ok = false;
    if (cfg.api_keys) ok = cfg.api_keys->load(api_keys, fail) && ok;
    return ok;
  }

  runtime* rt;
  std::shared_ptr<const config> snap;  // limits, rules and tiers are fixed at start
  const config& cfg = *snap;
  std::string conn_label = cfg.name + ":connections";
  mw::audit_file sink;
  mw::audit_log audit;
  mw::ip_filter_block::built ip;
  mw::conn_limit_config conn_cfg;
  mw::conn_counter conns;
  mw::ban_check_config ban_cfg;
  mw::ban_list bans;
  mw::jwt_auth_config jwt_cfg;
  mw::key_store keys;
  mw::api_key_config key_cfg;
  mw::api_key_store api_keys;
  mw::rate_limit_config rl_cfg;
  mw::request_id_config rid_cfg = cfg.request_id.config();
  mw::cors_config cors_cfg;
  mw::local_counter_store counters;
  std::shared_ptr<rproxy::balance::upstream_pool> pool = std::make_shared<rproxy::balance::upstream_pool>();
};

inline auto connection_pipeline(gateway& g, const rproxy::observe::flow_metrics::families& fam) {
  return rproxy::make_pipeline<flow::http1_protocol>(rproxy::observe::flow_metrics{fam, g.conn_label},
                                                     mw::ip_filter{&g.ip.rules, &g.audit, &g.ip.cfg},
                                                     mw::conn_limit{&g.conn_cfg, &g.conns, &g.audit});
}
inline auto request_pipeline(gateway& g, const rproxy::observe::flow_metrics::families& fam) {
  return rproxy::make_pipeline<flow::http1_protocol>(
      rproxy::observe::access_log_stage{g.cfg.access_log ? &g.rt->log() : nullptr},
      rproxy::observe::flow_metrics{fam, g.cfg.name}, mw::request_id{&g.rid_cfg},
      mw::cors{g.cfg.cors ? &g.cors_cfg : nullptr}, mw::ban_check{&g.bans, &g.audit, &g.ban_cfg},
      mw::jwt_auth{&g.jwt_cfg, &g.keys, &g.audit}, mw::api_key_auth{&g.key_cfg, &g.api_keys, &g.audit},
      require_auth{g.cfg.require_auth && (g.cfg.jwt || g.cfg.api_keys), &g.audit},
      mw::rate_limit{&g.rl_cfg, &g.counters, &g.audit}, rproxy::route::fixed{g.cfg.name},
      rproxy::balance::make_stage(g.pool, rproxy::balance::round_robin{}));
}

/// The gateway and its pipelines per worker (one world: limits, rules and tiers are fixed at
/// start; a reload re-reads the files).
struct world {
  std::unique_ptr<gateway> g;
  mutable std::vector<decltype(connection_pipeline(*g, {}))> connections{};
  mutable std::vector<decltype(request_pipeline(*g, {}))> pipelines{};
  flow::options options;
};

int serve(runtime& rt) {
  auto c = rt.config().get();
  auto w = std::make_shared<world>();
  w->g = std::make_unique<gateway>(rt, c);
  auto& g = *w->g;
  if (!g.sink.ok()) return rt.log().error("cannot open the audit file", {{"file", c->audit.file}}), 1;
  if (!g.reload()) return 1;
  if (auto r = g.pool->update(rproxy::balance::pool_entries(c->backends)); !r)
    return rt.log().error("bad backends", {{"error", r.error().message()}}), 1;
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  for (std::size_t i = 0; i < rt.pool().size(); ++i) {
    w->connections.push_back(connection_pipeline(g, families));
    w->pipelines.push_back(request_pipeline(g, families));
  }
  if (c->jwt && c->jwt->issuers.empty() && c->jwt->audiences.empty())
    rt.log().warn("jwt: neither issuers nor audiences are set: any token one of the keys signed is accepted, whoever it was issued for");
  flow::http1_adapter adapter{.drain = &rt.drain()};
  c->limits.apply(adapter, w->options);
  c->forwarding.apply(adapter);
  auto worlds = std::make_shared<rproxy::app::versions<world>>(w);
  rt.keep(worlds);
  if (!rproxy::app::listen(rt, c->listen, "http", worlds->handler(rt.drain(), adapter))) return 1;
  rt.on_reload([w](const std::shared_ptr<const config>&) {
    if (w->g->reload()) w->g->rt->log().info("bans and keys reloaded");
  });
  return 0;
}

}  // namespace http_gateway
