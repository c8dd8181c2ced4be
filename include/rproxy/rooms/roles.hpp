// rproxy/rooms/roles.hpp: room roles and the one permission table.
//
//     owner > admin > moderator > member > guest
//
//   action                 least role of the actor   target (the user acted upon)
//   kick, mute, unmute     moderator                 ranked strictly below the actor
//   ban, unban             admin                     ranked strictly below the actor
//   set_role               admin                     ranked strictly below the actor; the new
//                                                    role strictly below the actor, except that
//                                                    the owner may hand "owner" over (and becomes admin)
//   create, private_message member                   -
//   join, leave, list, members, message, history: any role (a muted user cannot send messages)
//
// Nobody acts on an equal or higher role: a moderator cannot kick a moderator, the owner cannot
// be acted upon by anyone.
//
// A user's role in a room: the role given in that room (set_role, or owner for its creator),
// else member. The JWT's role claim (passed in by the server) combines with it: "admin" and
// "moderator" are site-wide (the user ranks at least that in every room), "guest" makes the
// user a guest everywhere (it cannot be promoted), "member" or no claim changes nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace rproxy::rooms {

enum class role : std::uint8_t { guest = 0, member = 1, moderator = 2, admin = 3, owner = 4 };

enum class action : std::uint8_t { kick, mute, ban, set_role, create, private_message };

constexpr std::string_view role_name(role r) noexcept {
  switch (r) {
    case role::guest: return "guest";
    case role::member: return "member";
    case role::moderator: return "moderator";
    case role::admin: return "admin";
    case role::owner: return "owner";
  }
  return "member";
}

constexpr std::optional<role> role_from_name(std::string_view s) noexcept {
  if (s == "guest") return role::guest;
  if (s == "member") return role::member;
  if (s == "moderator") return role::moderator;
  if (s == "admin") return role::admin;
  if (s == "owner") return role::owner;
  return std::nullopt;
}

/// The least role that may perform `a`.
constexpr role least_role_for(action a) noexcept {
  switch (a) {
    case action::kick:
    case action::mute: return role::moderator;
    case action::ban:
    case action::set_role: return role::admin;
    case action::create:
    case action::private_message: return role::member;
  }
  return role::owner;
}

/// May `actor` perform `a` on a user whose role is `target`?
constexpr bool may_act(role actor, action a, role target) noexcept {
  return actor >= least_role_for(a) && target < actor;
}

/// May `actor` give a user whose role is `target` the role `to`? (The owner handing "owner"
/// over is allowed; the registry then makes the old owner an admin.)
constexpr bool may_set_role(role actor, role target, role to) noexcept {
  if (!may_act(actor, action::set_role, target)) return false;
  if (to == role::owner) return actor == role::owner;
  return to < actor;
}

/// The role claim of a JWT ("role"), as the server passes it: the site-wide part of a role.
enum class site_role : std::uint8_t { guest, member, moderator, admin };

constexpr site_role site_role_from_claim(std::string_view s) noexcept {
  if (s == "guest") return site_role::guest;
  if (s == "moderator") return site_role::moderator;
  if (s == "admin" || s == "owner") return site_role::admin;
  return site_role::member;
}

/// The effective role: a room's own role for the user combined with the site-wide claim.
constexpr role effective_role(role in_room, site_role site) noexcept {
  switch (site) {
    case site_role::guest: return role::guest;
    case site_role::member: return in_room;
    case site_role::moderator: return in_room < role::moderator ? role::moderator : in_room;
    case site_role::admin: return in_room < role::admin ? role::admin : in_room;
  }
  return in_room;
}

}  // namespace rproxy::rooms
