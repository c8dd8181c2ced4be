// rproxy/rooms/bus_message.hpp: the cross-instance wire format. Round trips per kind, the
// message split a Redis script fills with the id (checked against the whole encoding), and
// hostile input: bad headers, names, numbers, frames, sizes.
#include <catch2/catch.hpp>

#include <string>

#include <rproxy/rooms/bus_message.hpp>
#include <rproxy/rooms/protocol.hpp>

namespace {
using rproxy::rooms::bus_error;
using rproxy::rooms::bus_event;
using rproxy::rooms::bus_kind;

rproxy::rooms::bus_limits limits() {
  rproxy::rooms::rooms_block cfg;
  return rproxy::rooms::bus_limits_for(cfg);
}

std::error_code error_of(std::string_view wire) {
  auto r = rproxy::rooms::decode_bus(wire, limits());
  REQUIRE_FALSE(r);
  return r.error();
}
}  // namespace

TEST_CASE("every kind round-trips", "[rooms]") {
  const std::string frame = R"({"type":"moderation","room":"lobby","action":"ban","user":"eve","by":"alice","seconds":60})";
  for (auto k : {bus_kind::message, bus_kind::event, bus_kind::kick, bus_kind::ban, bus_kind::unban, bus_kind::mute,
                 bus_kind::unmute, bus_kind::role, bus_kind::private_message}) {
    bus_event e;
    e.kind = k;
    e.origin = 0x0123456789abcdefull;
    e.id = k == bus_kind::message ? 42 : 0;
    e.num = k == bus_kind::role ? 3 : (k == bus_kind::ban || k == bus_kind::mute ? 1764921600000 : 0);
    const auto shape = rproxy::rooms::detail::shape_of(k);
    if (shape.room) e.room = "lobby";
    if (shape.user) e.user = "eve";
    if (shape.by) e.by = "alice";
    e.frame = frame;
    const std::string wire = rproxy::rooms::encode_bus(e);
    auto d = rproxy::rooms::decode_bus(wire, limits());
    INFO(wire);
    REQUIRE(d);
    CHECK(d->kind == k);
    CHECK(d->origin == e.origin);
    CHECK(d->id == e.id);
    CHECK(d->num == e.num);
    CHECK(d->room == e.room);
    CHECK(d->user == e.user);
    CHECK(d->by == e.by);
    CHECK(d->frame == frame);
  }
}

TEST_CASE("the header is what the format says, byte for byte", "[rooms]") {
  bus_event e;
  e.kind = bus_kind::ban;
  e.origin = 0xff;
  e.num = 1000;
  e.room = "r";
  e.user = "u";
  e.by = "b";
  e.frame = "{}";
  CHECK(rproxy::rooms::encode_bus(e) == "rr1 ban 00000000000000ff 0 1000\nr\nu\nb\n{}");
}

TEST_CASE("a message assembled around its id, as the Redis script does, is the same encoding", "[rooms]") {
  const auto p = rproxy::rooms::message_parts(0xabcdefull, "lobby");
  const std::string frame = R"({"type":"message","room":"lobby","msg_id":17,"text":"hi"})";
  const std::string by_script = p.head + "17" + p.middle + frame;
  bus_event e;
  e.kind = bus_kind::message;
  e.origin = 0xabcdefull;
  e.id = 17;
  e.room = "lobby";
  e.frame = frame;
  CHECK(by_script == rproxy::rooms::encode_bus(e));
  auto d = rproxy::rooms::decode_bus(by_script, limits());
  REQUIRE(d);
  CHECK(d->id == 17);
}

TEST_CASE("malformed headers are refused", "[rooms]") {
  const std::string tail = "\nlobby\n\n\n{}";
  for (std::string h : {"rr2 event 0000000000000001 0 0", "rr1 event 0000000000000001 0", "rr1 event 0000000000000001 0 0 0",
                        "rr1 event 000000000000001 0 0", "rr1 event 00000000000000010 0 0", "rr1 event 000000000000000G 0 0",
                        "rr1 event 000000000000000A 0 0", "rr1 event 0000000000000001 -1 0", "rr1 event 0000000000000001 01 0",
                        "rr1 event 0000000000000001 0 9007199254740992", "rr1 event 0000000000000001 0 99999999999999999",
                        "rr1 event 0000000000000001 0 +1", "rr1  event 0000000000000001 0 0", "rr1 event 0000000000000001 0 0 ",
                        "rr1 message 0000000000000001 0 0", "rr1 event 0000000000000001 5 0", "rr1 role 0000000000000001 0 5"}) {
    INFO(h);
    const auto k = h.find("role") != std::string::npos ? std::string("\nlobby\neve\n\n{}") : tail;
    CHECK(error_of(h + k) == bus_error::bad_header);
  }
  CHECK(error_of("rr1 fly 0000000000000001 0 0" + tail) == bus_error::unknown_kind);
  CHECK(error_of("rr1 event 0000000000000001 0 0") == bus_error::bad_header);                 // no lines
  CHECK(error_of("rr1 event 0000000000000001 0 0\nlobby\n\n") == bus_error::bad_header);      // by line cut
  CHECK(error_of(std::string(100, 'r') + "\nlobby\n\n\n{}") == bus_error::bad_header);        // a long header
}

TEST_CASE("names are checked as the rooms protocol checks them, and by kind", "[rooms]") {
  const std::string h = "rr1 kick 0000000000000001 0 0\n";
  CHECK(rproxy::rooms::decode_bus(h + "lobby\neve\nalice\n{}", limits()));
  CHECK(error_of(h + "\neve\nalice\n{}") == bus_error::bad_name);              // no room
  CHECK(error_of(h + "lobby\n\nalice\n{}") == bus_error::bad_name);            // no user
  CHECK(error_of(h + "lobby\neve\n\n{}") == bus_error::bad_name);              // no actor
  CHECK(error_of(h + "lob<by\neve\nalice\n{}") == bus_error::bad_name);        // HTML
  CHECK(error_of(h + "lobby\ne\x01ve\nalice\n{}") == bus_error::bad_name);     // control
  CHECK(error_of(h + "lobby\n eve\nalice\n{}") == bus_error::bad_name);        // space at the start
  CHECK(error_of(h + std::string(65, 'x') + "\neve\nalice\n{}") == bus_error::bad_name);  // over max_name_bytes
  CHECK(error_of(h + "lobby\n\xC3\x28\nalice\n{}") == bus_error::bad_name);    // bad UTF-8
  // a name where the kind takes none
  CHECK(error_of("rr1 event 0000000000000001 0 0\nlobby\neve\n\n{}") == bus_error::bad_name);
  CHECK(error_of("rr1 private 0000000000000001 0 0\nlobby\neve\n\n{}") == bus_error::bad_name);
  CHECK(rproxy::rooms::decode_bus("rr1 private 0000000000000001 0 0\n\neve\n\n{}", limits()));
}

TEST_CASE("frames must be one flat, HTML-safe JSON object within bounds", "[rooms]") {
  const std::string h = "rr1 event 0000000000000001 0 0\nlobby\n\n\n";
  CHECK(rproxy::rooms::decode_bus(h + R"({"type":"presence","members":2,"ok":true})", limits()));
  CHECK(error_of(h) == bus_error::bad_frame);
  CHECK(error_of(h + "[]") == bus_error::bad_frame);
  CHECK(error_of(h + R"({"a":{"b":1}})") == bus_error::bad_frame);
  CHECK(error_of(h + R"({"a":1,"a":2})") == bus_error::bad_frame);
  CHECK(error_of(h + R"({"a":"<script>"})") == bus_error::bad_frame);
  CHECK(error_of(h + R"({"a":1} x)") == bus_error::bad_frame);
  CHECK(error_of(h + "{\"a\":\"\xff\"}") == bus_error::bad_frame);
  const auto lim = limits();
  CHECK(error_of(h + "{\"a\":\"" + std::string(lim.max_frame_bytes, 'x') + "\"}") == bus_error::too_large);
  CHECK(error_of(std::string(lim.max_bytes + 1, 'x')) == bus_error::too_large);
  // a frame as large as the largest message text the rooms block allows, escaped 6 times, fits
  rproxy::rooms::rooms_block cfg;
  rproxy::rooms::json_out o;
  o.str("type", "message").str("room", std::string(cfg.max_name_bytes, 'r')).unum("msg_id", 1);
  o.str("from", std::string(cfg.max_name_bytes, 'u')).str("role", "member").str("text", std::string(cfg.max_message_bytes, '<'));
  const std::string big = std::move(o).done();
  bus_event e;
  e.kind = bus_kind::message;
  e.id = 1;
  const std::string room(cfg.max_name_bytes, 'r');
  e.room = room;
  e.frame = big;
  const std::string wire = rproxy::rooms::encode_bus(e);
  auto d = rproxy::rooms::decode_bus(wire, lim);
  if (!d) FAIL(d.error().message() << " frame " << big.size() << " of " << lim.max_frame_bytes);
}
