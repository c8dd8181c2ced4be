// rproxy/health/monitor.hpp: one pool's active health checks and load-report poller, each
// optional, as a config block asks (health/check_config.hpp), restarted by a reload that changes
// its block. Runs on the control thread; a new checker starts from the pool's current verdicts.
//
//     rproxy::health::monitor<Pool> m(ctl.get_executor(), pool, "lobby", log);
//     m.update(entries, route.health_check, route.dynamic_weights);   // at start and after each reload
//     m.check_with(my_probe, opts);                          // a probe of the app's own (mc status)
//     m.stop_checks();                                       // its block is gone: all backends back in
//     m.export_reports(rproxy::health::monitor<Pool>::report_family(registry));   // once
//     m.stop();                                              // shutdown
//
// update() sets the pool's backends: a backend keeps the weight its load report gave it while
// the same dynamic_weights block stays on, and load reports scale the configured weight.
#pragma once

#include <asio/any_io_executor.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/health/check_config.hpp>
#include <rproxy/health/checker.hpp>
#include <rproxy/health/load_report.hpp>
#include <rproxy/health/probe.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::health {

template <class Pool>
class monitor {
public:
  using change_fn = std::function<void(std::string_view backend_id, bool up)>;

  monitor(asio::any_io_executor ex, std::shared_ptr<Pool> pool, std::string label, const observe::logger& log)
      : ex_(std::move(ex)), pool_(std::move(pool)), label_(std::move(label)), log_(log) {}
  monitor(const monitor&) = delete;
  monitor& operator=(const monitor&) = delete;
  ~monitor() { stop(); }

  const std::shared_ptr<Pool>& pool() const noexcept { return pool_; }
  const std::string& label() const noexcept { return label_; }

  /// Also called (on the control thread) when a check takes a backend out or brings it back.
  void on_change(change_fn f) { on_change_ = std::move(f); }

  /// Sets the pool's backends, then matches the checker and the poller to the blocks.
  result<void> update(std::vector<typename Pool::config_type> entries, const std::optional<check_config>& check,
                      const std::optional<weights_config>& weights) {
    {
      std::lock_guard lk(mu_);
      configured_.clear();
      for (auto& e : entries) {
        configured_[e.id] = e.weight;
        if (poller_ && weights == weights_cfg_)
          if (auto w = poller_->reported_weight(e.id)) e.weight = *w;
      }
    }
    if (auto r = pool_->update(entries); !r) return r;
    apply(check, weights);
    return {};
  }

  /// Starts, restarts or stops the tcp/http checker and the poller to match the blocks.
  void apply(const std::optional<check_config>& check, const std::optional<weights_config>& weights) {
    if (check != check_cfg_) {
      const bool had = check_cfg_.has_value();
      checker_.reset();
      check_cfg_ = check;
      if (!check) {
        if (had)  // checks turned off: nothing keeps a backend out any more
          for (const auto& b : pool_->snapshot()->backends) pool_->set_health(b->id(), true);
      } else if (check->type == check_kind::http) {
        check_with(http_probe{.path = check->path, .host = check->host, .expect_status = check->expect_status,
                              .body_contains = check->body_contains},
                   check->options());
      } else {
        check_with(tcp_probe{}, check->options());
      }
    }
    if (weights != weights_cfg_) {
      stop_poller();
      weights_cfg_ = weights;
      if (weights) start_poller(*weights);
    }
  }

  /// Replaces the checker with one running `probe` (std::nullopt blocks from apply() keep it).
  template <class Probe>
  void check_with(Probe probe, const check_options& o) {
    auto c = std::make_shared<checker<Probe, Pool>>(ex_, pool_, std::move(probe), o);
    c->on_change([this](std::string_view id, bool up, const probe_result& r) {
      if (up) log_.info("backend up", {{"pool", label_}, {"backend", id}});
      else log_.warn("backend down", {{"pool", label_}, {"backend", id}, {"error", r.error.message()}, {"detail", r.detail}});
      if (on_change_) on_change_(id, up);
    });
    c->start();
    checker_ = std::move(c);  // the old one stops as it goes
  }

  /// Stops the checker (the config's or check_with's); backends it had taken out come back.
  void stop_checks() {
    if (!checker_) return;
    checker_.reset();
    check_cfg_.reset();
    for (const auto& b : pool_->snapshot()->backends) pool_->set_health(b->id(), true);
  }

  /// Stops the checker and the poller; a later update() or apply() starts them again.
  void stop() {
    checker_.reset();
    check_cfg_.reset();
    stop_poller();
    weights_cfg_.reset();
  }

  /// Load reports by result ("ok", "bad", "unreachable") since start; never decreases.
  double reports(std::string_view result) const {
    std::lock_guard lk(mu_);
    auto s = retired_;
    if (poller_) add(s, poller_->stats());
    return static_cast<double>(result == "ok" ? s.ok : result == "bad" ? s.bad : s.unreachable);
  }

  /// The counter family export_reports() fills, registered once per registry.
  static observe::callback_family& report_family(observe::registry& reg) {
    return reg.add_callback_counter_family("rproxy_load_reports",
                                           "Backend load reports polled, by result: ok, bad (weight kept), unreachable.",
                                           {"route", "result"});
  }
  /// Exports this pool's load-report counts (the monitor must outlive the registry's scrapes).
  void export_reports(observe::callback_family& f) {
    for (std::string_view r : {"ok", "bad", "unreachable"}) f.with({label_, r}, [this, r] { return reports(r); });
  }

private:
  void start_poller(const weights_config& d) {
    load_report_options o;
    o.path = d.path;
    o.port = d.port;
    o.interval = d.interval;
    o.timeout = d.timeout;
    o.base_weight = [this](std::string_view id) -> std::optional<std::uint32_t> {
      std::lock_guard lk(mu_);
      auto it = configured_.find(std::string(id));
      return it == configured_.end() ? std::nullopt : std::optional<std::uint32_t>(it->second);
    };
    auto p = std::make_unique<load_report_poller<Pool>>(ex_, pool_, std::move(o));
    p->on_report([this](std::string_view id, const std::error_code& ec, std::uint32_t w) {
      if (ec) log_.warn("bad load report; weight unchanged", {{"pool", label_}, {"backend", id}, {"error", ec.message()}, {"weight", w}});
      else log_.info("backend weight from load report", {{"pool", label_}, {"backend", id}, {"weight", w}});
    });
    p->start();
    std::lock_guard lk(mu_);
    poller_ = std::move(p);
  }

  void stop_poller() {
    std::unique_ptr<load_report_poller<Pool>> old;
    {
      std::lock_guard lk(mu_);
      if (poller_) add(retired_, poller_->stats());
      old = std::move(poller_);
    }
    old.reset();
  }

  static void add(load_report_stats& a, const load_report_stats& b) {
    a.ok += b.ok;
    a.bad += b.bad;
    a.unreachable += b.unreachable;
  }

  asio::any_io_executor ex_;
  std::shared_ptr<Pool> pool_;
  std::string label_;
  const observe::logger& log_;
  change_fn on_change_;
  std::optional<check_config> check_cfg_;
  std::optional<weights_config> weights_cfg_;
  std::shared_ptr<void> checker_;  // a checker<Probe, Pool>; destroying it stops it
  mutable std::mutex mu_;          // poller_, retired_ (read by scrapes) and configured_ (by the poller)
  std::map<std::string, std::uint32_t> configured_;
  std::unique_ptr<load_report_poller<Pool>> poller_;
  load_report_stats retired_{};
};

}  // namespace rproxy::health
