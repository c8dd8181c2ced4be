// rproxy/app/mc_server_state.hpp: what a Minecraft server keeps across config versions besides
// its pool (app/mc_servers.hpp keeps both): the answers of its server-list entry
// (flow/mc_server_list.hpp) and its wake-on-join state (app/wake.hpp), with what a proxy does
// with them when a login finds no backend and when the server has been idle.
#pragma once

#include <chrono>

#include <rproxy/app/mc_server_block.hpp>
#include <rproxy/app/wake.hpp>
#include <rproxy/flow/mc_server_list.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::app {

/// A server's state kept across reloads besides its pool (app::pools keeps that): its status
/// answers (per client protocol version: a version-aware backend answers each its own way),
/// and wake-on-join.
struct mc_server_state {
  flow::mc_server_list::cache_type status{32};
  wake_state wake;

  /// A player reached a backend of the server: it is online, with one more player.
  void joined() {
    wake.joined();
    wake.reachable(std::chrono::steady_clock::now());
  }

  /// The refusal for a login to server `sc` that found no backend: without wake on join, its
  /// offline text; with it, the server is started (unless a start is under way; its cached
  /// answers go, as they told of a sleeping server) and the player is told it is starting.
  reject_reason no_backend(const mc_server_block& sc, const observe::logger& log) {
    if (!sc.wake) return {reject_code::unavailable, sc.messages.offline};
    switch (wake.start(std::chrono::steady_clock::now(), *sc.wake, log, sc.name)) {
      case wake_state::start_result::failed: return {reject_code::unavailable, sc.messages.offline};
      case wake_state::start_result::started: status.clear(); break;
      case wake_state::start_result::starting: break;
    }
    return {reject_code::unavailable, sc.messages.starting};
  }

  /// From a periodic tick: stops server `sc` once it has had no players for its wake
  /// idle_timeout (its cached answers go). True when it did.
  bool stop_if_idle(const mc_server_block& sc, const observe::logger& log) {
    if (!sc.wake || !wake.stop_if_idle(std::chrono::steady_clock::now(), *sc.wake, log, sc.name)) return false;
    status.clear();
    return true;
  }
};

}  // namespace rproxy::app
