// rproxy/app/runtime.hpp: what every app runs on: workers, config snapshot and reload, logs,
// metrics, the admin endpoint, signals and graceful drain. An app's main starts it with
// run_main (app/run_main.hpp: the command line, loading the config); its other units take a
// `runtime<Config>&` and include only this header.
//
// runtime::run():
//   - SIGHUP and any change of the config file reload it (with the loader run_main or the app
//     set); a bad file is logged with its file:line:col errors and the old config keeps serving;
//   - SIGTERM / SIGINT: stop accepting, wait for live flows (drain_tracker) up to
//     --drain-timeout, then stop the workers and exit 0;
// The admin endpoint (/metrics /healthz /readyz, POST /reload) is started by run_main, which
// stops it when shutdown starts: this header does not include the admin server.
#pragma once

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <concepts>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <rproxy/app/options.hpp>
#include <rproxy/flow/drain.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/reloader.hpp>
#include <rproxy/config/snapshot.hpp>
#include <rproxy/config/watcher.hpp>
#include <rproxy/app/fd_watch.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::admin {
class server;
}

namespace rproxy::app {

/// A config whose reload also watches a directory: `static std::optional<std::filesystem::path>
/// servers_path(const std::filesystem::path& file, const Config&)`.
template <class Config>
concept watches_dir = requires(const std::filesystem::path& p, const Config& c) {
  { Config::servers_path(p, c) } -> std::convertible_to<std::optional<std::filesystem::path>>;
};

template <class Config>
class runtime {
public:
  using config_ptr = std::shared_ptr<const Config>;

  runtime(options opt, app_info info, config_ptr first)
      : opt_(std::move(opt)),
        info_(std::move(info)),
        log_(observe::make_logger(opt_.format, opt_.log_level)),
        pool_(opt_.worker_count()),
        metrics_(pool_.size()),
        config_(std::move(first)),
        signals_(control_, SIGINT, SIGTERM, SIGHUP) {
    auto& reloads = metrics_.add_counter_family("rproxy_config_reloads", "Config reloads by result.", {"result"});
    reloads_ok_ = &reloads.with({"ok"});
    reloads_failed_ = &reloads.with({"error"});
    metrics_.add_callback_gauge("rproxy_flows_active", "Flows in progress.",
                                [this] { return static_cast<double>(drain_.active()); });
    start_fd_watch(log_);  // soft RLIMIT_NOFILE -> hard, logged; accept exhaustion logged
    metrics_.add_callback_counter("rproxy_accept_exhausted_total",
                                  "Accepts refused for lack of descriptors or memory (each pauses that listener).",
                                  [] { return static_cast<double>(net::fd_exhaustion::global().count()); });
  }

  const options& opts() const noexcept { return opt_; }
  const app_info& info() const noexcept { return info_; }
  const observe::logger& log() const noexcept { return log_; }
  net::io_pool& pool() noexcept { return pool_; }
  observe::registry& metrics() noexcept { return metrics_; }
  config::snapshot<Config>& config() noexcept { return config_; }
  flow::drain_tracker& drain() noexcept { return drain_; }
  asio::io_context& control() noexcept { return control_; }

  /// Called (on the control thread) when shutdown starts: close listeners here.
  void on_stop_accepting(std::function<void()> f) { stop_accepting_.push_back(std::move(f)); }
  /// Called (on the control thread) after a good reload swapped the snapshot.
  void on_reload(std::function<void(const config_ptr&)> f) { reloaded_.push_back(std::move(f)); }
  /// Called (on the main thread, before it serves) with the admin server, when there is one:
  /// mount more handlers there (admin/pools_api.hpp).
  void on_admin(std::function<void(admin::server&)> f) { admin_mounts_.push_back(std::move(f)); }
  /// What on_admin registered (run_main mounts them when it starts the admin server).
  const std::vector<std::function<void(admin::server&)>>& admin_mounts() const noexcept { return admin_mounts_; }
  /// Keeps an app object alive until the runtime ends; kept objects are destroyed first, in
  /// reverse order, before the workers, the control loop and the metrics they may refer to.
  void keep(std::shared_ptr<void> object) { kept_.push_back(std::move(object)); }
  /// Sets how reloads read the config (run_main: the --config file; an app may replace it).
  void set_loader(std::function<result<Config, config::diagnostics>()> loader) { loader_ = std::move(loader); }

  /// Reloads the config now (SIGHUP, POST /reload). False: no loader, or the file was bad
  /// (logged; the old config keeps serving).
  bool reload_now() { return reloader_ ? reloader_->reload() : false; }

  /// Runs until SIGTERM/SIGINT and the drain that follows. Returns the exit code.
  int run() {
    start_reload();
    wait_signals();
    pool_.start();
    log_.info("started", {{"app", info_.name}, {"version", info_.version}, {"workers", pool_.size()},
                          {"config", opt_.config_given ? opt_.config_path : std::string("(embedded defaults)")}});
    control_.run();
    pool_.stop();
    pool_.join();
    log_.info("stopped", {{"app", info_.name}});
    log_.flush();
    return exit_code_;
  }

private:
  void start_reload() {
    if (!loader_) return;  // run_main sets one that reads the --config file
    reloader_.emplace(config_, loader_,
                      config::reload_callbacks<Config>{
                          [this](const config_ptr& cfg) {
                            reloads_ok_->inc();
                            for (auto& f : reloaded_) f(cfg);
                            // After the callbacks, so what they log about this reload comes first.
                            log_.info("config reloaded");
                          },
                          [this](const config::diagnostics& d) {
                            reloads_failed_->inc();
                            log_.error("config reload failed; the old config keeps serving",
                                       {{"errors", d.to_string()}});
                          }});
    if (opt_.config_given) {
      std::filesystem::path p(opt_.config_path);
      config::watch_options wo{.file = p};
      if constexpr (watches_dir<Config>) wo.dir = Config::servers_path(p, *config_.get());
      auto w = config::watcher::open(control_.get_executor(), wo);
      if (w) {
        watcher_.emplace(std::move(*w));
        reloader_->watch(*watcher_);
      } else {
        log_.warn("config file watch unavailable; reload with SIGHUP", {{"error", w.error().message()}});
      }
    }
  }

  void wait_signals() {
    signals_.async_wait([this](std::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        log_.info("SIGHUP: reloading config");
        reload_now();
        wait_signals();
        return;
      }
      begin_shutdown(sig);
    });
  }

  void begin_shutdown(int sig) {
    log_.info("shutting down: draining flows", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"},
                                                 {"active", drain_.active()},
                                                 {"deadline_ms", opt_.drain_timeout.count()}});
    drain_.begin();
    for (auto& f : stop_accepting_) f();
    if (watcher_) watcher_->stop();
    deadline_ = std::chrono::steady_clock::now() + opt_.drain_timeout;
    // A second signal ends the drain at once.
    signals_.async_wait([this](std::error_code ec, int) {
      if (!ec) finish(true);
    });
    poll_drain();
  }

  void poll_drain() {
    if (drain_.active() == 0) return finish(false);
    if (std::chrono::steady_clock::now() >= deadline_) return finish(true);
    drain_timer_.expires_after(std::chrono::milliseconds(25));
    drain_timer_.async_wait([this](std::error_code ec) {
      if (!ec) poll_drain();
    });
  }

  void finish(bool forced) {
    if (finished_) return;
    finished_ = true;
    if (forced) log_.warn("drain deadline passed; closing remaining flows", {{"active", drain_.active()}});
    else log_.info("all flows drained");
    signals_.cancel();
    drain_timer_.cancel();
    control_.stop();
  }

  options opt_;
  app_info info_;
  observe::logger log_;
  net::io_pool pool_;
  observe::registry metrics_;
  config::snapshot<Config> config_;
  flow::drain_tracker drain_;
  asio::io_context control_;
  asio::signal_set signals_;
  asio::steady_timer drain_timer_{control_};
  std::chrono::steady_clock::time_point deadline_{};
  std::function<result<Config, config::diagnostics>()> loader_;
  std::optional<config::reloader<Config>> reloader_;
  std::optional<config::watcher> watcher_;
  std::vector<std::function<void()>> stop_accepting_;
  std::vector<std::function<void(const config_ptr&)>> reloaded_;
  std::vector<std::function<void(admin::server&)>> admin_mounts_;
  observe::counter* reloads_ok_ = nullptr;
  observe::counter* reloads_failed_ = nullptr;
  bool finished_ = false;
  int exit_code_ = 0;
  std::vector<std::shared_ptr<void>> kept_;  // last: destroyed first
};

}  // namespace rproxy::app
