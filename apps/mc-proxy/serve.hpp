// apps/mc-proxy/serve.hpp: mc-proxy on the app kit: a world per config version (servers, host
// table, a pipeline per worker), the players' listener, reloads, status-ping health checks per
// server, the ban file (watched), and a one-second tick that stops idle wake-on-join servers.
//
// `app<MakeExtra>` takes a function that makes a user's extra stages once per worker from the
// config (returning a tuple, empty for mc-proxy itself): see docs/writing-an-app.md.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include <rproxy/app/file_watch.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/observe/pool_metrics.hpp>

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
      : rt_(rt), fam_(families::add_to(rt.metrics())), pool_metrics_(obs::pool_metrics::add_to(rt.metrics())),
        audit_(mw::audit_log::to(audit_sink_, {.per_second = 20, .burst = 50})), tick_(rt.control()) {
    audit_sink_.log = &rt.log();
    shared_.audit = &audit_;
  }

private:
  template <class MakeExtra>
  int start(MakeExtra make_extra) {
    const auto cfg = rt_.config().get();
    using pipeline_t = decltype(std::apply([](auto... x) { return make_mc_pipeline(nullptr, nullptr, 0, std::move(x)...); },
                                           make_extra(*cfg)));
    using world = mc_proxy::world<pipeline_t>;
    auto build = [this, make_extra](const std::shared_ptr<const Config>& c) -> std::shared_ptr<const world> {
      auto w = std::make_shared<world>();
      if (!fill(*w, c)) return nullptr;
      for (std::size_t i = 0; i < rt_.pool().size(); ++i)
        w->pipelines.push_back(std::apply([&](auto... x) { return make_mc_pipeline(w.get(), &shared_, 0x9e3779b97f4a7c15ull * (i + 1), std::move(x)...); },
                                          make_extra(*c)));
      return w;
    };
    auto first = build(cfg);
    if (!first) return 1;
    auto worlds = std::make_shared<rproxy::app::versions<world>>(std::move(first));
    rt_.keep(worlds);
    applied(cfg);
    if (cfg->proxy_protocol.accept != rproxy::proxy_accept::none)
      rt_.log().warn("PROXY protocol is ON: any host in these ranges can claim any client address; only list your load balancers",
                     {{"trusted", fmt_list(cfg->proxy_protocol.trusted)}});
    if (!listen_players(rt_, cfg->listen, *worlds)) return 1;
    rt_.on_stop_accepting([this] {
      tick_.cancel();
      checks_.clear();
      bans_watch_.reset();
    });
    rt_.on_reload([this, worlds, build](const std::shared_ptr<const Config>& c) {
      if (!(c->listen == worlds->current()->cfg->listen))
        rt_.log().warn("listen address changed: it takes effect after a restart", {{"listen", worlds->current()->cfg->listen.to_string()}});
      auto w = build(c);
      if (!w) return rt_.log().error("servers not updated; the previous servers keep serving");
      for (const auto& old : worlds->current()->cfg->servers) pool_metrics_->untrack(old.name);
      worlds->swap(std::move(w));
      applied(c);
      rt_.log().info("servers updated", {{"servers", c->servers.size()}});
    });
    tick(worlds);
    return 0;
  }

  /// The parts of a world that do not depend on the pipeline type. False: bad backends (logged).
  bool fill(world_base& w, const std::shared_ptr<const config>& cfg) {
    w.cfg = cfg;
    w.metrics = &fam_;
    w.log = &rt_.log();
    const auto dir = rt_.opts().config_given ? std::filesystem::path(rt_.opts().config_path).parent_path() : std::filesystem::path();
    w.servers.reserve(cfg->servers.size());
    for (const auto& sc : cfg->servers) {
      auto& st = states_[sc.name];
      if (!st) st = std::make_shared<server_state>();
      if (auto r = st->pool->update(bal::pool_entries(sc.backends)); !r) {
        rt_.log().error("bad backends", {{"server", sc.name}, {"error", r.error().message()}});
        return false;
      }
      auto& sv = w.servers.emplace_back();
      sv.cfg = &sc;
      sv.st = st;
      const auto wake_start = sc.wake ? std::optional(sc.wake->start_timeout) : std::nullopt;
      sv.list = {sc.status, st->status, st->wake, wake_start, st->pool, sc.rewrite_host, dir, rt_.log()};
      for (std::size_t i = 0; i < sv.list.answered.size(); ++i)
        sv.list.answered[i] = &fam_.pings->with({sc.name, rproxy::flow::mc_ping_source_names[i]});
      sv.logins = &fam_.logins->with({sc.name});
      sv.bytes_in = &fam_.bytes->with({sc.name, "from_client"});
      sv.bytes_out = &fam_.bytes->with({sc.name, "to_client"});
      for (const auto& b : sc.backends) {
        const auto id = b.address.to_string();
        sv.players[id] = &fam_.players->with({sc.name, id});
        fam_.backend_up->with({sc.name, id}, [pool = st->pool, id] {
          auto be = pool->find(id);
          return be && be->state() == bal::backend_state::healthy ? 1.0 : 0.0;
        });
      }
    }
    for (const auto& sv : w.servers) {
      for (const auto& d : sv.cfg->domains) w.hosts.add(d, &sv);
      if (sv.cfg->name == cfg->default_server) w.default_server = &sv;
    }
    w.rate = cfg->limits.rate_limit();
    w.conns = cfg->limits.conn_limit();
    w.bans = cfg->bans.config();
    w.options = rproxy::flow::make_options(cfg->proxy_protocol, cfg->relay);
    cfg->limits.apply(w.options);
    return true;
  }

  /// After a config is in place: pool metrics, a status-ping checker per server with a
  /// health_check block (a new one starts from the pool's verdicts), and the ban file.
  void applied(const std::shared_ptr<const Config>& cfg) {
    checks_.clear();
    for (const auto& sc : cfg->servers) {
      auto st = states_.at(sc.name);
      pool_metrics_->track(sc.name, st->pool);
      if (sc.health_check) checks_.push_back(start_checks(rt_.control(), sc, cfg->listen.port, st, rt_.log()));
    }
    bans_watch_.reset();
    if (cfg->bans.file.empty()) return;
    load_bans(cfg->bans);
    auto w = rproxy::app::file_watch::open(rt_.control().get_executor(), cfg->bans.file, [this, b = cfg->bans] { load_bans(b); });
    if (w) bans_watch_.emplace(std::move(*w));
    else rt_.log().warn("ban file not watched; changes need a reload", {{"file", cfg->bans.file}, {"error", w.error().message()}});
  }

  void load_bans(const rproxy::middleware::ban_block& b) {
    if (b.load(shared_.bans, [this](const std::string& file, std::error_code ec, std::size_t line) {
          rt_.log().error("ban file not loaded; the previous bans stay", {{"file", file}, {"line", line}, {"error", ec.message()}});
        }))
      rt_.log().info("bans loaded", {{"file", b.file}});
  }

  static std::string fmt_list(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
  }

  /// Every second: stop wake-on-join servers that have been idle for their idle_timeout.
  template <class Worlds>
  void tick(std::shared_ptr<Worlds> worlds) {
    tick_.expires_after(std::chrono::seconds(1));
    tick_.async_wait([this, worlds](std::error_code ec) {
      if (ec) return;
      for (const auto& sv : worlds->current()->servers)
        if (sv.cfg->wake && sv.st->wake.stop_if_idle(clock::now(), *sv.cfg->wake, rt_.log(), sv.cfg->name)) sv.st->status.clear();
      tick(worlds);
    });
  }

  struct audit_to_log {
    const obs::logger* log = nullptr;
    void operator()(const mw::audit_record&, std::string_view line) const { log->warn("rejected", {{"audit", line}}); }
  };

  runtime& rt_;
  families fam_;
  std::shared_ptr<obs::pool_metrics> pool_metrics_;
  audit_to_log audit_sink_;
  mw::audit_log audit_;
  shared_state shared_;
  std::map<std::string, std::shared_ptr<server_state>> states_;
  std::vector<std::shared_ptr<void>> checks_;  ///< start_checks(), per server with health_check
  std::optional<rproxy::app::file_watch> bans_watch_;
  asio::steady_timer tick_;
};

}  // namespace mc_proxy
