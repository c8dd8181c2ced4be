// apps/mc-proxy/serve.hpp: mc-proxy on the app kit: a world per config version (servers, host
// table, a pipeline per worker), the players' listener, reloads, status-ping health checks per
// server, the ban file (watched), and a one-second tick that stops idle wake-on-join servers.
//
// `app<MakeExtra>` takes a function that makes a user's extra stages once per worker from the
// config (returning a tuple, empty for mc-proxy itself): see docs/writing-an-app.md.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include <rproxy/app/cluster.hpp>
#include <rproxy/cluster/instance.hpp>
#include <rproxy/app/every.hpp>
#include <rproxy/app/pools.hpp>
#include <rproxy/app/side_file.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/admin/bans_api.hpp>
#include <rproxy/middleware/audit_block.hpp>
#include <rproxy/middleware/conn_limit_block.hpp>

#include "mc_proxy.hpp"

namespace mc_proxy {

template <class Config = config>
class app {
public:
  using runtime = rproxy::app::runtime<Config>;

  template <class MakeExtra>
  static int serve(runtime& rt, MakeExtra make_extra) {
    auto a = std::make_shared<app>(rt);
    rt.keep(a);
    return a->start(std::move(make_extra));
  }

  explicit app(runtime& rt)
      : rt_(rt), fam_(rproxy::app::mc_metrics::add_to(rt.metrics())), pools_(rproxy::app::pools::open(rt)), audit_sink_(&rt.log(), ""),
        audit_(mw::audit_log::to(audit_sink_, {.per_second = 20, .burst = 50})) {
    shared_.audit = &audit_;
  }

private:
  template <class MakeExtra>
  int start(MakeExtra make_extra) {
    const auto first = rt_.config().get();
    if (!open_cluster(*first)) return 1;
    using pipeline_t = decltype(std::apply([](auto... x) { return make_mc_pipeline(nullptr, nullptr, 0, 0, std::move(x)...); },
                                           make_extra(*first)));
    using world = mc_proxy::world<pipeline_t>;
    auto build = [this, make_extra](const std::shared_ptr<const Config>& c) -> std::shared_ptr<const world> {
      if (!update_servers(*pools_, *c, states_)) return nullptr;  // logged
      auto w = std::make_shared<world>();
      fill(*w, c);
      w->pipelines = rproxy::app::per_worker(rt_, [&](std::size_t i) {
        return std::apply([&](auto... x) { return make_mc_pipeline(w.get(), &shared_, 0x9e3779b97f4a7c15ull * (i + 1), i, std::move(x)...); },
                          make_extra(*c));
      });
      watch_bans(c->bans);
      return w;
    };
    auto worlds = rproxy::app::make_versions<world>(rt_, build, "servers");
    if (!worlds || !listen_players(rt_, *first, *worlds)) return 1;
    rt_.on_stop_accepting([this] { bans_.reset(); });
    rproxy::app::every(rt_, std::chrono::seconds(1), [this, worlds] {  // stop wake servers idle on every instance
      for (const auto& sv : worlds->current()->servers)
        if (sv.cfg->wake && !cluster_->players.share(sv.cfg->name, sv.st->wake)) sv.st->stop_if_idle(*sv.cfg, rt_.log());
    });
    rt_.on_admin([this](rproxy::admin::server& s) { rproxy::admin::mount_bans_api(s, cluster_->bans); });  // GET/POST/DELETE /bans
    cluster_->start();
    return 0;
  }

  /// Rate-limit counters and bans: in-process, or shared with the other instances through the
  /// `redis:` block (app/cluster.hpp: read once). False: logged.
  bool open_cluster(const config& c) {
    const auto* limits = c.shared_limits ? &*c.shared_limits : nullptr;
    cluster_ = rproxy::app::open_cluster(rt_, c.redis, rproxy::app::sharing(limits, {.bans = {.fold_identity_case = true}, .kicks_metric = "mc_ban_kicks"}));
    if (cluster_) shared_.cluster = cluster_->shares_by_worker();
    return cluster_ != nullptr;
  }

  /// The parts of a world that do not depend on the pipeline type.
  void fill(world_base& w, const std::shared_ptr<const config>& cfg) {
    w.cfg = cfg;
    w.metrics = &fam_;
    w.log = &rt_.log();
    const auto dir = rt_.opts().config_given ? std::filesystem::path(rt_.opts().config_path).parent_path() : std::filesystem::path();
    w.servers.reserve(cfg->servers.size());
    for (const auto& sc : cfg->servers) {
      const auto& st = states_.at(sc.name);
      auto& sv = w.servers.emplace_back();
      sv.cfg = &sc;
      sv.pool = pools_->get(sc.name);
      sv.st = st;
      const auto wake_start = sc.wake ? std::optional(sc.wake->start_timeout) : std::nullopt;
      sv.list = {sc.status, st->status, st->wake, wake_start, sv.pool, sc.rewrite_host, dir, rt_.log()};
      sv.series = fam_.bind(sc, sv.pool, sv.list);
      for (const auto& d : sc.domains) w.hosts.add(d, &sv);  // &sv stays: w.servers is reserved
      if (sc.name == cfg->default_server) w.default_server = &sv;
    }
    w.rate = cfg->limits.rate_limit();
    if (cfg->shared_limits) cfg->shared_limits->apply(w.rate);
    w.conns = mw::shared_by(cfg->limits.conn_limit(), cfg->shared_limits);  // per address for all instances with redis:
    w.bans = cfg->bans.config();
    w.options = rproxy::flow::make_options(cfg->proxy_protocol, cfg->relay);
    cfg->limits.apply(w.options);
  }

  /// The ban file, loaded now and whenever it changes (a bad edit keeps the previous bans).
  void watch_bans(const rproxy::middleware::ban_block& b) {
    bans_.reset();
    if (b.file.empty()) return;
    bans_.emplace(rproxy::app::side_file::open(rt_.control().get_executor(), rt_.log(), "bans", b.file,
                                               [this, f = b.file](std::size_t* line) {
                                                 auto r = shared_.bans.load(f, line);
                                                 if (r) cluster_->bans.publish(shared_.bans);  // reaches the other instances
                                                 return r;
                                               }));
  }

  runtime& rt_;
  rproxy::app::mc_metrics fam_;
  std::shared_ptr<rproxy::app::pools> pools_;  ///< by server name, with their health checks
  mw::audit_file audit_sink_;                  ///< to the main log
  mw::audit_log audit_;
  std::unique_ptr<rproxy::cluster::instance> cluster_;  ///< before shared_, which points at it
  shared_state shared_;
  std::map<std::string, std::shared_ptr<server_state>> states_;
  std::optional<rproxy::app::side_file> bans_;
};

}  // namespace mc_proxy
