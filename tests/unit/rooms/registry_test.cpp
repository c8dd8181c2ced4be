// rproxy/rooms/registry.hpp: every operation of the rooms protocol against the registry, with a fixed
// clock: replies, deliveries (one shared frame, recipients = the room's members), roles,
// expiry of bans and mutes, history replay and since-id, limits.
#include "room_fixture.hpp"

#include <algorithm>
#include <string>

namespace {
using namespace ws_test;
using rproxy::rooms::role;

bool same_members(std::vector<session_id> a, std::vector<session_id> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}
}  // namespace

TEST_CASE("create makes the creator the owner and a member; the id is echoed", "[rooms]") {
  fixture f;
  auto out = f.ok(1, "alice", R"({"op":"create","id":"c1","room":"lobby","max_members":3})");
  CHECK(get(out.reply, "id") == "c1");
  CHECK(get(out.reply, "op") == "create");
  CHECK(get(out.reply, "role") == "owner");
  CHECK(get(out.reply, "max_members") == "3");
  CHECK(f.members("lobby") == std::vector<session_id>{1});
  CHECK(f.reg.info("lobby")->owner == "alice");
  CHECK(f.reg.owned_by("alice") == 1);
  CHECK(f.code(2, "bob", R"({"op":"create","id":42,"room":"lobby"})") == "exists");
  CHECK(get(f.send(2, "bob", R"({"op":"create","id":42,"room":"lobby"})").reply, "id") == "42");
  CHECK(f.code(2, "bob", R"({"op":"create","room":"big","max_members":6})") == "limit");
  CHECK(f.code(3, "gus", R"({"op":"create","room":"g"})", site_role::guest) == "forbidden");
}

TEST_CASE("join: presence to every member with one shared frame; leave", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"lobby"})");
  auto j = f.ok(2, "bob", R"({"op":"join","room":"lobby"})");
  CHECK(get(j.reply, "role") == "member");
  CHECK(get(j.reply, "members") == "2");
  REQUIRE(j.deliveries.size() == 1);
  CHECK(get(*j.deliveries[0].frame, "type") == "presence");
  CHECK(get(*j.deliveries[0].frame, "event") == "join");
  CHECK(get(*j.deliveries[0].frame, "user") == "bob");
  CHECK(same_members(*j.deliveries[0].to, {1, 2}));
  CHECK(f.code(2, "bob", R"({"op":"join","room":"lobby"})") == "already_member");
  CHECK(f.code(2, "bob", R"({"op":"join","room":"nowhere"})") == "not_found");

  auto l = f.ok(2, "bob", R"({"op":"leave","room":"lobby"})");
  REQUIRE(l.deliveries.size() == 1);
  CHECK(get(*l.deliveries[0].frame, "event") == "leave");
  CHECK(*l.deliveries[0].to == std::vector<session_id>{1});
  CHECK(f.code(2, "bob", R"({"op":"leave","room":"lobby"})") == "not_member");
  CHECK(f.reg.rooms_of(2).empty());
}

TEST_CASE("message: one frame shared by all members, ids monotonic, HTML escaped", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"lobby"})");
  f.ok(2, "bob", R"({"op":"join","room":"lobby"})");
  auto m1 = f.ok(1, "alice", R"({"op":"message","id":1,"room":"lobby","text":"<script>alert('x')</script> & co"})");
  CHECK(get(m1.reply, "msg_id") == "1");
  REQUIRE(m1.deliveries.size() == 1);
  const auto& frame = *m1.deliveries[0].frame;
  CHECK(same_members(*m1.deliveries[0].to, {1, 2}));
  CHECK(get(frame, "text") == "<script>alert('x')</script> & co");  // decoded: the text as sent
  CHECK(frame.find("\\u003cscript\\u003ealert(\\u0027x\\u0027)\\u003c/script\\u003e \\u0026 co") != std::string::npos);
  CHECK(get(frame, "from") == "alice");
  CHECK(get(frame, "role") == "owner");
  CHECK(get(frame, "ts"));
  auto m2 = f.ok(2, "bob", R"({"op":"message","room":"lobby","text":"line1\nline2\ttab"})");
  CHECK(get(m2.reply, "msg_id") == "2");
  CHECK(f.code(3, "carol", R"({"op":"message","room":"lobby","text":"hi"})") == "not_member");
  // The member snapshot is shared, not copied per message.
  auto m3 = f.ok(2, "bob", R"({"op":"message","room":"lobby","text":"again"})");
  CHECK(m3.deliveries[0].to == m2.deliveries[0].to);
}

TEST_CASE("history: the last N replayed on join (the same buffers); since-id; truncation", "[rooms]") {
  fixture f;  // history = 3
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  std::vector<rproxy::rooms::payload> sent;
  for (int i = 1; i <= 5; ++i) {
    auto o = f.ok(1, "alice", joined({R"({"op":"message","room":"r","text":"m)", num(i), R"("})"}));
    sent.push_back(o.deliveries[0].frame);
  }
  CHECK(f.reg.info("r")->history == 3);
  auto j = f.ok(2, "bob", R"({"op":"join","room":"r"})");
  CHECK(get(j.reply, "last_id") == "5");
  CHECK(get(j.reply, "first_id") == "3");
  REQUIRE(j.replay.size() == 3);
  for (int k = 0; k < 3; ++k) CHECK(j.replay[k] == sent[k + 2]);  // the very buffers, oldest first
  CHECK(get(*j.replay[0], "msg_id") == "3");

  auto h = f.ok(2, "bob", R"({"op":"history","room":"r","since":4})");
  REQUIRE(h.replay.size() == 1);
  CHECK(get(*h.replay[0], "msg_id") == "5");
  CHECK(get(h.reply, "truncated") == "false");
  CHECK(get(h.reply, "count") == "1");
  auto h2 = f.ok(2, "bob", R"({"op":"history","room":"r","since":1})");
  CHECK(h2.replay.size() == 3);
  CHECK(get(h2.reply, "truncated") == "true");  // message 2 is gone
  auto h3 = f.ok(2, "bob", R"({"op":"history","room":"r","since":5})");
  CHECK(h3.replay.empty());
  CHECK(get(h3.reply, "truncated") == "false");
  auto h4 = f.ok(2, "bob", R"({"op":"history","room":"r"})");
  CHECK(h4.replay.size() == 3);
  CHECK(f.code(3, "carol", R"({"op":"history","room":"r","since":0})") == "not_member");
}

TEST_CASE("history 0 keeps nothing; ids still count", "[rooms]") {
  fixture f;
  f.cfg.history = 0;
  rproxy::rooms::registry reg(f.cfg);
  (void)reg.handle({1, "a"}, R"({"op":"create","room":"r"})", f.now);
  auto m = reg.handle({1, "a"}, R"({"op":"message","room":"r","text":"x"})", f.now);
  CHECK(get(m.reply, "msg_id") == "1");
  CHECK(reg.info("r")->history == 0);
  auto h = reg.handle({1, "a"}, R"({"op":"history","room":"r","since":0})", f.now);
  CHECK(h.replay.empty());
  CHECK(get(h.reply, "truncated") == "true");
}

TEST_CASE("passwords: required, checked, weak ones refused, never echoed", "[rooms]") {
  fixture f;
  CHECK(f.code(1, "alice", R"({"op":"create","room":"p","password":"short"})") == "weak_password");
  auto c = f.ok(1, "alice", R"({"op":"create","room":"p","password":"s3cret-pw"})");
  CHECK(c.reply.find("s3cret") == std::string::npos);
  CHECK(f.code(2, "bob", R"({"op":"join","room":"p"})") == "wrong_password");
  auto bad = f.send(2, "bob", R"({"op":"join","room":"p","password":"s3cret-pX"})");
  CHECK(get(bad.reply, "code") == "wrong_password");
  CHECK(bad.reply.find("s3cret") == std::string::npos);
  f.ok(2, "bob", R"({"op":"join","room":"p","password":"s3cret-pw"})");
  auto l = f.ok(3, "carol", R"({"op":"list"})");
  CHECK(l.reply.find(R"("password":true)") != std::string::npos);
}

TEST_CASE("list: public rooms, private ones only to their members; paging", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"a-pub"})");
  f.ok(1, "alice", R"({"op":"create","room":"b-priv","private":true})");
  auto mine = f.ok(1, "alice", R"({"op":"list"})");
  CHECK(mine.reply.find("a-pub") != std::string::npos);
  CHECK(mine.reply.find("b-priv") != std::string::npos);
  auto other = f.ok(2, "bob", R"({"op":"list"})");
  CHECK(other.reply.find("a-pub") != std::string::npos);
  CHECK(other.reply.find("b-priv") == std::string::npos);
  CHECK(get(other.reply, "more") == "false");
  auto after = f.ok(1, "alice", R"({"op":"list","after":"a-pub"})");
  CHECK(after.reply.find("a-pub") == std::string::npos);
  CHECK(after.reply.find("b-priv") != std::string::npos);
  // members of a private room: not found for non-members; private rooms are joinable by name
  CHECK(f.code(2, "bob", R"({"op":"members","room":"b-priv"})") == "not_found");
  f.ok(2, "bob", R"({"op":"join","room":"b-priv"})");
  auto m = f.ok(2, "bob", R"({"op":"members","room":"b-priv"})");
  CHECK(m.reply.find(R"({"user":"alice","role":"owner","sessions":1,"muted":false})") != std::string::npos);
  CHECK(m.reply.find(R"({"user":"bob","role":"member","sessions":1,"muted":false})") != std::string::npos);
}

TEST_CASE("private messages go to every session of the user", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"list"})");
  f.ok(2, "bob", R"({"op":"list"})");
  f.ok(3, "bob", R"({"op":"list"})");
  auto p = f.ok(1, "alice", R"({"op":"private_message","id":"p","user":"bob","text":"psst <3"})");
  REQUIRE(p.deliveries.size() == 1);
  CHECK(same_members(*p.deliveries[0].to, {2, 3}));
  CHECK(get(*p.deliveries[0].frame, "from") == "alice");
  CHECK(get(*p.deliveries[0].frame, "text") == "psst <3");
  CHECK(f.code(1, "alice", R"({"op":"private_message","user":"nobody","text":"x"})") == "not_online");
  CHECK(f.code(4, "gus", R"({"op":"private_message","user":"bob","text":"x"})", site_role::guest) == "forbidden");
  (void)f.reg.disconnect(2, f.now);
  (void)f.reg.disconnect(3, f.now);
  CHECK(f.code(1, "alice", R"({"op":"private_message","user":"bob","text":"x"})") == "not_online");
}

TEST_CASE("max_members and rooms per session", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r","max_members":2})");
  f.ok(2, "bob", R"({"op":"join","room":"r"})");
  CHECK(f.code(3, "carol", R"({"op":"join","room":"r"})") == "full");
  CHECK(f.members("r").size() == 2);
  // rooms per session (4) and owned rooms per user (3)
  f.ok(1, "alice", R"({"op":"create","room":"r2"})");
  f.ok(1, "alice", R"({"op":"create","room":"r3"})");
  CHECK(f.code(1, "alice", R"({"op":"create","room":"r4"})") == "limit");  // owns 3
  f.ok(2, "bob", R"({"op":"create","room":"b1"})");
  f.ok(2, "bob", R"({"op":"join","room":"r2"})");
  f.ok(2, "bob", R"({"op":"join","room":"r3"})");
  CHECK(f.code(2, "bob", R"({"op":"create","room":"b2"})") == "limit");  // in 4 rooms
  CHECK(f.code(5, "eve", R"({"op":"join","room":"r"})") == "full");
}

TEST_CASE("rooms in total are bounded; empty rooms close after the ttl", "[rooms]") {
  fixture f;  // max_rooms 8, 3 owned per user
  for (int u = 0; u < 3; ++u)
    for (int r = 0; r < 3; ++r) {
      const std::string name = joined({"r", num(u), num(r)});
      auto out = f.send(10 + u, joined({"u", num(u)}), joined({R"({"op":"create","room":")", name, R"("})"}));
      CHECK(out.ok == (u * 3 + r < 8));
      if (!out.ok) CHECK(get(out.reply, "code") == "limit");
    }
  CHECK(f.reg.room_count() == 8);
  f.ok(10, "u0", R"({"op":"leave","room":"r00"})");
  CHECK(f.reg.sweep(f.now + 59s) == 0);
  CHECK(f.reg.sweep(f.now + 60s) == 1);
  CHECK(f.reg.room_count() == 7);
  CHECK(f.reg.owned_by("u0") == 2);
  CHECK(f.code(11, "u1", R"({"op":"join","room":"r00"})") == "not_found");
  // a room someone rejoined before the ttl stays
  f.ok(11, "u1", R"({"op":"leave","room":"r10"})");
  f.now += 30s;
  f.ok(11, "u1", R"({"op":"join","room":"r10"})");
  CHECK(f.reg.sweep(f.now + 120s) == 0);
}

TEST_CASE("disconnect leaves every room with presence; ownership stays", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"a"})");
  f.ok(1, "alice", R"({"op":"create","room":"b"})");
  f.ok(2, "bob", R"({"op":"join","room":"a"})");
  auto d = f.reg.disconnect(1, f.now);
  REQUIRE(d.size() == 1);  // room b is empty now: nobody to tell
  CHECK(get(*d[0].frame, "event") == "leave");
  CHECK(*d[0].to == std::vector<session_id>{2});
  CHECK(f.members("b").empty());
  CHECK(f.reg.info("a")->owner == "alice");
  CHECK(f.reg.disconnect(1, f.now).empty());
  // alice comes back on a new session and is still the owner
  auto j = f.ok(7, "alice", R"({"op":"join","room":"a"})");
  CHECK(get(j.reply, "role") == "owner");
}

TEST_CASE("the owner leaving hands the room to the highest-ranked member, earliest first", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  f.ok(2, "gus", R"({"op":"join","room":"r"})", site_role::guest);
  f.ok(3, "bob", R"({"op":"join","room":"r"})");
  f.ok(4, "carol", R"({"op":"join","room":"r"})");
  f.ok(5, "dave", R"({"op":"join","room":"r"})");
  f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"dave","role":"moderator"})");
  auto l = f.ok(1, "alice", R"({"op":"leave","room":"r"})");
  REQUIRE(l.deliveries.size() == 2);
  CHECK(get(*l.deliveries[1].frame, "type") == "role");
  CHECK(get(*l.deliveries[1].frame, "user") == "dave");
  CHECK(get(*l.deliveries[1].frame, "role") == "owner");
  CHECK(f.reg.info("r")->owner == "dave");
  CHECK(f.reg.owned_by("dave") == 1);
  CHECK(f.reg.owned_by("alice") == 0);
  f.ok(5, "dave", R"({"op":"leave","room":"r"})");
  CHECK(f.reg.info("r")->owner == "bob");  // bob joined before carol; the guest never owns
  // only a guest left: the owner keeps the room
  f.ok(3, "bob", R"({"op":"leave","room":"r"})");
  f.ok(4, "carol", R"({"op":"leave","room":"r"})");
  CHECK(f.reg.info("r")->owner == "carol");
}

TEST_CASE("kick removes every session of the user; the room is told", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  f.ok(2, "bob", R"({"op":"join","room":"r"})");
  f.ok(3, "bob", R"({"op":"join","room":"r"})");
  f.ok(4, "carol", R"({"op":"join","room":"r"})");
  auto k = f.ok(1, "alice", R"({"op":"kick","room":"r","user":"bob"})");
  REQUIRE(k.deliveries.size() == 2);
  CHECK(get(*k.deliveries[0].frame, "type") == "kicked");
  CHECK(same_members(*k.deliveries[0].to, {2, 3}));
  CHECK(get(*k.deliveries[1].frame, "type") == "moderation");
  CHECK(get(*k.deliveries[1].frame, "action") == "kick");
  CHECK(same_members(*k.deliveries[1].to, {1, 4}));
  CHECK(same_members(f.members("r"), {1, 4}));
  CHECK(f.reg.rooms_of(2).empty());
  f.ok(2, "bob", R"({"op":"join","room":"r"})");  // a kick is not a ban
  CHECK(f.code(1, "alice", R"({"op":"kick","room":"r","user":"zed"})") == "not_member");
  CHECK(f.code(9, "zed", R"({"op":"kick","room":"r","user":"bob"})") == "not_member");
}

TEST_CASE("ban with a duration: kicked, refused until it expires; unban", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  f.ok(2, "bob", R"({"op":"join","room":"r"})");
  auto b = f.ok(1, "alice", R"({"op":"ban","room":"r","user":"bob","seconds":10})");
  REQUIRE(b.deliveries.size() == 2);
  CHECK(get(*b.deliveries[0].frame, "type") == "banned");
  CHECK(get(*b.deliveries[0].frame, "seconds") == "10");
  CHECK(f.members("r") == std::vector<session_id>{1});
  CHECK(f.code(2, "bob", R"({"op":"join","room":"r"})") == "banned");
  CHECK(f.code(5, "bob", R"({"op":"join","room":"r"})") == "banned");  // the user, not the session
  f.now += 9s;
  auto still = f.send(2, "bob", R"({"op":"join","room":"r"})");
  CHECK(get(still.reply, "code") == "banned");
  CHECK(get(still.reply, "error")->find("1 more seconds") != std::string::npos);
  f.now += 1s;
  f.ok(2, "bob", R"({"op":"join","room":"r"})");  // expired
  // a ban of an absent user; unban
  f.ok(1, "alice", R"({"op":"ban","room":"r","user":"carol"})");  // no duration: max_sanction
  CHECK(f.code(3, "carol", R"({"op":"join","room":"r"})") == "banned");
  f.now += 3599s;
  CHECK(f.code(3, "carol", R"({"op":"join","room":"r"})") == "banned");
  f.ok(1, "alice", R"({"op":"unban","room":"r","user":"carol"})");
  f.ok(3, "carol", R"({"op":"join","room":"r"})");
  CHECK(f.code(1, "alice", R"({"op":"unban","room":"r","user":"carol"})") == "not_found");
  CHECK(f.code(1, "alice", R"({"op":"ban","room":"r","user":"dan","seconds":3601})") == "limit");
}

TEST_CASE("mute with a duration; unmute", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  f.ok(2, "bob", R"({"op":"join","room":"r"})");
  CHECK(f.code(1, "alice", R"({"op":"mute","room":"r","user":"bob"})") == "bad_request");  // seconds required
  auto m = f.ok(1, "alice", R"({"op":"mute","room":"r","user":"bob","seconds":5})");
  CHECK(get(*m.deliveries[0].frame, "action") == "mute");
  CHECK(same_members(*m.deliveries[0].to, {1, 2}));
  CHECK(f.code(2, "bob", R"({"op":"message","room":"r","text":"hi"})") == "muted");
  CHECK(f.ok(1, "alice", R"({"op":"members","room":"r"})").reply.find(R"("user":"bob","role":"member","sessions":1,"muted":true)") !=
        std::string::npos);
  f.now += 5s;
  f.ok(2, "bob", R"({"op":"message","room":"r","text":"hi"})");
  f.ok(1, "alice", R"({"op":"mute","room":"r","user":"bob","seconds":100})");
  f.ok(1, "alice", R"({"op":"unmute","room":"r","user":"bob"})");
  f.ok(2, "bob", R"({"op":"message","room":"r","text":"back"})");
  CHECK(f.code(1, "alice", R"({"op":"unmute","room":"r","user":"bob"})") == "not_found");
}

TEST_CASE("sanction and role lists are bounded; expired entries make room", "[rooms]") {
  fixture f;  // 4 sanctions, 4 roles per room
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  for (int i = 0; i < 4; ++i) f.ok(1, "alice", joined({R"({"op":"ban","room":"r","user":"x)", num(i), R"(","seconds":10})"}));
  CHECK(f.code(1, "alice", R"({"op":"mute","room":"r","user":"y","seconds":10})") == "limit");
  f.ok(1, "alice", R"({"op":"ban","room":"r","user":"x0","seconds":20})");  // renewing is fine
  f.now += 10s;
  f.ok(1, "alice", R"({"op":"mute","room":"r","user":"y","seconds":10})");
  // roles: the owner holds one entry
  for (int i = 0; i < 3; ++i) f.ok(1, "alice", joined({R"({"op":"set_role","room":"r","user":"m)", num(i), R"(","role":"moderator"})"}));
  CHECK(f.code(1, "alice", R"({"op":"set_role","room":"r","user":"m9","role":"moderator"})") == "limit");
  f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"m0","role":"member"})");  // frees one
  f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"m9","role":"moderator"})");
}

TEST_CASE("set_role: promotion, demotion, ownership hand-over", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  f.ok(2, "bob", R"({"op":"join","room":"r"})");
  f.ok(3, "carol", R"({"op":"join","room":"r"})");
  auto s = f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"bob","role":"admin"})");
  CHECK(get(*s.deliveries[0].frame, "role") == "admin");
  CHECK(f.code(2, "bob", R"({"op":"set_role","room":"r","user":"carol","role":"admin"})") == "forbidden");
  f.ok(2, "bob", R"({"op":"set_role","room":"r","user":"carol","role":"moderator"})");
  CHECK(f.code(2, "bob", R"({"op":"set_role","room":"r","user":"alice","role":"member"})") == "forbidden");
  CHECK(f.code(2, "bob", R"({"op":"set_role","room":"r","user":"carol","role":"owner"})") == "forbidden");
  auto t = f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"carol","role":"owner"})");
  REQUIRE(t.deliveries.size() == 2);
  CHECK(get(*t.deliveries[0].frame, "user") == "alice");
  CHECK(get(*t.deliveries[0].frame, "role") == "admin");
  CHECK(get(*t.deliveries[1].frame, "user") == "carol");
  CHECK(get(*t.deliveries[1].frame, "role") == "owner");
  CHECK(f.reg.info("r")->owner == "carol");
  CHECK(f.reg.owned_by("carol") == 1);
  CHECK(f.reg.owned_by("alice") == 0);
  // alice is an admin now: she cannot act on bob (admin) any more
  CHECK(f.code(1, "alice", R"({"op":"kick","room":"r","user":"bob"})") == "forbidden");
  f.ok(3, "carol", R"({"op":"kick","room":"r","user":"bob"})");
  // a guest account cannot be promoted
  f.ok(4, "gus", R"({"op":"join","room":"r"})", site_role::guest);
  CHECK(f.code(3, "carol", R"({"op":"set_role","room":"r","user":"gus","role":"member"})") == "forbidden");
}

TEST_CASE("site roles from the JWT claim combine with room roles", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");
  auto j = f.ok(2, "sam", R"({"op":"join","room":"r"})", site_role::admin);
  CHECK(get(j.reply, "role") == "admin");
  f.ok(3, "bob", R"({"op":"join","room":"r"})");
  f.ok(2, "sam", R"({"op":"ban","room":"r","user":"bob","seconds":5})", site_role::admin);
  CHECK(f.code(2, "sam", R"({"op":"kick","room":"r","user":"alice"})", site_role::admin) == "forbidden");
  CHECK(rproxy::rooms::site_role_from_claim("admin") == site_role::admin);
  CHECK(rproxy::rooms::site_role_from_claim("owner") == site_role::admin);
  CHECK(rproxy::rooms::site_role_from_claim("moderator") == site_role::moderator);
  CHECK(rproxy::rooms::site_role_from_claim("guest") == site_role::guest);
  CHECK(rproxy::rooms::site_role_from_claim("anything") == site_role::member);
}

TEST_CASE("permission matrix: every actor role against every target role", "[rooms]") {
  using rproxy::rooms::action;
  const role all[] = {role::guest, role::member, role::moderator, role::admin, role::owner};
  for (role a : all)
    for (role t : all) {
      INFO(rproxy::rooms::role_name(a) << " on " << rproxy::rooms::role_name(t));
      CHECK(rproxy::rooms::may_act(a, action::kick, t) == (a >= role::moderator && t < a));
      CHECK(rproxy::rooms::may_act(a, action::mute, t) == (a >= role::moderator && t < a));
      CHECK(rproxy::rooms::may_act(a, action::ban, t) == (a >= role::admin && t < a));
      for (role to : all)
        CHECK(rproxy::rooms::may_set_role(a, t, to) ==
              (a >= role::admin && t < a && (to == role::owner ? a == role::owner : to < a)));
    }
}

TEST_CASE("permission matrix through the registry: kick, mute and ban by each room role", "[rooms]") {
  // Roles in the room: owner alice, admin ann, moderator mo, member mem, guest gus.
  const std::vector<std::pair<std::string, site_role>> people = {
      {"alice", site_role::member}, {"ann", site_role::member}, {"mo", site_role::member},
      {"mem", site_role::member}, {"gus", site_role::guest}};
  const auto rank = [](const std::string& u) {
    return u == "alice" ? 4 : u == "ann" ? 3 : u == "mo" ? 2 : u == "mem" ? 1 : 0;
  };
  for (std::string act : {"kick", "mute", "ban"})
    for (std::size_t a = 0; a < people.size(); ++a)
      for (std::size_t t = 0; t < people.size(); ++t) {
        fixture f;
        f.ok(1, "alice", R"({"op":"create","room":"r"})");
        for (std::size_t i = 1; i < people.size(); ++i)
          f.ok(1 + i, people[i].first, R"({"op":"join","room":"r"})", people[i].second);
        f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"ann","role":"admin"})");
        f.ok(1, "alice", R"({"op":"set_role","room":"r","user":"mo","role":"moderator"})");
        const auto& [actor, site] = people[a];
        const std::string target = people[t].first;
        const int need = act == "ban" ? 3 : 2;
        const bool allowed = rank(actor) >= need && rank(target) < rank(actor);
        auto out = f.send(1 + a, actor, R"({"op":")" + act + R"(","room":"r","user":")" + target + (act == "kick" ? R"("})" : R"(","seconds":5})"),
                          site);
        INFO(actor << " " << act << " " << target << ": " << out.reply);
        CHECK(out.ok == allowed);
        if (!allowed) CHECK(get(out.reply, "code") == "forbidden");
      }
}

TEST_CASE("set_config: new limits apply to the next operation, rooms made before included", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"r"})");  // max_members 5 (the server's)
  f.ok(2, "bob", R"({"op":"join","room":"r"})");
  auto next = small_config();
  next.max_members = 2;
  next.max_message_bytes = 4;
  f.reg.set_config(next);
  CHECK(f.reg.config().max_members == 2);
  CHECK(f.reg.limits().versions() == 2);
  CHECK(f.code(3, "carol", R"({"op":"join","room":"r"})") == "full");             // the room's own 5, capped by 2
  CHECK(f.code(3, "carol", R"({"op":"create","room":"c","max_members":3})") == "limit");
  CHECK(f.code(1, "alice", R"({"op":"message","room":"r","text":"hello"})") == "too_long");
  f.ok(1, "alice", R"({"op":"message","room":"r","text":"hi"})");
  f.reg.set_config(small_config());  // back: the room takes 5 again
  f.ok(3, "carol", R"({"op":"join","room":"r"})");
}

// --- cluster mirror: two registries stand for two instances; the test plays Redis ------------

namespace {
using rproxy::rooms::registry;

rproxy::rooms::request parsed(std::string_view text) {
  rproxy::rooms::request r;
  REQUIRE_FALSE(rproxy::rooms::parse_request(text, small_config(), r));
  return r;
}

registry::shared_room lobby_state(std::uint64_t last_id = 0) {
  registry::shared_room s;
  s.owner = "alice";
  s.max_members = 5;
  s.last_id = last_id;
  return s;
}
}  // namespace

TEST_CASE("cluster: a drafted message is byte for byte what message() writes", "[rooms]") {
  fixture a, b;
  a.ok(1, "alice", R"({"op":"create","room":"lobby"})");
  b.ok(1, "alice", R"({"op":"create","room":"lobby"})");
  const auto req = parsed(R"({"op":"message","id":4,"room":"lobby","text":"hi <b>all</b> & 'you'"})");
  auto d = a.reg.draft_message({1, "alice", site_role::member}, req, a.now);
  REQUIRE(d.ok);
  CHECK(d.last_id == 0);
  auto out = b.ok(1, "alice", R"({"op":"message","id":4,"room":"lobby","text":"hi <b>all</b> & 'you'"})");
  CHECK(d.head + "1" + d.tail == *out.deliveries.at(0).frame);
  CHECK(registry::message_reply(req, 1) == out.reply);
  // refusals as message() gives them
  CHECK_FALSE(a.reg.draft_message({2, "bob", site_role::member}, req, a.now).ok);
  CHECK(get(a.reg.draft_message({2, "bob", site_role::member}, req, a.now).refusal.reply, "code") == "not_member");
}

TEST_CASE("cluster: numbered messages are kept once, in id order, and delivered to local members", "[rooms]") {
  fixture f;
  CHECK_FALSE(f.reg.apply_message("lobby", 1, rproxy::rooms::detail::share("{}")));  // not here: nothing
  REQUIRE(f.reg.adopt("lobby", lobby_state(), f.now));
  f.ok(2, "bob", R"({"op":"join","room":"lobby"})");
  CHECK(f.reg.local_members("lobby") == 1);
  auto frame = [](int i) { return rproxy::rooms::detail::share(joined({R"({"type":"message","msg_id":)", num(i), "}"})); };
  auto d1 = f.reg.apply_message("lobby", 1, frame(1));
  REQUIRE(d1);
  CHECK(*d1->to == std::vector<session_id>{2});
  CHECK_FALSE(f.reg.apply_message("lobby", 1, frame(1)));  // the same id again (bus and history load): dropped
  REQUIRE(f.reg.apply_message("lobby", 2, frame(2)));
  REQUIRE(f.reg.apply_message("lobby", 3, frame(3)));
  CHECK_FALSE(f.reg.apply_message("lobby", 2, frame(2)));  // older than the newest: dropped
  CHECK(f.reg.info("lobby")->last_id == 3);
  // history since 1: ids 2 and 3, in order, the frames as they came
  auto h = f.ok(2, "bob", R"({"op":"history","room":"lobby","since":1})");
  REQUIRE(h.replay.size() == 2);
  CHECK(get(*h.replay[0], "msg_id") == "2");
  CHECK(get(*h.replay[1], "msg_id") == "3");
  // ids keep counting above what Redis gave when this instance numbers one itself (Redis down)
  auto own = f.ok(2, "bob", R"({"op":"message","room":"lobby","text":"local"})");
  CHECK(get(own.reply, "msg_id") == "4");
}

TEST_CASE("cluster: adopt takes Redis' state; history merges by id within the bound", "[rooms]") {
  fixture f;  // history: 3
  auto s = lobby_state(7);
  s.roles = {{"mod", rproxy::rooms::role::moderator}};
  s.bans = {{"eve", f.now + 60s}, {"old", f.now - 1s}};
  s.mutes = {{"mallory", f.now + 60s}};
  for (int i : {5, 6, 7}) s.history.emplace_back(i, rproxy::rooms::detail::share(joined({R"({"msg_id":)", num(i), "}"})));
  REQUIRE(f.reg.adopt("lobby", s, f.now));
  CHECK(f.code(3, "eve", R"({"op":"join","room":"lobby"})") == "banned");
  f.ok(3, "old", R"({"op":"join","room":"lobby"})");  // an expired ban is not loaded
  auto j = f.ok(4, "mallory", R"({"op":"join","room":"lobby"})");
  CHECK(get(j.reply, "last_id") == "7");
  CHECK(get(j.reply, "first_id") == "5");
  CHECK(get(j.reply, "muted_seconds") == "60");
  REQUIRE(j.replay.size() == 3);
  CHECK(get(*j.replay[0], "msg_id") == "5");
  f.ok(5, "mod", R"({"op":"join","room":"lobby"})");
  CHECK(get(f.ok(5, "mod", R"({"op":"members","room":"lobby"})").reply, "members")->find(R"("user":"mod","role":"moderator")") !=
        std::string::npos);
  // a later load with newer messages (the bus brought 8 meanwhile): merged, no duplicates, newest 3 kept
  REQUIRE(f.reg.apply_message("lobby", 8, rproxy::rooms::detail::share(R"({"msg_id":8})")));
  auto later = lobby_state(9);
  for (int i : {7, 8, 9}) later.history.emplace_back(i, rproxy::rooms::detail::share(joined({R"({"msg_id":)", num(i), "}"})));
  REQUIRE(f.reg.adopt("lobby", later, f.now));
  auto h = f.ok(4, "mallory", R"({"op":"history","room":"lobby"})");
  REQUIRE(h.replay.size() == 3);
  CHECK(get(*h.replay[0], "msg_id") == "7");
  CHECK(get(*h.replay[2], "msg_id") == "9");
  CHECK_FALSE(f.reg.apply_message("lobby", 9, rproxy::rooms::detail::share(R"({"msg_id":9})")));
}

TEST_CASE("cluster: a ban from another instance removes the user's local sessions and holds", "[rooms]") {
  fixture f;
  REQUIRE(f.reg.adopt("lobby", lobby_state(), f.now));
  f.ok(2, "eve", R"({"op":"join","room":"lobby"})");
  f.ok(3, "eve", R"({"op":"join","room":"lobby"})");
  f.ok(4, "bob", R"({"op":"join","room":"lobby"})");
  auto out = f.reg.apply_sanction(registry::sanction::ban, "lobby", "eve", "alice", f.now + 30s,
                                  rproxy::rooms::detail::share(R"({"type":"moderation"})"), f.now);
  REQUIRE(out.size() == 2);
  CHECK(get(*out[0].frame, "type") == "banned");
  CHECK(get(*out[0].frame, "seconds") == "30");
  CHECK(*out[0].to == std::vector<session_id>{2, 3});
  CHECK(*out[1].to == std::vector<session_id>{4});
  CHECK(f.members("lobby") == std::vector<session_id>{4});
  CHECK(f.reg.rooms_of(2).empty());
  CHECK(f.code(2, "eve", R"({"op":"join","room":"lobby"})") == "banned");
  (void)f.reg.apply_sanction(registry::sanction::unban, "lobby", "eve", "", {}, rproxy::rooms::detail::share("{}"), f.now);
  f.ok(2, "eve", R"({"op":"join","room":"lobby"})");
  (void)f.reg.apply_sanction(registry::sanction::mute, "lobby", "eve", "", f.now + 5s, rproxy::rooms::detail::share("{}"), f.now);
  CHECK(f.code(2, "eve", R"({"op":"message","room":"lobby","text":"x"})") == "muted");
  auto kick = f.reg.apply_sanction(registry::sanction::kick, "lobby", "eve", "alice", {}, rproxy::rooms::detail::share("{}"), f.now);
  CHECK(get(*kick.at(0).frame, "type") == "kicked");
  CHECK(f.members("lobby") == std::vector<session_id>{4});
}

TEST_CASE("cluster: roles and private messages from another instance", "[rooms]") {
  fixture f;
  REQUIRE(f.reg.adopt("lobby", lobby_state(), f.now));
  f.ok(2, "bob", R"({"op":"join","room":"lobby"})");
  REQUIRE(f.reg.apply_role("lobby", "bob", rproxy::rooms::role::admin, rproxy::rooms::detail::share("{}")));
  f.ok(2, "bob", R"({"op":"ban","room":"lobby","user":"carol","seconds":10})");  // an admin may ban now
  REQUIRE(f.reg.apply_role("lobby", "bob", rproxy::rooms::role::owner, rproxy::rooms::detail::share("{}")));
  CHECK(f.reg.info("lobby")->owner == "bob");
  auto pm = f.reg.apply_private("bob", rproxy::rooms::detail::share("{}"));
  REQUIRE(pm);
  CHECK(*pm->to == std::vector<session_id>{2});
  CHECK_FALSE(f.reg.apply_private("nobody", rproxy::rooms::detail::share("{}")));
  CHECK(f.reg.is_local_user("bob"));
  CHECK(f.reg.local_users() == std::vector<std::string>{"bob"});
  auto rooms = f.reg.local_rooms();
  REQUIRE(rooms.size() == 1);
  CHECK(rooms[0].first == "lobby");
  f.reg.disconnect(2, f.now);
  CHECK(f.reg.local_members("lobby") == 0);
  CHECK(f.reg.local_rooms().empty());
}

TEST_CASE("cluster: a room re-made elsewhere with other settings replaces an empty local copy", "[rooms]") {
  fixture f;
  REQUIRE(f.reg.adopt("lobby", lobby_state(), f.now));
  auto other = lobby_state();
  other.is_private = true;
  other.max_members = 2;
  REQUIRE(f.reg.adopt("lobby", other, f.now));
  CHECK(f.reg.info("lobby")->is_private);
  CHECK(f.reg.info("lobby")->max_members == 2);
}

TEST_CASE("cluster: a kick of a user present only on another instance is checked and announced", "[rooms]") {
  fixture f;
  f.ok(1, "alice", R"({"op":"create","room":"lobby"})");
  f.ok(2, "bob", R"({"op":"join","room":"lobby"})");
  CHECK_FALSE(f.reg.is_local_member("lobby", "kim"));
  CHECK(f.reg.is_local_member("lobby", "bob"));
  auto out = f.reg.kick_elsewhere({1, "alice", site_role::member}, parsed(R"({"op":"kick","room":"lobby","user":"kim"})"), f.now);
  REQUIRE(out.ok);
  REQUIRE(out.deliveries.size() == 1);  // the room's moderation event; nobody leaves here
  CHECK(get(*out.deliveries[0].frame, "action") == "kick");
  CHECK(f.members("lobby").size() == 2);
  // the permission table still holds: a member cannot kick
  auto no = f.reg.kick_elsewhere({2, "bob", site_role::member}, parsed(R"({"op":"kick","room":"lobby","user":"kim"})"), f.now);
  CHECK(get(no.reply, "code") == "forbidden");
}
