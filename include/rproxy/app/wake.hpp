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
// Commands run with /bin/sh -c, detached (app/command.hpp); their output goes to log_file. The
// state itself (online, sleeping, starting; clients, idle time) is health::power_state, which
// flows below the app layer read and report to.
//
// Several instances in front of one group: cluster::shared_players (cluster/shared_players.hpp)
// keeps the group busy on an instance while clients play there through another, so that no
// instance stops it before the last client anywhere has left.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <rproxy/app/command.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/health/power_state.hpp>
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

/// What a group's host is doing (health/power_state.hpp).
using power = health::power;

/// A group's power state (health::power_state) and the commands that start and stop its host.
class wake_state : public health::power_state {
public:
  enum class start_result { started, starting, failed };

  using health::power_state::unreachable;
  /// No backend answered: sleeping with wake on (`w` set), else offline (see power_state).
  power unreachable(clock::time_point now, const wake_config* w) {
    return unreachable(now, w ? std::optional<clock::duration>(w->start_timeout) : std::nullopt);
  }

  /// A client found no backend: runs the start command, unless a start is already under way.
  start_result start(clock::time_point now, const wake_config& w, const observe::logger& log, std::string_view name) {
    if (!begin_start(now, w.start_timeout)) return start_result::starting;
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
    if (w.stop_command.empty() || !begin_sleep(now, w.idle_timeout)) return false;
    log.info("wake: no clients for the idle timeout; stopping the backend", {{"backends", name}});
    if (auto r = spawn_command(w.stop_command, {.log_file = w.log_file}); !r)
      log.error("wake: stop command failed", {{"backends", name}, {"error", r.error().message()}});
    return true;
  }
};

}  // namespace rproxy::app
