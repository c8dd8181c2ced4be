#include <rproxy/codec/mc/hello.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

namespace mc = rproxy::codec::mc;
using namespace std::string_literals;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

std::vector<mc::hello_event> drain(mc::hello_reader& r, bool idle = false) {
  std::vector<mc::hello_event> evs;
  for (auto e = r.next(idle); e; e = r.next(idle)) evs.push_back(std::move(*e));
  return evs;
}
}  // namespace

TEST_CASE("hello: a login, split anywhere, replays byte-exact", "[mc][hello]") {
  const mc::handshake hs{765, "Play.Example.com\0FML3\0"s, 25565, mc::intent::login};
  const mc::login_start ls{"Steve", {}, *mc::uuid::parse("069a79f4-44e9-4726-a5be-fca90e38aaf5")};
  mc::bytes wire;
  mc::append_handshake(wire, hs);
  mc::append_login_start(wire, ls, 765);
  const auto hello_size = wire.size();
  const auto extra = b({0x05, 0x01, 0x02, 0x03, 0x04, 0x05});  // a packet sent before the backend is up
  wire.insert(wire.end(), extra.begin(), extra.end());

  for (std::size_t split = 0; split <= wire.size(); ++split) {
    CAPTURE(split);
    mc::hello_reader r;
    r.feed(mc::byte_view(wire).first(split));
    auto evs = drain(r);
    r.feed(mc::byte_view(wire).subspan(split));
    auto more = drain(r);
    evs.insert(evs.end(), more.begin(), more.end());
    REQUIRE(evs.size() == 2);
    CHECK(std::get<mc::handshake>(evs[0]) == hs);
    CHECK(std::get<mc::handshake>(evs[0]).address().host == "play.example.com");
    CHECK(std::get<mc::login_start>(evs[1]) == ls);
    CHECK(r.done());
    CHECK(r.current_state() == mc::state::login);
    CHECK(r.replay().size() == hello_size);
    CHECK(mc::bytes(r.unread().begin(), r.unread().end()) == extra);
    mc::bytes all(r.replay().begin(), r.replay().end());
    all.insert(all.end(), r.unread().begin(), r.unread().end());
    CHECK(all == wire);
  }
}

TEST_CASE("hello: status exchange", "[mc][hello]") {
  mc::bytes wire;
  mc::append_handshake(wire, {47, "localhost", 25565, mc::intent::status});
  mc::append_status_request(wire);
  mc::append_ping(wire, 1234);
  mc::hello_reader r;
  r.feed(wire);
  auto evs = drain(r);
  REQUIRE(evs.size() == 3);
  CHECK(std::holds_alternative<mc::handshake>(evs[0]));
  CHECK(std::holds_alternative<mc::status_request>(evs[1]));
  CHECK(std::get<mc::ping_request>(evs[2]).payload == 1234);
  CHECK(r.done());
  CHECK(r.current_state() == mc::state::status);
  CHECK(r.handshake_packet()->protocol_version == 47);
}

TEST_CASE("hello: legacy pings", "[mc][hello]") {
  {
    mc::hello_reader r;
    r.feed(b({0xfe, 0x01}));
    CHECK(r.next().need_more());
    auto e = r.next(true);
    REQUIRE(e);
    CHECK(std::get<mc::legacy_ping>(*e).kind == mc::legacy_ping_kind::v1_4);
    CHECK(r.done());
    CHECK(r.replay().size() == 2);
  }
  {
    mc::hello_reader r;
    mc::bytes wire;
    mc::append_legacy_ping(wire, {mc::legacy_ping_kind::v1_6, 78, "mc.example.com", 25565});
    r.feed(wire);
    auto e = r.next();
    REQUIRE(e);
    CHECK(std::get<mc::legacy_ping>(*e).host == "mc.example.com");
  }
  {
    // with legacy pings off, 0xfe is a frame length
    mc::hello_reader r{{.accept_legacy_ping = false}};
    r.feed(b({0xfe}));
    CHECK(r.next(true).need_more());
  }
}

TEST_CASE("hello: errors are sticky and bounded", "[mc][hello]") {
  {
    mc::hello_reader r;
    r.feed(b({0x81, 0x10}));  // 2049 > 2048
    CHECK(r.next().error() == mc::error::frame_too_large);
    CHECK(r.next().error() == mc::error::frame_too_large);
  }
  {
    mc::hello_reader r;
    mc::bytes wire;
    mc::append_handshake(wire, {765, "localhost", 25565, mc::intent::status});
    mc::append_ping(wire, 1);
    mc::append_status_request(wire);  // after the ping: not expected any more, but reader is done
    r.feed(wire);
    auto evs = drain(r);
    CHECK(evs.size() == 2);
    CHECK(r.done());
  }
  {
    mc::hello_reader r;
    mc::bytes wire;
    mc::append_handshake(wire, {765, "localhost", 25565, mc::intent::status});
    mc::append_status_request(wire);
    mc::append_status_request(wire);  // twice: refused like vanilla
    r.feed(wire);
    CHECK(drain(r).size() == 2);
    CHECK(r.next().error() == mc::error::unexpected_packet_id);
  }
  {
    mc::hello_reader r;
    r.feed(b({0x02, 0x01, 0x00}));  // not a handshake
    CHECK(r.next().error() == mc::error::unexpected_packet_id);
  }
}
