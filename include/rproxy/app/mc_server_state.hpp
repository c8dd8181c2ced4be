// rproxy/app/mc_server_state.hpp: what a Minecraft server keeps across config versions besides
// its pool (app/mc_servers.hpp keeps both): the answers of its server-list entry
// (flow/mc_server_list.hpp) and its wake-on-join state (app/wake.hpp).
#pragma once

#include <rproxy/app/wake.hpp>
#include <rproxy/flow/mc_server_list.hpp>

namespace rproxy::app {

/// A server's state kept across reloads besides its pool (app::pools keeps that): its status
/// answers (per client protocol version: a version-aware backend answers each its own way),
/// and wake-on-join.
struct mc_server_state {
  flow::mc_server_list::cache_type status{32};
  wake_state wake;
};

}  // namespace rproxy::app
