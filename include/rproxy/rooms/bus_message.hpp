// rproxy/rooms/bus_message.hpp: what one ws-server instance tells the others about a room,
// through Redis pub/sub (rooms/cluster.hpp): the wire format, sans-I/O. It arrives from the
// network, so decode_bus() is strict and bounded, and fuzzed (tests/fuzz/rooms_bus.cpp).
//
//     rr1 KIND ORIGIN ID NUM\n        header: format version, kind, sending instance (16 lowercase
//     ROOM\n                          hex digits), a message id, a number (kind's meaning)
//     USER\n                          the user acted upon (kick, ban, ...; a private message's addressee)
//     BY\n                            who acted
//     FRAME                           the rest: the JSON frame members get, encoded once by the sender
//
//     auto wire = rooms::encode_bus({.kind = bus_kind::message, .origin = me, .id = 7, .room = "lobby", .frame = f});
//     auto ev = rooms::decode_bus(wire, limits);       // result<bus_event>: views into `wire`
//
// Kinds, and what a receiving instance does with its local members:
//   message  ROOM, ID (the room's message id), FRAME: a room message; kept in the room's history
//            and delivered to the local members, in ID order (ids are given by Redis: one order
//            for every instance)
//   event    ROOM, FRAME: a presence, role or moderation event for the local members
//   kick     ROOM, USER, BY, FRAME: USER's local sessions leave the room and get `kicked`; the
//            others get FRAME
//   ban      as kick, NUM = the ban's end (unix milliseconds): kept, the sessions get `banned`
//   unban, unmute  ROOM, USER, FRAME: the sanction is dropped
//   mute     ROOM, USER, NUM = the mute's end (unix milliseconds), FRAME
//   role     ROOM, USER, NUM = the role (rooms::role's value), FRAME
//   private  USER (the addressee), FRAME: to the addressee's local sessions
//
// Names follow the rooms protocol's rules (check_name: no control characters, so no newline);
// the frame must be one flat JSON object (what rooms::json_out writes: no raw < > & '), at
// most limits.max_frame_bytes. A message id is Lua-friendly: the header can be written by a Redis
// script that only knows the id once it runs (bus_message_parts()).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include <rproxy/core/error.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/roles.hpp>

namespace rproxy::rooms {

enum class bus_kind : std::uint8_t { message, event, kick, ban, unban, mute, unmute, role, private_message };

constexpr std::string_view bus_kind_name(bus_kind k) noexcept {
  switch (k) {
    case bus_kind::message: return "message";
    case bus_kind::event: return "event";
    case bus_kind::kick: return "kick";
    case bus_kind::ban: return "ban";
    case bus_kind::unban: return "unban";
    case bus_kind::mute: return "mute";
    case bus_kind::unmute: return "unmute";
    case bus_kind::role: return "role";
    case bus_kind::private_message: return "private";
  }
  return "event";
}

/// Why a bus message was refused (nothing was applied).
enum class bus_error {
  too_large = 1,  ///< over limits.max_bytes, or a frame over limits.max_frame_bytes
  bad_header,     ///< not `rr1 KIND ORIGIN ID NUM`
  unknown_kind,   ///< a kind this version does not know
  bad_name,       ///< a room or user name the rooms protocol refuses, or one a kind needs is missing
  bad_frame,      ///< the frame is not one flat JSON object
};

namespace detail {
class bus_error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.rooms.bus"; }
  std::string message(int c) const override {
    switch (static_cast<bus_error>(c)) {
      case bus_error::too_large: return "bus message too large";
      case bus_error::bad_header: return "bus message header is malformed";
      case bus_error::unknown_kind: return "bus message of an unknown kind";
      case bus_error::bad_name: return "bus message has a missing or invalid name";
      case bus_error::bad_frame: return "bus message frame is not a flat JSON object";
    }
    return "unknown rproxy.rooms.bus error";
  }
  // Another instance (or whatever wrote to Redis) sent it; nothing was done with it.
  rproxy::condition source(int) const noexcept override { return rproxy::condition::upstream; }
  bool retry_safe(int) const noexcept override { return false; }
};
}  // namespace detail

inline const std::error_category& bus_error_category() noexcept {
  static const detail::bus_error_category c;
  return c;
}
inline std::error_code make_error_code(bus_error e) noexcept { return {static_cast<int>(e), bus_error_category()}; }

}  // namespace rproxy::rooms

template <>
struct std::is_error_code_enum<rproxy::rooms::bus_error> : std::true_type {};

namespace rproxy::rooms {

/// One bus message; decoded, its strings are views into the wire text.
struct bus_event {
  bus_kind kind = bus_kind::event;
  std::uint64_t origin = 0;  ///< the sending instance
  std::uint64_t id = 0;      ///< message: the room's message id
  std::uint64_t num = 0;     ///< ban, mute: end (unix ms); role: the role
  std::string_view room, user, by, frame;
};

/// Bounds of what decode_bus() accepts.
struct bus_limits {
  std::size_t max_bytes = 64 * 1024;        ///< a whole bus message
  std::size_t max_frame_bytes = 48 * 1024;  ///< its frame
  std::size_t max_name_bytes = 64;          ///< a room or user name (rooms.max_name_bytes)
};

/// The bounds that fit a rooms block: a message's text may grow 6 times when escaped (\u00XX).
inline bus_limits bus_limits_for(const rooms_block& cfg) {
  bus_limits l;
  l.max_name_bytes = cfg.max_name_bytes;
  l.max_frame_bytes = std::size_t{cfg.max_message_bytes} * 6 + std::size_t{cfg.max_name_bytes} * 12 + 512;
  l.max_bytes = l.max_frame_bytes + std::size_t{cfg.max_name_bytes} * 3 + 128;
  return l;
}

inline constexpr std::uint64_t bus_max_number = 9007199254740991;  // 2^53 - 1: exact in Lua and JSON

namespace detail {

inline void append_hex16(std::string& out, std::uint64_t v) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(hex[(v >> shift) & 0xF]);
}

/// Which names a kind needs (room, user, by) and whether it carries a frame.
struct bus_shape {
  bool room, user, by;
};
constexpr bus_shape shape_of(bus_kind k) noexcept {
  switch (k) {
    case bus_kind::message:
    case bus_kind::event: return {true, false, false};
    case bus_kind::kick:
    case bus_kind::ban: return {true, true, true};
    case bus_kind::unban:
    case bus_kind::mute:
    case bus_kind::unmute:
    case bus_kind::role: return {true, true, false};
    case bus_kind::private_message: return {false, true, false};
  }
  return {true, false, false};
}

constexpr bool bus_kind_from(std::string_view s, bus_kind& out) noexcept {
  for (auto k : {bus_kind::message, bus_kind::event, bus_kind::kick, bus_kind::ban, bus_kind::unban, bus_kind::mute,
                 bus_kind::unmute, bus_kind::role, bus_kind::private_message})
    if (bus_kind_name(k) == s) return out = k, true;
  return false;
}

/// A decimal 0 .. bus_max_number with no sign, no leading zero (except "0"), at most 16 digits.
inline bool parse_bus_number(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty() || s.size() > 16 || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out <= bus_max_number;
}

inline bool parse_hex16(std::string_view s, std::uint64_t& out) noexcept {
  if (s.size() != 16) return false;
  out = 0;
  for (char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
    else return false;
    out = (out << 4) | d;
  }
  return true;
}

/// Takes the text before the next '\n' off `in`; false when there is none.
inline bool take_line(std::string_view& in, std::string_view& line) noexcept {
  const auto nl = in.find('\n');
  if (nl == std::string_view::npos) return false;
  line = in.substr(0, nl);
  in.remove_prefix(nl + 1);
  return true;
}

}  // namespace detail

/// The wire text of `e` (e.origin, names and frame as given; the caller built them).
inline std::string encode_bus(const bus_event& e) {
  std::string out;
  out.reserve(64 + e.room.size() + e.user.size() + e.by.size() + e.frame.size());
  out += "rr1 ";
  out += bus_kind_name(e.kind);
  out.push_back(' ');
  detail::append_hex16(out, e.origin);
  out.push_back(' ');
  out += std::to_string(e.id);
  out.push_back(' ');
  out += std::to_string(e.num);
  out.push_back('\n');
  out += e.room;
  out.push_back('\n');
  out += e.user;
  out.push_back('\n');
  out += e.by;
  out.push_back('\n');
  out += e.frame;
  return out;
}

/// A room message split where its id goes, for a Redis script that assigns the id:
/// wire = head + ID + middle + frame_head + ID + frame_tail.
struct bus_message_parts {
  std::string head;    ///< "rr1 message ORIGIN "
  std::string middle;  ///< " 0\nROOM\n\n\n"
};
inline bus_message_parts message_parts(std::uint64_t origin, std::string_view room) {
  bus_message_parts p;
  p.head = "rr1 message ";
  detail::append_hex16(p.head, origin);
  p.head.push_back(' ');
  p.middle = " 0\n";
  p.middle += room;
  p.middle += "\n\n\n";
  return p;
}

/// Reads one bus message. The views point into `wire`.
inline rproxy::result<bus_event> decode_bus(std::string_view wire, const bus_limits& lim) {
  using rproxy::failure;
  if (wire.size() > lim.max_bytes) return failure(make_error_code(bus_error::too_large));
  std::string_view in = wire, header;
  if (!detail::take_line(in, header) || header.size() > 64) return failure(make_error_code(bus_error::bad_header));
  // header: rr1 KIND ORIGIN ID NUM
  std::string_view parts[5];
  std::size_t n = 0;
  for (;;) {
    const auto sp = header.find(' ');
    if (n == 5) return failure(make_error_code(bus_error::bad_header));  // a sixth field
    parts[n++] = header.substr(0, sp);
    if (sp == std::string_view::npos) break;
    header.remove_prefix(sp + 1);
  }
  if (n != 5 || parts[0] != "rr1") return failure(make_error_code(bus_error::bad_header));
  bus_event e;
  if (!detail::bus_kind_from(parts[1], e.kind)) return failure(make_error_code(bus_error::unknown_kind));
  if (!detail::parse_hex16(parts[2], e.origin) || !detail::parse_bus_number(parts[3], e.id) ||
      !detail::parse_bus_number(parts[4], e.num))
    return failure(make_error_code(bus_error::bad_header));
  if (!detail::take_line(in, e.room) || !detail::take_line(in, e.user) || !detail::take_line(in, e.by))
    return failure(make_error_code(bus_error::bad_header));
  e.frame = in;

  const auto shape = detail::shape_of(e.kind);
  const auto name_ok = [&](std::string_view s, bool needed) {
    if (!needed) return s.empty();
    return !check_name(s, lim.max_name_bytes, "name");
  };
  if (!name_ok(e.room, shape.room) || !name_ok(e.user, shape.user) || !name_ok(e.by, shape.by))
    return failure(make_error_code(bus_error::bad_name));
  if (e.kind == bus_kind::message && e.id == 0) return failure(make_error_code(bus_error::bad_header));
  if (e.kind != bus_kind::message && e.id != 0) return failure(make_error_code(bus_error::bad_header));
  if (e.kind == bus_kind::role && e.num > static_cast<std::uint64_t>(role::owner))
    return failure(make_error_code(bus_error::bad_header));
  if (e.frame.size() > lim.max_frame_bytes) return failure(make_error_code(bus_error::too_large));
  // Frames may be pasted into HTML as they are (protocol.hpp): none holds < > & ' raw.
  if (e.frame.find_first_of("<>&'") != std::string_view::npos) return failure(make_error_code(bus_error::bad_frame));
  // One flat object, as json_out writes it: what members get is well-formed JSON.
  rproxy::json::limits jl;
  jl.max_bytes = lim.max_frame_bytes;
  jl.max_depth = 1;
  jl.max_nodes = 32;
  auto doc = rproxy::json::parse(e.frame, jl);
  if (!doc || !doc->root().is_object()) return failure(make_error_code(bus_error::bad_frame));
  return e;
}

}  // namespace rproxy::rooms
