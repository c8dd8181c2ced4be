// rproxy/rooms/outcome.hpp: what the room registry (rooms/registry.hpp) takes and returns: the
// caller of a request (session, user, role claim), the outcome (a reply for the sender, history
// to replay, deliveries to other sessions) and a room's state for tests and metrics. A frame is
// encoded once and shared by all its recipients.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/rooms/roles.hpp>

namespace rproxy::rooms {

using session_id = std::uint64_t;
using time_point = std::chrono::system_clock::time_point;
/// One encoded frame, shared by all its recipients (and by the history).
using payload = std::shared_ptr<const std::string>;
using recipient_list = std::shared_ptr<const std::vector<session_id>>;

/// The server numbers sessions with its worker's index in the top 16 bits, so a delivery knows
/// where to post each recipient's send.
constexpr session_id make_session_id(std::uint16_t worker, std::uint64_t serial) noexcept {
  return (static_cast<std::uint64_t>(worker) << 48) | (serial & 0xFFFF'FFFF'FFFFull);
}
constexpr std::uint16_t worker_of(session_id s) noexcept { return static_cast<std::uint16_t>(s >> 48); }

/// One frame for a set of sessions.
struct delivery {
  payload frame;
  recipient_list to;
};

/// What one request produced.
struct outcome {
  bool ok = false;                   ///< the reply is {"type":"ok",...}
  std::string reply;                 ///< one frame for the sender
  std::vector<payload> replay;       ///< frames for the sender after the reply (history), oldest first
  std::vector<delivery> deliveries;  ///< frames for other sessions (may include the sender's own)
};

/// Who sends a request: the session, and the user and role claim its JWT gave.
struct caller {
  session_id session = 0;
  std::string_view user;
  site_role site = site_role::member;
};

/// A room's state at one moment (tests, fuzz invariants, metrics).
struct room_info {
  std::vector<session_id> members;
  std::uint32_t max_members = 0;
  std::size_t history = 0;
  std::uint64_t last_id = 0;
  std::string owner;
  bool is_private = false;
  std::string password;  ///< the password's hash as password_hash::encode() writes it; empty: none
};

}  // namespace rproxy::rooms
