// rproxy/flow/mc_status_block.hpp: the `status:` block of a Minecraft server, declared once: what
// the server list shows for it (flow/mc_server_list.hpp answers with it). A header of its own, so
// that a config declaring it does not pay for the responder.
//
//     status:
//       cache_ttl: 5s
//       offline: {motd: "§cServer offline", version_name: offline}
#pragma once

#include <chrono>
#include <string>

#include <rproxy/config/field.hpp>

namespace rproxy::flow {

/// What the server list shows for a server in one state.
struct mc_status_text {
  std::string motd;          ///< text, or a JSON text component; '§' colour codes work
  std::string version_name;  ///< shown (in red) in place of the player count
  std::string favicon;       ///< path to a 64x64 PNG, or ""
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&mc_status_text::motd>("MOTD: text or a JSON text component"),
                  doc<&mc_status_text::version_name>("version text shown in place of the player count"),
                  doc<&mc_status_text::favicon>("path to a 64x64 PNG icon (relative to the config file), or empty"));
  }
};

struct mc_status_config {
  std::chrono::milliseconds cache_ttl = std::chrono::seconds(5);
  mc_status_text online{};
  mc_status_text offline{"§cServer offline", "offline", ""};
  mc_status_text starting{"§eServer is starting, please wait...", "starting", ""};
  mc_status_text sleeping{"§7Server is sleeping. Join to wake it up!", "sleeping", ""};
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&mc_status_config::cache_ttl>("how long a backend's status answer is reused"),
                  doc<&mc_status_config::online>("replaces parts of the backend's answer; empty fields keep the backend's"),
                  doc<&mc_status_config::offline>("shown when no backend answers"),
                  doc<&mc_status_config::starting>("shown while a wake-on-join start is in progress"),
                  doc<&mc_status_config::sleeping>("shown while a wake-on-join server is stopped"));
  }
};

}  // namespace rproxy::flow
