#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <stdexcept>
#include <string>

namespace mc = rproxy::codec::mc;

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
const mc::bytes steve = b({0x05, 'S', 't', 'e', 'v', 'e'});
const mc::uuid notch = *mc::uuid::parse("069a79f4-44e9-4726-a5be-fca90e38aaf5");
const mc::bytes notch_wire = b({0x06, 0x9a, 0x79, 0xf4, 0x44, 0xe9, 0x47, 0x26, 0xa5, 0xbe, 0xfc, 0xa9,
                                0x0e, 0x38, 0xaa, 0xf5});

void check_vector(std::int32_t protocol, const mc::login_start& ls, const mc::bytes& wire) {
  CAPTURE(protocol);
  auto f = mc::decode_frame(wire);
  REQUIRE(f);
  REQUIRE(f.size() == wire.size());
  auto parsed = mc::parse_login_start(f->payload, protocol);
  REQUIRE(parsed);
  CHECK(*parsed == ls);
  mc::bytes out;
  mc::append_login_start(out, ls, protocol);
  CHECK(out == wire);
}
}  // namespace

TEST_CASE("login start up to 1.18.2: name only", "[mc][login]") {
  const auto wire = b({0x07, 0x00, 0x05, 'S', 't', 'e', 'v', 'e'});
  check_vector(4, {"Steve", {}, {}}, wire);     // 1.7.2
  check_vector(47, {"Steve", {}, {}}, wire);    // 1.8.8
  check_vector(340, {"Steve", {}, {}}, wire);   // 1.12.2
  check_vector(758, {"Steve", {}, {}}, wire);   // 1.18.2
  // fields a version lacks are not written
  mc::bytes out;
  mc::append_login_start(out, {"Steve", {}, notch}, 47);
  CHECK(out == wire);
  // and not accepted
  CHECK(mc::parse_login_start(cat(b({0x00}), cat(steve, b({0x00}))), 47).error() == mc::error::trailing_bytes);
}

TEST_CASE("login start 1.19 (759): optional signature data", "[mc][login]") {
  check_vector(759, {"Steve", {}, {}}, cat(b({0x08, 0x00}), cat(steve, b({0x00}))));
  const mc::signature_data sig{0x0000018000000000, b({0x30, 0x82}), b({0xaa, 0xbb, 0xcc})};
  // 00 Steve 01 <ts 8> 02 30 82 03 aa bb cc
  auto body = cat(b({0x00}), steve);
  body = cat(body, b({0x01, 0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x02, 0x30, 0x82, 0x03, 0xaa,
                      0xbb, 0xcc}));
  check_vector(759, {"Steve", sig, {}}, cat(b({static_cast<int>(body.size())}), body));
  // limits: public key at most 512 bytes, signature at most 4096
  mc::login_start big{"Steve", mc::signature_data{1, mc::bytes(513), mc::bytes(1)}, {}};
  mc::bytes bad;
  mc::append_login_start_body(bad, big, 759);
  CHECK(mc::parse_login_start(bad, 759).error() == mc::error::string_too_long);
  big.signature->public_key.resize(512);
  big.signature->signature.resize(4096);
  bad.clear();
  mc::append_login_start_body(bad, big, 759);
  CHECK(mc::parse_login_start(bad, 759));
}

TEST_CASE("login start 1.19.1-1.19.2 (760): signature data, then optional UUID", "[mc][login]") {
  check_vector(760, {"Steve", {}, {}}, cat(b({0x09, 0x00}), cat(steve, b({0x00, 0x00}))));
  // 00 Steve 00 01 <uuid>: 1 + 6 + 1 + 1 + 16 = 25 = 0x19
  check_vector(760, {"Steve", {}, notch}, cat(cat(b({0x19, 0x00}), cat(steve, b({0x00, 0x01}))), notch_wire));
  const mc::signature_data sig{5, b({1}), b({2})};
  mc::bytes body;
  mc::append_login_start_body(body, {"Steve", sig, notch}, 760);
  CHECK(body == cat(cat(cat(b({0x00}), steve), b({0x01, 0, 0, 0, 0, 0, 0, 0, 5, 1, 1, 1, 2, 0x01})), notch_wire));
  CHECK(*mc::parse_login_start(body, 760) == mc::login_start{"Steve", sig, notch});
}

TEST_CASE("login start 1.19.3-1.20.1 (761-763): optional UUID", "[mc][login]") {
  check_vector(761, {"Steve", {}, {}}, cat(b({0x08, 0x00}), cat(steve, b({0x00}))));
  check_vector(763, {"Steve", {}, notch}, cat(cat(b({0x18, 0x00}), cat(steve, b({0x01}))), notch_wire));
}

TEST_CASE("login start 1.20.2+ (764+): UUID always", "[mc][login]") {
  // 00 Steve <uuid>: 1 + 6 + 16 = 23 = 0x17
  const auto wire = cat(cat(b({0x17, 0x00}), steve), notch_wire);
  check_vector(764, {"Steve", {}, notch}, wire);
  check_vector(765, {"Steve", {}, notch}, wire);  // 1.20.4
  check_vector(769, {"Steve", {}, notch}, wire);  // 1.21.4
  check_vector(774, {"Steve", {}, notch}, wire);  // 1.21.11
  mc::bytes out;
  CHECK_THROWS_AS(mc::append_login_start(out, {"Steve", {}, {}}, 765), std::invalid_argument);
  // missing UUID is truncation
  CHECK(mc::parse_login_start(cat(b({0x00}), steve), 765).error() == mc::error::truncated);
}

TEST_CASE("login start names", "[mc][login]") {
  CHECK(mc::parse_login_start(b({0x00, 0x00}), 47).error() == mc::error::bad_username);
  mc::bytes body = b({0x00, 17});
  body.resize(body.size() + 17, std::byte{'a'});
  CHECK(mc::parse_login_start(body, 47).error() == mc::error::string_too_long);
  CHECK(mc::parse_login_start(b({0x01, 0x01, 'a'}), 47).error() == mc::error::unexpected_packet_id);
  CHECK(mc::is_valid_username("Notch"));
  CHECK(mc::is_valid_username("a_b-1.x"));
  CHECK_FALSE(mc::is_valid_username(""));
  CHECK_FALSE(mc::is_valid_username("has space"));
  CHECK_FALSE(mc::is_valid_username("seventeen_chars_x"));
  CHECK_FALSE(mc::is_valid_username("caf\xc3\xa9"));
}

TEST_CASE("set compression", "[mc][login]") {
  mc::bytes out;
  mc::append_set_compression(out, 256);
  CHECK(out == b({0x03, 0x03, 0x80, 0x02}));
  CHECK(*mc::parse_set_compression(mc::byte_view(out).subspan(1)) == 256);
  CHECK(*mc::parse_set_compression(b({0x03, 0xff, 0xff, 0xff, 0xff, 0x0f})) == -1);
  CHECK(mc::parse_set_compression(b({0x02, 0x01})).error() == mc::error::unexpected_packet_id);
}

TEST_CASE("login disconnect carries a JSON text component", "[mc][login]") {
  mc::bytes out;
  mc::append_login_disconnect(out, R"({"text":"bye"})");
  CHECK(out == cat(b({0x10, 0x00, 0x0e}), mc::to_bytes(R"({"text":"bye"})")));
  CHECK(*mc::parse_login_disconnect(mc::byte_view(out).subspan(1)) == R"({"text":"bye"})");
}

TEST_CASE("make_disconnect renders text per state", "[mc][login]") {
  const auto kick = mc::make_disconnect(mc::state::login, "Server is \"starting\"\nwait");
  auto f = mc::decode_frame(kick);
  REQUIRE(f);
  CHECK(f.size() == kick.size());
  auto reason = mc::parse_login_disconnect(f->payload);
  REQUIRE(reason);
  CHECK(*reason == R"({"text":"Server is \"starting\"\nwait"})");
  CHECK(mc::plain_text(*reason) == "Server is \"starting\"\nwait");
  CHECK(mc::make_disconnect(mc::state::handshaking, "x") == mc::make_disconnect(mc::state::login, "x"));

  // status: a response whose MOTD is the text and that no client version matches
  const auto st = mc::make_disconnect(mc::state::status, "Rate limited");
  auto sf = mc::decode_frame(st);
  REQUIRE(sf);
  auto json = mc::parse_status_response(sf->payload);
  REQUIRE(json);
  auto info = mc::parse_status_json(*json);
  REQUIRE(info);
  CHECK(info->protocol == -1);
  CHECK_FALSE(info->players);
  CHECK(mc::plain_text(info->description) == "Rate limited");

  CHECK_THROWS_AS(mc::make_disconnect(mc::state::play, "x"), std::invalid_argument);

  // after Set Compression the kick is framed in the compressed format
  const auto zk = mc::make_disconnect(mc::state::login, "x", mc::compression{256});
  mc::packet_reader in;
  in.set_compression(mc::compression{256});
  in.feed(zk);
  auto p = in.next();
  REQUIRE(p);
  CHECK(*mc::parse_login_disconnect(p->body) == R"({"text":"x"})");
}

TEST_CASE("make_disconnect renders rproxy rejections", "[mc][login]") {
  auto text_of = [](const mc::bytes& kick) {
    auto f = mc::decode_frame(kick);
    REQUIRE(f);
    return mc::plain_text(*mc::parse_login_disconnect(f->payload));
  };
  using rproxy::reject_code;
  CHECK(text_of(mc::make_disconnect(mc::state::login, rproxy::reject_reason{reject_code::banned, {}, 0})) ==
        "You are banned from this server.");
  CHECK(text_of(mc::make_disconnect(mc::state::login, rproxy::reject_reason{reject_code::rate_limited, "Slow down", 30})) ==
        "Slow down\nTry again in 30 seconds.");
  CHECK(text_of(mc::make_disconnect(mc::state::login, rproxy::reject(reject_code::not_found).reason())) ==
        "Unknown server address.");
  for (auto code : {reject_code::bad_request, reject_code::unauthorized, reject_code::forbidden,
                    reject_code::banned, reject_code::not_found, reject_code::rate_limited,
                    reject_code::too_many_connections, reject_code::unavailable, reject_code::timeout,
                    reject_code::too_large, reject_code::internal})
    CHECK_FALSE(mc::default_reject_message(code).empty());
}
