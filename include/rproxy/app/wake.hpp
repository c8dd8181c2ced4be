// rproxy/app/wake.hpp: wake on demand (scale to zero). A backend group whose host is stopped is
// started by a command when a client finds no backend, and stopped by another command after it
// has had no clients for an idle time. mc-proxy's wake-on-join is one use.
//
//     wake:                                   # a config block (wake_config)
//       start_command: systemctl start mc-survival
//       stop_command: systemctl stop mc-survival
//       idle_timeout: 10m
//
//     rproxy::app::wake_state w;              // per backend group, kept across reloads
//     if (no_backend) switch (w.start(now, cfg, log, "survival")) { ... }   // tell the client: starting
//     w.joined(); ... w.left(now);            // clients in, out
//     if (w.stop_if_idle(now, cfg, log, "survival")) forget_cached_answers();   // from a 1 s tick
//
// Commands run with /bin/sh -c, detached (app/command.hpp); their output goes to log_file.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include <rproxy/app/command.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::app {

struct wake_config {
  std::string start_command;
  std::string stop_command;
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(10);
  std::chrono::milliseconds start_timeout = std::chrono::minutes(2);
  std::string log_file;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&wake_config::start_command>("shell command that starts the backend (run with /bin/sh -c)"),
                  doc<&wake_config::stop_command>("shell command that stops it after idle_timeout with no clients; empty: never"),
                  doc<&wake_config::idle_timeout>("no clients for this long: run stop_command"),
                  doc<&wake_config::start_timeout>("give up waiting for a start after this long (the next client retries)"),
                  doc<&wake_config::log_file>("append the commands' output here; empty: discard"));
  }
};

/// What a group's host is doing, as a client would be told.
enum class power { online, offline, sleeping, starting };

class wake_state {
public:
  using clock = std::chrono::steady_clock;
  enum class start_result { started, starting, failed };

  /// A backend answered: the group is online.
  void reachable(clock::time_point now) {
    std::lock_guard lock(mu_);
    if (power_ != power::online) idle_since_ = now;
    power_ = power::online;
  }

  /// No backend answered: the state to show until one does (sleeping with wake on, else offline;
  /// a start in progress stays `starting` until its start_timeout).
  power unreachable(clock::time_point now, const wake_config* w) {
    std::lock_guard lock(mu_);
    if (!(power_ == power::starting && w && now - since_ < w->start_timeout)) power_ = w ? power::sleeping : power::offline;
    return power_;
  }

  /// A client found no backend: runs the start command, unless a start is already under way.
  start_result start(clock::time_point now, const wake_config& w, const observe::logger& log, std::string_view name) {
    {
      std::lock_guard lock(mu_);
      if (power_ == power::starting && now - since_ < w.start_timeout) return start_result::starting;
      power_ = power::starting;
      since_ = now;
    }
    if (auto r = spawn_command(w.start_command, {.log_file = w.log_file}); !r) {
      log.error("wake: start command failed", {{"backends", name}, {"error", r.error().message()}});
      return start_result::failed;
    }
    log.info("wake: starting the backend for a client", {{"backends", name}});
    return start_result::started;
  }

  /// Runs the stop command once the group has been online with no clients for idle_timeout.
  /// True when it did (the group is sleeping from now on).
  bool stop_if_idle(clock::time_point now, const wake_config& w, const observe::logger& log, std::string_view name) {
    if (w.stop_command.empty()) return false;
    {
      std::lock_guard lock(mu_);
      if (power_ != power::online || clients_.load() != 0 || now - idle_since_ < w.idle_timeout) return false;
      power_ = power::sleeping;
    }
    log.info("wake: no clients for the idle timeout; stopping the backend", {{"backends", name}});
    if (auto r = spawn_command(w.stop_command, {.log_file = w.log_file}); !r)
      log.error("wake: stop command failed", {{"backends", name}, {"error", r.error().message()}});
    return true;
  }

  void joined() { clients_.fetch_add(1); }
  void left(clock::time_point now) {
    if (clients_.fetch_sub(1) == 1) {
      std::lock_guard lock(mu_);
      idle_since_ = now;
    }
  }

private:
  std::mutex mu_;
  power power_ = power::online;
  clock::time_point since_{};
  clock::time_point idle_since_ = clock::now();
  std::atomic<int> clients_{0};
};

}  // namespace rproxy::app
