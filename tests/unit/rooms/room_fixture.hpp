// Shared by the rooms tests: a registry with small limits, a fixed clock and JSON readers
// for the frames it returns.
#pragma once

#include <catch2/catch.hpp>

#include <rproxy/rooms/registry.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/core/json.hpp>

namespace ws_test {

using namespace std::chrono_literals;
using rproxy::rooms::session_id;
using rproxy::rooms::site_role;

inline rproxy::rooms::rooms_block small_config() {
  rproxy::rooms::rooms_block c;
  c.max_rooms = 8;
  c.max_rooms_per_session = 4;
  c.max_owned_rooms_per_user = 3;
  c.max_members = 5;
  c.history = 3;
  c.max_message_bytes = 64;
  c.max_name_bytes = 16;
  c.max_request_bytes = 1024;
  c.max_sanctions_per_room = 4;
  c.max_roles_per_room = 4;
  c.max_sanction = 3600s;
  c.empty_room_ttl = 60s;
  c.password.min_bytes = 6;
  c.password.iterations = 1000;  // the unit tests hash many times; production default is 100000
  return c;
}

/// Parts joined out of line: g++ 12 at -O3 misjudges inlined `"x" + std::to_string(i) + ...`
/// concatenations (-Warray-bounds / -Wstringop-overflow false positives).
[[gnu::noinline]] inline std::string joined(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s.append(p);
  return s;
}
[[gnu::noinline]] inline std::string num(std::uint64_t v) { return std::to_string(v); }

/// A member of a frame, as text (strings decoded, numbers and booleans as written).
inline std::optional<std::string> get(std::string_view frame, std::string_view key) {
  auto doc = rproxy::json::parse(frame);
  REQUIRE(doc);
  auto v = doc->root().find(key);
  if (!v) return std::nullopt;
  if (v->is_bool()) return std::string(v->as_bool() ? "true" : "false");
  if (v->is_string() || v->is_number()) return std::string(v->as_string());
  return rproxy::json::dump(*v);
}

struct fixture {
  rproxy::rooms::rooms_block cfg = small_config();
  rproxy::rooms::registry reg{cfg};
  rproxy::rooms::time_point now = rproxy::rooms::time_point{} + std::chrono::hours(24 * 365 * 50);

  rproxy::rooms::outcome send(session_id s, std::string_view user, std::string_view text,
                          site_role site = site_role::member) {
    auto out = reg.handle({s, user, site}, text, now);
    // Every reply is one strict JSON object, with no raw HTML-special byte anywhere.
    REQUIRE(rproxy::json::parse(out.reply));
    REQUIRE(out.reply.find_first_of("<>&'") == std::string::npos);
    for (const auto& d : out.deliveries) {
      REQUIRE(d.frame);
      REQUIRE(d.to);
      REQUIRE(rproxy::json::parse(*d.frame));
      REQUIRE(d.frame->find_first_of("<>&'") == std::string::npos);
    }
    return out;
  }
  /// Sends and requires an ok reply.
  rproxy::rooms::outcome ok(session_id s, std::string_view user, std::string_view text, site_role site = site_role::member) {
    auto out = send(s, user, text, site);
    INFO(out.reply);
    REQUIRE(out.ok);
    REQUIRE(get(out.reply, "type") == "ok");
    return out;
  }
  /// Sends and returns the error code (requires an error reply).
  std::string code(session_id s, std::string_view user, std::string_view text, site_role site = site_role::member) {
    auto out = send(s, user, text, site);
    INFO(out.reply);
    REQUIRE_FALSE(out.ok);
    REQUIRE(get(out.reply, "type") == "error");
    REQUIRE(out.deliveries.empty());
    auto c = get(out.reply, "code");
    REQUIRE(c);
    REQUIRE(get(out.reply, "error"));
    return *c;
  }
  std::vector<session_id> members(std::string_view room) {
    auto i = reg.info(room);
    REQUIRE(i);
    return i->members;
  }
};

}  // namespace ws_test
