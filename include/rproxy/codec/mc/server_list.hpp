// rproxy/codec/mc/server_list.hpp: what a proxy shows in the Minecraft server list besides the
// backend's own answer: a status for a server state (offline, sleeping, ...), a backend's answer
// with parts replaced, and the same answer for a legacy (pre-1.7) ping.
//
//     auto json = mc::state_status("§cServer offline", "offline", favicon);   // protocol -1: red text
//     json = mc::with_overrides(backend_json, {.motd = "Welcome!"});
//     out = mc::make_legacy_kick(kind, mc::legacy_of(json));
#pragma once

#include <string>
#include <string_view>

#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>

namespace rproxy::codec::mc {

/// A MOTD as config text: a JSON text component when it starts with '{', else plain text.
inline std::string motd_component(std::string_view motd) {
  return motd.starts_with('{') ? std::string(motd) : text_component(motd);
}

/// The status JSON for a server that cannot answer itself: the MOTD, and `version_name` shown
/// (in red) in place of the player count.
inline std::string state_status(std::string_view motd, std::string_view version_name, std::string favicon = {}) {
  status_info s;
  s.version_name = std::string(version_name);
  s.protocol = -1;
  s.players = status_players{0, 0, {}};
  s.description = motd_component(motd);
  s.favicon = std::move(favicon);
  return to_json(s);
}

/// Parts of a status answer to replace; empty fields keep the backend's.
struct status_overrides {
  std::string_view motd{};
  std::string_view version_name{};
  std::string_view favicon{};  ///< already encoded ("data:image/png;base64,...")
  bool empty() const { return motd.empty() && version_name.empty() && favicon.empty(); }
};

/// The backend's answer with the overrides put in (unchanged if it does not parse).
inline std::string with_overrides(std::string json, const status_overrides& o) {
  if (o.empty()) return json;
  auto s = parse_status_json(json);
  if (!s) return json;
  if (!o.motd.empty()) s->description = motd_component(o.motd);
  if (!o.version_name.empty()) s->version_name = std::string(o.version_name);
  if (!o.favicon.empty()) s->favicon = std::string(o.favicon);
  return to_json(*s);
}

/// A status answer as a legacy kick says it.
inline legacy_status legacy_of(std::string_view json) {
  legacy_status l;
  if (auto s = parse_status_json(json)) {
    l.protocol = s->protocol;
    l.version_name = s->version_name;
    l.motd = plain_text(s->description);
    if (s->players) {
      l.online = s->players->online;
      l.max = s->players->max;
    }
  }
  return l;
}

}  // namespace rproxy::codec::mc
