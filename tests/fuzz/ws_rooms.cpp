// libFuzzer target for the rooms core (rproxy/rooms/registry.hpp, protocol.hpp): a script of
// requests from ten sessions of five users, some raw text, some built from the bytes out of
// the protocol's words so that deep states (full rooms, bans, hand-overs) are reached.
// Each line: one control byte, then the rest of the line.
//   control & 0x80: a built request (the rest's bytes choose op, room, user, numbers)
//   control & 0x40: a disconnect of session (control % 10), or with 0x20 also a sweep
//   otherwise:      the rest is sent as is by session (control % 10)
//   control 0x7F:   also a reload (set_config), between config() and smaller limits, in turn
// Invariants after every step: every frame is strict JSON with no raw < > & ', members within
// max_members, history within its bound, rooms within max_rooms, rooms per session within its
// bound (config()'s: a reload lowers limits for what follows, not for what is), message ids
// contiguous, and each delivery's recipients are the room's members (room events and
// messages), not members any more (kicked, banned) or the addressee's sessions (private
// messages).
#include <rproxy/rooms/registry.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/core/json.hpp>

namespace {

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "ws_rooms invariant broken: %s\n", what);
  std::abort();
}

rproxy::rooms::rooms_block config() {
  rproxy::rooms::rooms_block c;
  c.max_rooms = 4;
  c.max_rooms_per_session = 3;
  c.max_owned_rooms_per_user = 2;
  c.max_members = 4;
  c.history = 3;
  c.max_message_bytes = 32;
  c.max_name_bytes = 12;
  c.max_request_bytes = 512;
  c.max_sanctions_per_room = 3;
  c.max_roles_per_room = 3;
  c.max_sanction = std::chrono::seconds(100);
  c.empty_room_ttl = std::chrono::seconds(10);
  c.password.min_bytes = 2;
  c.password.iterations = 1;  // the hash is exercised, not its cost
  return c;
}

/// What a reload switches to: every limit at most config()'s, so the invariants hold against config().
rproxy::rooms::rooms_block smaller() {
  auto c = config();
  c.max_rooms_per_session = 2;
  c.max_owned_rooms_per_user = 1;
  c.max_members = 2;
  c.history = 1;
  c.max_message_bytes = 8;
  c.max_name_bytes = 4;
  c.max_sanctions_per_room = 1;
  c.max_roles_per_room = 1;
  c.max_sanction = std::chrono::seconds(10);
  return c;
}

constexpr std::string_view users[] = {"u0", "u1", "u2", "u3", "u4"};
constexpr rproxy::rooms::site_role sites[] = {rproxy::rooms::site_role::member, rproxy::rooms::site_role::admin,
                                          rproxy::rooms::site_role::guest, rproxy::rooms::site_role::moderator,
                                          rproxy::rooms::site_role::member};
std::string_view user_of(rproxy::rooms::session_id s) { return users[s % 5]; }

std::string built(std::string_view b) {
  static constexpr std::string_view ops[] = {"create", "join",  "leave", "list",  "members", "message",
                                             "private_message", "history", "kick", "ban", "unban",
                                             "mute", "unmute", "set_role"};
  static constexpr std::string_view rooms[] = {"a", "b", "c", "d", "e"};
  static constexpr std::string_view roles[] = {"owner", "admin", "moderator", "member", "guest"};
  static constexpr std::string_view texts[] = {"hi", "<b>x</b> & 'y'", "line\\nbreak", "\\u00e9t\\u00e9"};
  auto at = [&](std::size_t i) -> unsigned { return i < b.size() ? static_cast<unsigned char>(b[i]) : 0u; };
  const std::string_view op = ops[at(0) % std::size(ops)];
  std::string r = R"({"op":")" + std::string(op) + R"(","id":)" + std::to_string(at(1));
  const auto room = [&] { r += R"(,"room":")" + std::string(rooms[at(2) % std::size(rooms)]) + "\""; };
  const auto user = [&] { r += R"(,"user":")" + std::string(users[at(3) % std::size(users)]) + "\""; };
  const auto text = [&] { r += R"(,"text":")" + std::string(texts[at(4) % std::size(texts)]) + "\""; };
  const std::string secs = std::to_string(1 + at(5) % 150);
  if (op == "create") {
    room();
    if (at(6) & 1) r += R"(,"private":true)";
    if (at(6) & 2) r += R"(,"password":"pw)" + std::to_string(at(6) & 4) + "\"";
    if (at(6) & 8) r += R"(,"max_members":)" + std::to_string(1 + at(7) % 6);
  } else if (op == "join") {
    room();
    if (at(6) & 2) r += R"(,"password":"pw)" + std::to_string(at(6) & 4) + "\"";
  } else if (op == "list") {
    if (at(6) & 1) r += R"(,"after":"b")";
  } else if (op == "message") {
    room(), text();
  } else if (op == "private_message") {
    user(), text();
  } else if (op == "history") {
    room();
    r += R"(,"since":)" + std::to_string(at(5) % 8);
  } else if (op == "ban" || op == "mute") {
    room(), user();
    if (op == "mute" || (at(6) & 1)) r += R"(,"seconds":)" + secs;
  } else if (op == "set_role") {
    room(), user();
    r += R"(,"role":")" + std::string(roles[at(6) % std::size(roles)]) + "\"";
  } else {
    room();
    if (op != "leave" && op != "members") user();
  }
  return r + "}";
}

void check_frame(std::string_view f) {
  rproxy::json::limits lim;
  lim.max_bytes = 1 << 20;
  lim.max_nodes = 1 << 16;
  auto doc = rproxy::json::parse(f, lim);
  check(doc.has_value() && doc->root().is_object(), "doc.has_value() && doc->root().is_object()");
  check(f.find_first_of("<>&'") == std::string_view::npos, "f.find_first_of(\"<>&'\") == std::string_view::npos");
}

std::string member(std::string_view frame, std::string_view key) {
  auto doc = rproxy::json::parse(frame);
  check(doc.has_value(), "doc.has_value()");
  auto v = doc->root().find(key);
  return v && (v->is_string() || v->is_number()) ? std::string(v->as_string()) : std::string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto cfg = config();
  rproxy::rooms::registry reg(cfg);
  auto now = rproxy::rooms::time_point{} + std::chrono::hours(1000);
  std::map<std::string, std::uint64_t> last_ids;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  int steps = 0;
  bool reloaded = false;
  while (!in.empty() && steps++ < 200) {
    const std::size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    if (line.empty()) continue;
    const auto control = static_cast<unsigned char>(line[0]);
    line.remove_prefix(1);
    const rproxy::rooms::session_id sid = control % 10;
    std::vector<rproxy::rooms::delivery> deliveries;
    if (control & 0x40 && !(control & 0x80)) {
      deliveries = reg.disconnect(sid, now);
    } else {
      const std::string text = control & 0x80 ? built(line) : std::string(line);
      auto out = reg.handle({sid, user_of(sid), sites[sid % 5]}, text, now);
      check_frame(out.reply);
      for (const auto& f : out.replay) check_frame(*f);
      if (out.ok && member(out.reply, "op") == "message") {
        const std::string room = member(out.reply, "room");
        const auto id = std::stoull(member(out.reply, "msg_id"));
        check(id == last_ids[room] + 1 || last_ids[room] == 0 || id == 1, "id == last_ids[room] + 1 || last_ids[room] == 0 || id == 1");  // a closed room restarts at 1
        last_ids[room] = id;
      }
      deliveries = std::move(out.deliveries);
    }
    for (const auto& d : deliveries) {
      check(d.frame && d.to && !d.to->empty(), "a delivery has a frame and recipients");
      check_frame(*d.frame);
      const std::string type = member(*d.frame, "type");
      if (type == "private_message") {
        const std::string to = member(*d.frame, "to");
        for (auto s : *d.to) check(user_of(s) == to, "user_of(s) == to");
        continue;
      }
      auto info = reg.info(member(*d.frame, "room"));
      check(info.has_value(), "info.has_value()");
      for (auto s : *d.to) {
        const bool in_room = std::find(info->members.begin(), info->members.end(), s) != info->members.end();
        check(type == "kicked" || type == "banned" ? !in_room : in_room, "type == \"kicked\" || type == \"banned\" ? !in_room : in_room");
      }
    }
    if (control == 0x7F) {
      reloaded = !reloaded;
      reg.set_config(reloaded ? smaller() : config());
    }
    if ((control & 0xE0) == 0x60) {  // after the deliveries were checked against the rooms
      now += std::chrono::seconds(line.empty() ? 1 : static_cast<unsigned char>(line[0]));
      (void)reg.sweep(now);
    }
    check(reg.room_count() <= cfg.max_rooms, "reg.room_count() <= cfg.max_rooms");
    for (std::string_view r : {"a", "b", "c", "d", "e"})
      if (auto info = reg.info(r)) {
        check(info->members.size() <= info->max_members && info->max_members <= cfg.max_members, "info->members.size() <= info->max_members && info->max_members <= cfg.max_members");
        check(info->history <= cfg.history && info->history <= info->last_id, "info->history <= cfg.history && info->history <= info->last_id");
      }
    for (rproxy::rooms::session_id s = 0; s < 10; ++s) check(reg.rooms_of(s).size() <= cfg.max_rooms_per_session, "reg.rooms_of(s).size() <= cfg.max_rooms_per_session");
  }
  return 0;
}
