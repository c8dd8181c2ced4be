// rproxy/rooms/cluster.hpp: the bridge over a scripted link that plays Redis (the commands are
// recorded; the test answers them). A session's requests run one at a time in order while one
// waits on Redis; a room is subscribed on its first local member and unsubscribed on the last;
// bus messages are applied once, in id order, held while the room catches up on its stream;
// a failed command or a link that is down runs the request locally; refused bus messages are
// counted, not applied. The real Redis is in tests/e2e/ws_cluster_test.py.
#include <catch2/catch.hpp>

#include <rproxy/rooms/cluster.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace rooms = rproxy::rooms;
using namespace std::chrono_literals;

/// Redis replies, built.
using rproxy::cluster::reply;
struct R {
  static reply integer(long long v) {
    reply r;
    r.type = reply::kind::integer;
    r.integer = v;
    return r;
  }
  static reply string(std::string v) {
    reply r;
    r.type = reply::kind::string;
    r.str = std::move(v);
    return r;
  }
  static reply array(std::vector<reply> v) {
    reply r;
    r.type = reply::kind::array;
    r.elements = std::move(v);
    return r;
  }
};

struct fake_link {
  using handler = std::function<void(std::error_code, const reply&)>;
  struct sent {
    std::vector<std::string> args;
    handler done;
  };
  std::deque<sent> commands;
  std::vector<std::string> subscribed, unsubscribed;
  bool is_up = true;
  std::function<void(std::string_view)> confirm;  ///< Redis' answer to SUBSCRIBE (at once)

  template <class H>
  void command(std::size_t, std::vector<std::string> args, H h) { commands.push_back({std::move(args), std::move(h)}); }
  /// Recorded as Redis gets it: EVALSHA sha nkeys keys... args... (the body is never sent).
  template <class H>
  void eval(std::size_t, const rproxy::cluster::lua_script& s, std::size_t nkeys, std::vector<std::string> words, H h) {
    std::vector<std::string> args{"EVALSHA", s.sha, std::to_string(nkeys)};
    args.insert(args.end(), words.begin(), words.end());
    commands.push_back({std::move(args), std::move(h)});
  }
  bool up() const { return is_up; }
  template <class F>
  void post0(F f) { f(); }
  template <class F>
  void post(std::size_t, F f) { f(); }
  void subscribe(std::string ch) {
    subscribed.push_back(ch);
    if (confirm) confirm(ch);
  }
  void unsubscribe(std::string ch) { unsubscribed.push_back(std::move(ch)); }

  /// Takes the oldest command; requires its first word.
  sent take(std::string_view first) {
    if (first != "XREVRANGE") settle();
    REQUIRE_FALSE(commands.empty());
    auto c = std::move(commands.front());
    commands.pop_front();
    INFO(c.args[0] << " " << (c.args.size() > 3 ? c.args[3] : ""));
    REQUIRE(c.args[0] == first);
    return c;
  }
  /// Answers the stream reads of a catch-up (an empty stream) until none is left in front.
  void settle() {
    while (!commands.empty() && commands.front().args[0] == "XREVRANGE") {
      auto c = std::move(commands.front());
      commands.pop_front();
      c.done({}, R::array({}));
    }
  }
  /// Drops the fire-and-forget commands (PUBLISH, HSET, ZREM ...) up to the next EVALSHA; returns them.
  std::vector<sent> skip_writes() {
    std::vector<sent> out;
    while (!commands.empty() && commands.front().args[0] != "EVALSHA" && commands.front().args[0] != "XREVRANGE") {
      out.push_back(std::move(commands.front()));
      commands.pop_front();
    }
    return out;
  }
};

rooms::rooms_block config() {
  rooms::rooms_block c;
  c.history = 5;
  c.password.iterations = 1000;
  return c;
}

struct bench {
  asio::io_context ioc;
  rooms::registry reg{config()};
  rproxy::flow::ws_hub hub{{ioc.get_executor()}};
  fake_link link;
  rooms::basic_cluster<fake_link> bridge{reg, hub, link, rooms::cluster_options{}, nullptr};
  bench() {
    link.confirm = [this](std::string_view ch) { bridge.on_subscribed(ch); };
  }
  std::vector<std::unique_ptr<rproxy::flow::ws_connection>> conns;
  rproxy::flow::ws_send_limits lim{};

  /// A connection on worker 0 (never written: its queue counts what it was sent).
  std::pair<rooms::session_id, rproxy::flow::ws_connection*> connect() {
    conns.push_back(std::make_unique<rproxy::flow::ws_connection>(lim));
    return {hub.attach(0, *conns.back()), conns.back().get()};
  }
  rooms::request req(std::string_view text) {
    rooms::request r;
    REQUIRE_FALSE(rooms::parse_request(text, reg.config(), r));
    return r;
  }
  void handle(rooms::session_id s, std::string_view user, std::string_view text) {
    REQUIRE(bridge.handle(0, {s, user, rooms::site_role::member}, req(text)));
  }
  ~bench() {
    for (auto& c : conns) hub.detach(c->id());
  }
};

std::string wire_message(std::uint64_t origin, std::string_view room, std::uint64_t id, std::string_view text) {
  rooms::json_out f;
  f.str("type", "message").str("room", room).unum("msg_id", id).str("from", "x").str("text", text);
  const std::string frame = std::move(f).done();
  rooms::bus_event e;
  e.kind = rooms::bus_kind::message;
  e.origin = origin;
  e.id = id;
  e.room = room;
  e.frame = frame;
  return rooms::encode_bus(e);
}

/// The join script's answer for a room with no history.
reply joined_state(std::string_view owner) {
  return R::array({R::integer(1),
                   R::array({R::string("owner"), R::string(std::string(owner)), R::string("private"), R::string("0"),
                             R::string("max_members"), R::string("100"), R::string("password"), R::string("")}),
                   R::array({R::string(std::string(owner)), R::string("4")}), R::array({}), R::array({}), R::string("0"),
                   R::array({})});
}

}  // namespace

TEST_CASE("cluster: create claims the name, join adopts Redis' state, the room is subscribed once", "[rooms]") {
  bench b;
  auto [alice, ca] = b.connect();
  b.handle(alice, "alice", R"({"op":"create","id":1,"room":"lobby"})");
  // the session's first request waits for its user's channel; the create for the room's
  CHECK(b.link.subscribed == std::vector<std::string>{"rproxy:{users:alice}", "rproxy:{rooms:lobby}"});
  CHECK(b.link.take("XREVRANGE").args[1] == "rproxy:{rooms:lobby}:hist");  // subscribed: the stream's tail is read
  auto create = b.link.take("EVALSHA");
  CHECK(create.args[1] == rooms::cluster_scripts::create().sha);  // the script by its SHA1, never its text
  CHECK(create.args[2] == "7");
  CHECK(create.args[3] == "rproxy:{rooms:lobby}:meta");
  CHECK(create.args[9] == "rproxy:{rooms:lobby}:presence");
  CHECK(create.args[10] == "alice");
  CHECK_FALSE(b.reg.info("lobby"));  // nothing made before Redis says the name is free
  create.done({}, R::integer(1));
  CHECK(b.reg.info("lobby"));
  CHECK(ca->queued() == 1);  // the reply

  auto [bob, cb] = b.connect();
  b.handle(bob, "bob", R"({"op":"join","room":"lobby"})");
  auto join = b.link.take("EVALSHA");
  CHECK(join.args[10] == "bob");
  join.done({}, joined_state("alice"));
  CHECK(b.reg.info("lobby")->members.size() == 2);
  CHECK(cb->queued() == 2);  // the reply, the presence event
  CHECK(ca->queued() == 2);  // create's reply, bob's presence
  auto writes = b.link.skip_writes();
  REQUIRE(writes.size() == 1);  // the presence, published for the other instances
  CHECK(writes[0].args[0] == "PUBLISH");
  CHECK(writes[0].args[1] == "rproxy:{rooms:lobby}");
  CHECK(rooms::decode_bus(writes[0].args[2], rooms::bus_limits_for(b.reg.config()))->kind == rooms::bus_kind::event);
  CHECK(b.link.subscribed.size() == 3);  // the room once, alice's and bob's channels

  // a name another instance has: exists, nothing made here
  b.handle(bob, "bob", R"({"op":"create","room":"taken"})");
  b.link.take("EVALSHA").done({}, R::integer(0));
  CHECK_FALSE(b.reg.info("taken"));
}

TEST_CASE("cluster: a session's requests wait, in order, behind the one Redis is numbering", "[rooms]") {
  bench b;
  auto [alice, ca] = b.connect();
  b.handle(alice, "alice", R"({"op":"create","room":"lobby"})");
  b.link.take("EVALSHA").done({}, R::integer(1));
  b.link.settle();
  const auto replies = ca->queued();
  b.handle(alice, "alice", R"({"op":"message","room":"lobby","text":"one"})");
  b.handle(alice, "alice", R"({"op":"message","room":"lobby","text":"two"})");
  b.handle(alice, "alice", R"({"op":"leave","room":"lobby"})");
  auto first = b.link.take("EVALSHA");
  CHECK(b.link.commands.empty());  // two and the leave wait
  CHECK(first.args[3] == "rproxy:{rooms:lobby}:seq");
  CHECK(first.args[5] == "0");  // the newest id known here
  CHECK(first.args[7].find(R"("msg_id":)") != std::string::npos);
  CHECK(first.args[8].find(R"("text":"one")") != std::string::npos);
  first.done({}, R::integer(1));
  CHECK(ca->queued() == replies + 1);
  auto second = b.link.take("EVALSHA");
  CHECK(second.args[8].find(R"("text":"two")") != std::string::npos);
  CHECK(b.reg.info("lobby")->members.size() == 1);  // the leave has not run
  second.done({}, R::integer(2));
  CHECK(b.reg.local_members("lobby") == 0);  // now it has
  CHECK(b.link.unsubscribed == std::vector<std::string>{"rproxy:{rooms:lobby}"});  // alice's own channel stays

  // max_waiting bounds the queue
  rooms::cluster_options small;
  small.max_waiting = 1;
  bench c;
  rooms::basic_cluster<fake_link> bridge(c.reg, c.hub, c.link, small, nullptr);
  c.link.confirm = [&bridge](std::string_view ch) { bridge.on_subscribed(ch); };
  auto [s, conn] = c.connect();
  const rooms::caller who{s, "u", rooms::site_role::member};
  CHECK(bridge.handle(0, who, c.req(R"({"op":"create","room":"r"})")));
  CHECK(bridge.handle(0, who, c.req(R"({"op":"list"})")));
  CHECK_FALSE(bridge.handle(0, who, c.req(R"({"op":"list"})")));
}

TEST_CASE("cluster: bus messages are applied once, in order; held during a catch-up", "[rooms]") {
  bench b;
  auto [alice, ca] = b.connect();
  b.handle(alice, "alice", R"({"op":"create","room":"lobby"})");
  b.link.take("EVALSHA").done({}, R::integer(1));
  b.link.settle();
  const auto base = ca->queued();
  const std::uint64_t other = 0x1234;
  b.bridge.on_bus("rproxy:{rooms:lobby}", wire_message(other, "lobby", 1, "m1"));
  b.bridge.on_bus("rproxy:{rooms:lobby}", wire_message(other, "lobby", 1, "m1"));  // again: dropped
  CHECK(ca->queued() == base + 1);
  // the subscription is (re)established: the stream's tail is read; live messages wait for it
  b.bridge.on_subscribed("rproxy:{rooms:lobby}");
  auto read = b.link.take("XREVRANGE");
  CHECK(read.args[1] == "rproxy:{rooms:lobby}:hist");
  b.bridge.on_bus("rproxy:{rooms:lobby}", wire_message(other, "lobby", 4, "m4"));
  CHECK(ca->queued() == base + 1);  // held
  const auto entry = [](std::uint64_t id) {
    rooms::json_out f;
    f.str("type", "message").str("room", "lobby").unum("msg_id", id);
    return R::array({R::string("0-" + std::to_string(id)), R::array({R::string("i"), R::string(std::to_string(id)), R::string("f"), R::string(std::move(f).done())})});
  };
  read.done({}, R::array({entry(3), entry(2), entry(1)}));  // newest first
  CHECK(ca->queued() == base + 4);  // 2, 3, then the held 4
  auto info = b.reg.info("lobby");
  CHECK(info->last_id == 4);
  CHECK(info->history == 4);
  // an unreadable bus message is counted and ignored
  b.bridge.on_bus("rproxy:{rooms:lobby}", "rr1 message nonsense");
  CHECK(b.bridge.refused() == 1);
  CHECK(ca->queued() == base + 4);
}

TEST_CASE("cluster: a failed command or a link that is down runs the request here", "[rooms]") {
  bench b;
  auto [alice, ca] = b.connect();
  b.handle(alice, "alice", R"({"op":"create","room":"lobby"})");
  b.link.take("EVALSHA").done(std::make_error_code(std::errc::connection_reset), reply{});
  REQUIRE(b.reg.info("lobby"));  // made here after all
  b.link.settle();
  b.handle(alice, "alice", R"({"op":"message","room":"lobby","text":"x"})");
  b.link.take("EVALSHA").done(rproxy::cluster::make_error_code(rproxy::cluster::error::not_connected), reply{});
  CHECK(b.reg.info("lobby")->last_id == 1);  // never sent: numbered here
  // sent but not answered in time: it may have run, so not here too; the sender is told
  const auto before = ca->queued();
  b.handle(alice, "alice", R"({"op":"message","room":"lobby","text":"y"})");
  b.link.take("EVALSHA").done(rproxy::cluster::make_error_code(rproxy::cluster::error::timeout), reply{});
  CHECK(b.reg.info("lobby")->last_id == 1);
  CHECK(ca->queued() == before + 1);  // the error reply
  b.link.commands.clear();
  b.link.is_up = false;
  CHECK(b.bridge.degraded());
  b.handle(alice, "alice", R"({"op":"message","room":"lobby","text":"y"})");
  CHECK(b.link.commands.empty());
  CHECK(b.reg.info("lobby")->last_id == 2);
}
