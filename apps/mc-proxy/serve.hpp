// apps/mc-proxy/serve.hpp: mc-proxy's life on the runtime: build a `world` from each config
// version (servers, host table, pipelines per worker), accept players, reload, and a one-second
// tick for the ban file and idle wake-on-join servers.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include <rproxy/config/snapshot.hpp>
#include <rproxy/health/checker.hpp>
#include <rproxy/health/mc_status_probe.hpp>
#include <rproxy/observe/pool_metrics.hpp>
#include <rproxy/observe/worker_index.hpp>

#include "mc_proxy.hpp"

namespace mc_proxy {

/// What lives as long as the process: per-server state by name, counters shared by config
/// versions, the ban list, and the current world.
class app {
public:
  explicit app(runtime& rt)
      : rt_(rt), fam_(families::add_to(rt.metrics())), pool_metrics_(obs::pool_metrics::add_to(rt.metrics())),
        audit_(mw::audit_log::to(audit_sink_, {.per_second = 20, .burst = 50})), tick_(rt.control()) {
    audit_sink_.log = &rt.log();
  }

  int start() {
    const auto cfg = rt_.config().get();
    auto w = build(cfg);
    if (!w) return 1;
    current_.emplace(std::move(w));
    track_pools(cfg);
    start_checks(cfg);
    load_bans(true);
    if (cfg->proxy_protocol.accept != proxy_accept::none) {
      std::string ranges;
      for (const auto& t : cfg->proxy_protocol.trusted) ranges += (ranges.empty() ? "" : ", ") + t;
      rt_.log().warn("PROXY protocol is ON: any host in these ranges can claim any client address; only list your load balancers",
                     {{"trusted", ranges}});
    }
    auto handler = [this](asio::ip::tcp::socket s) {
      auto w = current_->get();
      auto& p = w->pipelines[rproxy::observe::worker_index() % w->pipelines.size()];
      asio::co_spawn(s.get_executor(), flow(p, std::move(s), w, rt_.drain().track()), asio::detached);
    };
    const auto& l = cfg->listen;
    auto listener = rproxy::net::listen(rt_.pool(), {asio::ip::make_address(l.host), l.port}, handler);
    if (!listener) {
      rt_.log().error("cannot listen", {{"address", l.to_string()}, {"error", listener.error().message()}});
      return 1;
    }
    rt_.log().info("mc-proxy listening", {{"address", l.to_string()}, {"servers", cfg->servers.size()}});
    auto lp = std::make_shared<std::decay_t<decltype(*listener)>>(std::move(*listener));
    rt_.on_stop_accepting([this, lp] {
      lp->close();
      tick_.cancel();
      for (auto& [name, c] : checkers_) c->stop();
    });
    rt_.on_reload([this](const std::shared_ptr<const config>& c) { reload(c); });
    tick();
    return 0;
  }

private:
  struct audit_to_log {
    const obs::logger* log = nullptr;
    void operator()(const mw::audit_record&, std::string_view line) const { log->warn("rejected", {{"audit", line}}); }
  };

  static asio::awaitable<void> flow(pipeline_t& p, asio::ip::tcp::socket s, std::shared_ptr<const world> w,
                                    rproxy::app::drain_tracker::guard) {
    const auto* wb = static_cast<const world_base*>(w.get());
    co_await rproxy::net::serve_mc_flow(
        p, std::move(s), wb->options,
        [wb](const asio::ip::address& a) {
          auto k = mw::to_ip_key(a);
          for (const auto& c : wb->trusted)
            if (c.contains(k)) return true;
          return false;
        },
        flow_hooks{wb});
  }

  std::shared_ptr<world> build(const std::shared_ptr<const config>& cfg) {
    auto w = std::make_shared<world>();
    w->cfg = cfg;
    w->metrics = &fam_;
    w->log = &rt_.log();
    const auto dir = rt_.opts().config_given ? std::filesystem::path(rt_.opts().config_path).parent_path() : std::filesystem::path();
    w->servers.reserve(cfg->servers.size());
    for (const auto& sc : cfg->servers) {
      auto& st = states_[sc.name];
      if (!st) st = std::make_shared<server_state>(sc.name);
      if (auto r = st->pool()->update(pool_config(sc)); !r) {
        rt_.log().error("bad backends", {{"server", sc.name}, {"error", r.error().message()}});
        return nullptr;
      }
      server_view sv;
      sv.cfg = &sc;
      sv.st = st;
      sv.state_json[static_cast<std::size_t>(power::offline)] = state_json(sc.status.offline, dir);
      sv.state_json[static_cast<std::size_t>(power::sleeping)] = state_json(sc.status.sleeping, dir);
      sv.state_json[static_cast<std::size_t>(power::starting)] = state_json(sc.status.starting, dir);
      sv.online_favicon = favicon(sc.status.online.favicon, dir);
      static constexpr std::string_view sources[] = {"cache", "backend", "offline", "sleeping", "starting"};
      for (std::size_t i = 0; i < sv.pings.size(); ++i) sv.pings[i] = &fam_.pings->with({sc.name, sources[i]});
      sv.logins = &fam_.logins->with({sc.name});
      sv.bytes_in = &fam_.bytes->with({sc.name, "from_client"});
      sv.bytes_out = &fam_.bytes->with({sc.name, "to_client"});
      for (const auto& b : sc.backends) {
        const auto id = b.address.to_string();
        sv.players[id] = &fam_.players->with({sc.name, id});
        fam_.backend_up->with({sc.name, id}, [pool = st->pool(), id] {
          auto be = pool->find(id);
          return be && be->state() == bal::backend_state::healthy ? 1.0 : 0.0;
        });
      }
      w->servers.push_back(std::move(sv));
    }
    for (std::size_t i = 0; i < cfg->servers.size(); ++i) {
      for (const auto& d : cfg->servers[i].domains) w->hosts.add(d, i);
      if (cfg->servers[i].name == cfg->default_server) w->default_server = &w->servers[i];
    }
    const auto& lim = cfg->limits;
    mw::rate_limit_config::tier t{"default", {}};
    if (lim.login.limit) t.limits.push_back({"login", {.limit = lim.login.limit, .window = lim.login.window}});
    if (lim.status.limit) t.limits.push_back({"status", {.limit = lim.status.limit, .window = lim.status.window}});
    w->rate.tiers = {t};
    w->rate.reject_message = lim.message;
    w->conns.max_per_ip = lim.connections_per_ip;
    w->conns.max_total = lim.max_connections;
    w->conns.reject_message = "Too many connections from your address.";
    w->bans.reject_message = cfg->bans.message;
    for (const auto& c : cfg->proxy_protocol.trusted) w->trusted.push_back(*mw::cidr::parse(c));
    auto& o = w->options;
    o.accept = cfg->proxy_protocol.accept;
    o.hello_timeout = lim.handshake_timeout;
    o.connect_timeout = lim.connect_timeout;
    o.relay.buffer_size = cfg->relay.buffer_size.bytes;
    o.relay.splice = cfg->relay.splice;
    o.relay.idle_timeout = cfg->relay.idle_timeout;
    for (std::size_t i = 0; i < rt_.pool().size(); ++i)
      w->pipelines.push_back(make_mc_pipeline(w.get(), &conns_, &bans_, &store_, &audit_, 0x9e3779b97f4a7c15ull * (i + 1)));
    return w;
  }

  /// The status JSON shown for a state: its MOTD, its version text in place of the player count.
  std::string state_json(const status_text& t, const std::filesystem::path& dir) const {
    mc::status_info s;
    s.version_name = t.version_name;
    s.protocol = -1;
    s.players = mc::status_players{0, 0, {}};
    s.description = t.motd.starts_with('{') ? t.motd : mc::text_component(t.motd);
    s.favicon = favicon(t.favicon, dir);
    return mc::to_json(s);
  }

  /// A PNG file as a status favicon ("data:image/png;base64,..."), or "" (logged) if unusable.
  std::string favicon(const std::string& file, const std::filesystem::path& dir) const {
    if (file.empty()) return {};
    std::filesystem::path p(file);
    if (p.is_relative()) p = dir / p;
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      rt_.log().warn("favicon unreadable; none shown", {{"file", p.string()}});
      return {};
    }
    std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (png.size() > 64 * 1024 || !png.starts_with("\x89PNG")) {
      rt_.log().warn("favicon is not a PNG of at most 64 KiB; none shown", {{"file", p.string()}});
      return {};
    }
    return mc::make_favicon(mc::as_bytes(png));
  }

  void reload(const std::shared_ptr<const config>& c) {
    const auto old = current_->get();
    if (!(c->listen == old->cfg->listen))
      rt_.log().warn("listen address changed: it takes effect after a restart", {{"listen", old->cfg->listen.to_string()}});
    auto w = build(c);
    if (!w) {
      rt_.log().error("servers not updated; the previous servers keep serving");
      return;
    }
    for (const auto& old_server : old->cfg->servers) pool_metrics_->untrack(old_server.name);
    current_->swap(std::move(w));
    track_pools(c);
    start_checks(c);
    load_bans(true);
    rt_.log().info("servers updated", {{"servers", c->servers.size()}});
  }

  /// Per-backend series (picks, failures, ejections, breaker, latency) for every server's pool.
  void track_pools(const std::shared_ptr<const config>& cfg) {
    for (const auto& sc : cfg->servers) pool_metrics_->track(sc.name, states_.at(sc.name)->pool());
  }

  /// One status-ping checker per server with a health_check block, made anew for each config
  /// (a new checker starts from the pool's current verdicts, so none is lost).
  void start_checks(const std::shared_ptr<const config>& cfg) {
    for (auto& [name, c] : checkers_) c->stop();
    checkers_.clear();
    for (const auto& sc : cfg->servers) {
      if (!sc.health_check) continue;
      const auto& hc = *sc.health_check;
      rproxy::health::mc_status_probe probe;
      probe.query.host = !sc.rewrite_host.empty() ? sc.rewrite_host : first_name(sc);
      probe.query.port = cfg->listen.port;
      for (const auto& b : sc.backends)
        if (b.send_proxy_protocol != proxy_send::none)
          probe.proxied.push_back({{asio::ip::make_address(b.address.host), b.address.port}, b.send_proxy_protocol == proxy_send::v1 ? 1 : 2});
      auto st = states_.at(sc.name);
      auto c = std::make_unique<checker_t>(rt_.control().get_executor(), st->pool(), std::move(probe),
                                           rproxy::health::check_options{.interval = hc.interval, .timeout = hc.timeout,
                                                                         .jitter = 0.1, .rise = hc.rise, .fall = hc.fall});
      c->on_change([this, st, cfg, &sc](std::string_view id, bool up, const rproxy::health::probe_result& r) {
        rt_.log().warn(up ? "backend up" : "backend down",
                       {{"server", sc.name}, {"backend", std::string(id)}, {"detail", up ? std::string() : r.detail}});
        if (up) st->reachable(clock::now());
      });
      c->start();
      checkers_[sc.name] = std::move(c);
    }
  }

  static std::string first_name(const server_config& sc) {
    for (const auto& d : sc.domains)
      if (!d.starts_with('*')) return d;
    return sc.domains.empty() ? std::string("localhost") : sc.domains.front().substr(sc.domains.front().find('.') + 1);
  }

  void load_bans(bool force) {
    const auto& file = current_->get()->cfg->bans.file;
    if (file.empty()) return;
    std::error_code ec;
    auto mtime = std::filesystem::last_write_time(file, ec);
    if (ec) {
      if (force) rt_.log().warn("ban file not readable; no bans loaded", {{"file", file}, {"error", ec.message()}});
      return;
    }
    if (!force && mtime == bans_mtime_) return;
    bans_mtime_ = mtime;
    std::size_t line = 0;
    if (auto r = bans_.load(file, &line); !r)
      rt_.log().error("ban file has an error; the previous bans stay", {{"file", file}, {"line", line}, {"error", r.error().message()}});
    else
      rt_.log().info("bans loaded", {{"file", file}});
  }

  void tick() {
    tick_.expires_after(std::chrono::seconds(1));
    tick_.async_wait([this](std::error_code ec) {
      if (ec) return;
      load_bans(false);
      const auto w = current_->get();
      const auto now = clock::now();
      for (const auto& sv : w->servers) {
        const auto& wk = sv.cfg->wake;
        if (!wk || wk->stop_command.empty() || !sv.st->should_stop(now, *wk)) continue;
        rt_.log().info("wake: no players for the idle timeout; stopping server", {{"server", sv.cfg->name}});
        rproxy::app::command_options o;
        o.log_file = wk->log_file;
        if (auto r = rproxy::app::spawn_command(wk->stop_command, o); !r)
          rt_.log().error("wake: stop command failed", {{"server", sv.cfg->name}, {"error", r.error().message()}});
      }
      tick();
    });
  }

  runtime& rt_;
  families fam_;
  std::shared_ptr<obs::pool_metrics> pool_metrics_;
  audit_to_log audit_sink_;
  mw::audit_log audit_;
  std::map<std::string, std::shared_ptr<server_state>> states_;
  mw::conn_counter conns_;
  mw::ban_list bans_{{.fold_identity_case = true}};  // Minecraft names are case-insensitive
  mw::local_counter_store store_;
  std::optional<rproxy::config::snapshot<world>> current_;
  std::filesystem::file_time_type bans_mtime_{};
  asio::steady_timer tick_;
  using checker_t = rproxy::health::checker<rproxy::health::mc_status_probe, pool_t>;
  std::map<std::string, std::unique_ptr<checker_t>> checkers_;
};

}  // namespace mc_proxy
