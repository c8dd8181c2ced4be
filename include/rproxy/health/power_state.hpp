// rproxy/health/power_state.hpp: what a backend group's host is doing, as a client would be
// told: online while a backend answers; offline when none does (sleeping when it can be woken);
// starting from a wake until a backend answers or the start times out. It also counts the
// group's clients and when it went idle, so that an idle group can be put to sleep.
//
//     rproxy::health::power_state s;                      // per backend group, kept across reloads
//     s.reachable(now);                                   // a backend answered
//     show(s.unreachable(now, start_timeout));            // none did (nullopt: cannot be woken)
//     if (s.begin_start(now, 2min)) run_start_command();  // a client found no backend
//     s.joined(); ... s.left(now);                        // clients in, out
//     if (s.begin_sleep(now, 10min)) run_stop_command();  // online, no clients for 10 min
//     s.busy_elsewhere(now);                              // clients through another instance (cluster/shared_players.hpp)
//
// Thread-safe: flows on every worker report to it. app/wake.hpp runs the start and stop
// commands on top of it; flow/mc_server_list.hpp shows its state in the server list.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>

namespace rproxy::health {

/// What a group's host is doing, as a client would be told.
enum class power { online, offline, sleeping, starting };

class power_state {
public:
  using clock = std::chrono::steady_clock;

  /// A backend answered: the group is online.
  void reachable(clock::time_point now) {
    std::lock_guard lock(mu_);
    if (power_ != power::online) idle_since_ = now;
    power_ = power::online;
  }

  /// No backend answered: the state to show until one does. `start_timeout` is nullopt for a
  /// group that cannot be woken (offline), else it is shown sleeping; a start in progress stays
  /// `starting` until its start_timeout has passed.
  power unreachable(clock::time_point now, std::optional<clock::duration> start_timeout) {
    std::lock_guard lock(mu_);
    if (!(power_ == power::starting && start_timeout && now - since_ < *start_timeout))
      power_ = start_timeout ? power::sleeping : power::offline;
    return power_;
  }

  /// A client found no backend: the group is starting from now on. False when a start began
  /// less than start_timeout ago (the caller does not start it again).
  bool begin_start(clock::time_point now, clock::duration start_timeout) {
    std::lock_guard lock(mu_);
    if (power_ == power::starting && now - since_ < start_timeout) return false;
    power_ = power::starting;
    since_ = now;
    return true;
  }

  /// True once the group has been online with no clients for idle_timeout: it is sleeping from
  /// now on (the caller stops it).
  bool begin_sleep(clock::time_point now, clock::duration idle_timeout) {
    std::lock_guard lock(mu_);
    if (power_ != power::online || clients_.load() != 0 || now - idle_since_ < idle_timeout) return false;
    power_ = power::sleeping;
    return true;
  }

  /// Clients play on the group through another instance: its idle time starts over, so it is
  /// put to sleep idle_timeout after the last client anywhere left.
  void busy_elsewhere(clock::time_point now) {
    std::lock_guard lock(mu_);
    idle_since_ = now;
  }

  /// This instance's clients on the group now.
  int clients() const noexcept { return clients_.load(); }

  void joined() { clients_.fetch_add(1); }
  void left(clock::time_point now) {
    if (clients_.fetch_sub(1) == 1) {
      std::lock_guard lock(mu_);
      idle_since_ = now;
    }
  }

  power current() const {
    std::lock_guard lock(mu_);
    return power_;
  }

private:
  mutable std::mutex mu_;
  power power_ = power::online;
  clock::time_point since_{};
  clock::time_point idle_since_ = clock::now();
  std::atomic<int> clients_{0};
};

}  // namespace rproxy::health
