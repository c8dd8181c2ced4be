// rproxy/rooms/rooms_block.hpp: the `rooms:` YAML block of the WebSocket server (limits, history,
// password policy), declared once; the registry (registry.hpp) reads it as is.
//
//     rooms:
//       max_rooms: 10000
//       max_members: 1000          # a room's own max_members may be lower, never higher
//       history: 100               # messages kept per room, replayed on join
//       password: { min_bytes: 8, iterations: 100000 }
//
// Every collection the registry keeps is bounded by one of these fields (docs/ws-server.md
// "Limits").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>

namespace rproxy::rooms {

/// How room passwords are checked and stored (PBKDF2-HMAC-SHA256, password.hpp).
struct password_policy {
  std::uint32_t min_bytes = 8;
  std::uint32_t max_bytes = 256;
  std::uint32_t iterations = 100'000;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&password_policy::min_bytes>("shortest room password accepted"),
                       cfg::doc<&password_policy::max_bytes>("longest room password accepted"),
                       cfg::doc<&password_policy::iterations>(
                           "PBKDF2-HMAC-SHA256 iterations per hash (each protected join costs one hash)"));
  }
  void validate(rproxy::config::validator& v) const {
    if (min_bytes == 0) v.at(&password_policy::min_bytes).error("must be at least 1");
    if (max_bytes < min_bytes || max_bytes > 4096)
      v.at(&password_policy::max_bytes).error("must be between min_bytes and 4096");
    if (iterations == 0 || iterations > 10'000'000)
      v.at(&password_policy::iterations).error("must be between 1 and 10000000");
  }
};

struct rooms_block {
  std::uint32_t max_rooms = 10'000;
  std::uint32_t max_rooms_per_session = 32;
  std::uint32_t max_owned_rooms_per_user = 8;
  std::uint32_t max_members = 1'000;
  std::uint32_t history = 100;
  std::uint32_t max_message_bytes = 4'096;
  std::uint32_t max_name_bytes = 64;
  std::uint32_t max_request_bytes = 16'384;
  std::uint32_t max_sanctions_per_room = 1'000;
  std::uint32_t max_roles_per_room = 256;
  std::chrono::seconds max_sanction{30LL * 24 * 3600};
  std::chrono::seconds empty_room_ttl{300};
  password_policy password{};

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&rooms_block::max_rooms>("rooms in this process; create fails past it"),
        cfg::doc<&rooms_block::max_rooms_per_session>("rooms one connection may be in at once"),
        cfg::doc<&rooms_block::max_owned_rooms_per_user>("rooms one user may own at once"),
        cfg::doc<&rooms_block::max_members>("members per room (a room's own max_members may be lower)"),
        cfg::doc<&rooms_block::history>("messages kept per room, replayed on join; 0: none"),
        cfg::doc<&rooms_block::max_message_bytes>("longest message text (UTF-8 bytes)"),
        cfg::doc<&rooms_block::max_name_bytes>("longest room or user name (UTF-8 bytes)"),
        cfg::doc<&rooms_block::max_request_bytes>("longest JSON request"),
        cfg::doc<&rooms_block::max_sanctions_per_room>("bans and mutes kept per room (expired ones are dropped first)"),
        cfg::doc<&rooms_block::max_roles_per_room>("users with a role other than the default, per room"),
        cfg::doc<&rooms_block::max_sanction>("longest ban or mute; a ban without a duration lasts this long"),
        cfg::doc<&rooms_block::empty_room_ttl>("an empty room is closed after this long (its history with it)"),
        cfg::doc<&rooms_block::password>("room password policy"));
  }
  void validate(rproxy::config::validator& v) const {
    if (max_members == 0) v.at(&rooms_block::max_members).error("must be at least 1");
    if (max_rooms_per_session == 0) v.at(&rooms_block::max_rooms_per_session).error("must be at least 1");
    if (max_name_bytes == 0 || max_name_bytes > 1024) v.at(&rooms_block::max_name_bytes).error("must be between 1 and 1024");
    if (max_message_bytes == 0 || max_message_bytes > 1'048'576)
      v.at(&rooms_block::max_message_bytes).error("must be between 1 and 1048576");
    if (max_request_bytes < 256 || max_request_bytes > 4'194'304)
      v.at(&rooms_block::max_request_bytes).error("must be between 256 and 4194304");
    if (history > 100'000) v.at(&rooms_block::history).error("must be at most 100000");
    if (max_sanction.count() <= 0) v.at(&rooms_block::max_sanction).error("must be positive");
  }
};

}  // namespace rproxy::rooms
