#include <rproxy/codec/mc/legacy.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>

namespace mc = rproxy::codec::mc;
using namespace std::string_literals;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}
mc::bytes cat(mc::bytes a, const mc::bytes& c) {
  a.insert(a.end(), c.begin(), c.end());
  return a;
}
mc::bytes utf16(std::string_view s) {
  mc::bytes out;
  mc::append_utf16be(out, s);
  return out;
}
// What a 1.6.4 client sends to localhost:25565 (from the wiki.vg Server List Ping layout).
mc::bytes ping16() {
  auto w = b({0xfe, 0x01, 0xfa, 0x00, 0x0b});
  w = cat(w, utf16("MC|PingHost"));
  w = cat(w, b({0x00, 0x19, 0x4e, 0x00, 0x09}));  // 7 + 2*9 = 25; protocol 78; 9 chars
  w = cat(w, utf16("localhost"));
  return cat(w, b({0x00, 0x00, 0x63, 0xdd}));
}
}  // namespace

TEST_CASE("modern first bytes are not a legacy ping", "[mc][legacy]") {
  for (const auto& wire : {b({0x10, 0x00}), b({0xfe, 0x02}), b({0xfe, 0x01, 0x00}), b({0x00})}) {
    auto r = mc::detect_legacy_ping(wire, true);
    REQUIRE(r.is_ok());
    CHECK_FALSE(r.value());
    CHECK(r.size() == 0);
  }
  CHECK(mc::detect_legacy_ping({}, true).need_more());
}

TEST_CASE("beta and 1.4 pings are settled when the client goes idle", "[mc][legacy]") {
  CHECK(mc::detect_legacy_ping(b({0xfe})).need_more());
  auto beta = mc::detect_legacy_ping(b({0xfe}), true);
  REQUIRE(beta.is_ok());
  REQUIRE(beta.value());
  CHECK(beta.value()->kind == mc::legacy_ping_kind::beta);
  CHECK(beta.size() == 1);

  CHECK(mc::detect_legacy_ping(b({0xfe, 0x01})).need_more());
  auto v14 = mc::detect_legacy_ping(b({0xfe, 0x01}), true);
  REQUIRE(v14.is_ok());
  REQUIRE(v14.value());
  CHECK(v14.value()->kind == mc::legacy_ping_kind::v1_4);
  CHECK(v14.size() == 2);
}

TEST_CASE("the 1.6 ping carries host, port and protocol", "[mc][legacy]") {
  const auto wire = ping16();
  REQUIRE(wire.size() == 54);
  auto r = mc::detect_legacy_ping(wire);
  REQUIRE(r.is_ok());
  REQUIRE(r.value());
  CHECK(*r.value() == mc::legacy_ping{mc::legacy_ping_kind::v1_6, 78, "localhost", 25565});
  CHECK(r.size() == 54);
  for (std::size_t n = 3; n < wire.size(); ++n)
    CHECK(mc::detect_legacy_ping(mc::byte_view(wire).first(n)).need_more());
  mc::bytes out;
  mc::append_legacy_ping(out, *r.value());
  CHECK(out == wire);
}

TEST_CASE("malformed 1.6 pings are errors", "[mc][legacy]") {
  auto wrong_channel = ping16();
  wrong_channel[6] = std::byte{'X'};
  CHECK(mc::detect_legacy_ping(mc::byte_view(wrong_channel).first(8)).error() == mc::error::bad_legacy_ping);
  auto wrong_len = ping16();
  wrong_len[28] = std::byte{0x20};  // data length no longer 7 + 2*9
  CHECK(mc::detect_legacy_ping(wrong_len).error() == mc::error::bad_legacy_ping);
  // a host over 255 chars
  mc::legacy_ping huge{mc::legacy_ping_kind::v1_6, 78, std::string(255, 'h'), 25565};
  mc::bytes ok;
  mc::append_legacy_ping(ok, huge);
  CHECK(mc::detect_legacy_ping(ok).is_ok());
  ok[30] = std::byte{0x01};  // host length 0x01ff: refused before waiting for 1 KiB of host
  CHECK(mc::detect_legacy_ping(ok).error() == mc::error::bad_legacy_ping);
}

TEST_CASE("kick response for 1.4+ matches the wiki.vg example", "[mc][legacy]") {
  const mc::legacy_status s{47, "1.4.2", "A Minecraft Server", 0, 20};
  const auto kick = mc::make_legacy_kick(mc::legacy_ping_kind::v1_6, s);
  const auto want = cat(b({0xff, 0x00, 0x23}), utf16("\xc2\xa7" "1\0" "47\0" "1.4.2\0" "A Minecraft Server\0" "0\0" "20"s));
  CHECK(kick == want);
  CHECK(mc::make_legacy_kick(mc::legacy_ping_kind::v1_4, s) == want);
  auto back = mc::parse_legacy_kick(kick);
  REQUIRE(back.is_ok());
  CHECK(back.value() == s);
}

TEST_CASE("kick response for beta", "[mc][legacy]") {
  mc::legacy_status s{127, "ignored", "A \xc2\xa7" "cMinecraft Server", 3, 20};
  const auto kick = mc::make_legacy_kick(mc::legacy_ping_kind::beta, s);
  CHECK(kick == cat(b({0xff, 0x00, 0x18}), utf16("A cMinecraft Server\xc2\xa7" "3\xc2\xa7" "20")));
  auto back = mc::parse_legacy_kick(kick);
  REQUIRE(back.is_ok());
  CHECK(back->motd == "A cMinecraft Server");
  CHECK(back->online == 3);
  CHECK(back->max == 20);
}

TEST_CASE("kick text is bounded and separators are removed", "[mc][legacy]") {
  mc::legacy_status s{127, "v\0x"s, std::string(40000, 'm') + "\0"s, 1, 2};
  const auto kick = mc::make_legacy_kick(mc::legacy_ping_kind::v1_6, s);
  CHECK(kick.size() == 3 + 2 * 32767);
  CHECK(static_cast<unsigned>(kick[1]) == 0x7f);
  CHECK(static_cast<unsigned>(kick[2]) == 0xff);
  // short text: the NUL is dropped from version and MOTD
  s.motd = "m\0otd"s;
  auto back = mc::parse_legacy_kick(mc::make_legacy_kick(mc::legacy_ping_kind::v1_4, s));
  REQUIRE(back.is_ok());
  CHECK(back->version_name == "vx");
  CHECK(back->motd == "motd");
}
