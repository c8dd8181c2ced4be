#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/versions.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string_view>
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
const mc::bytes localhost = b({0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't'});

// The frame body of a handshake after the packet id and protocol VarInt.
mc::bytes tail(int next_state) { return cat(localhost, b({0x63, 0xdd, next_state})); }

mc::handshake parse_frame(const mc::bytes& wire) {
  auto f = mc::decode_frame(wire);
  REQUIRE(f.is_ok());
  REQUIRE(f.size() == wire.size());
  auto hs = mc::parse_handshake(f->payload);
  REQUIRE(hs);
  return *hs;
}
}  // namespace

TEST_CASE("handshake byte vectors per version", "[mc][handshake]") {
  struct vec {
    std::int32_t protocol;
    mc::bytes proto_varint;
  };
  // Protocol VarInts derived by hand: 340 = 0x154 -> d4 02, 759 = 0x2f7 -> f7 05, ...
  const vec vectors[] = {
      {4, b({0x04})},          // 1.7.2
      {47, b({0x2f})},         // 1.8.8
      {340, b({0xd4, 0x02})},  // 1.12.2
      {759, b({0xf7, 0x05})},  // 1.19
      {760, b({0xf8, 0x05})},  // 1.19.2
      {765, b({0xfd, 0x05})},  // 1.20.4
      {769, b({0x81, 0x06})},  // 1.21.4
  };
  for (const auto& v : vectors) {
    for (int next : {1, 2}) {
      CAPTURE(v.protocol, next);
      const auto body = cat(cat(b({0x00}), v.proto_varint), tail(next));
      const auto wire = cat(b({static_cast<int>(body.size())}), body);
      const mc::handshake want{v.protocol, "localhost", 25565, static_cast<mc::intent>(next)};
      CHECK(parse_frame(wire) == want);
      mc::bytes out;
      mc::append_handshake(out, want);
      CHECK(out == wire);
    }
  }
  // A complete 1.20.4 status handshake, spelled out.
  const auto wire = b({0x10, 0x00, 0xfd, 0x05, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',
                       0x63, 0xdd, 0x01});
  CHECK(parse_frame(wire) == mc::handshake{765, "localhost", 25565, mc::intent::status});
}

TEST_CASE("handshake next state 3 is transfer", "[mc][handshake]") {
  const auto body = cat(b({0x00, 0x82, 0x06}), tail(3));  // 770
  auto hs = mc::parse_handshake(body);
  REQUIRE(hs);
  CHECK(hs->next_state == mc::intent::transfer);
  CHECK(mc::supports_transfer(hs->protocol_version));
  CHECK_FALSE(mc::supports_transfer(765));
  for (int bad : {0, 4, 0x7f}) CHECK(mc::parse_handshake(cat(b({0x00, 0x04}), tail(bad))).error() == mc::error::bad_next_state);
}

TEST_CASE("server address: Forge markers, forwarding data, trailing dot, case", "[mc][handshake]") {
  struct c {
    std::string address;
    std::string host;
    mc::forge_marker forge;
    std::string suffix;
    bool dot;
  };
  const c cases[] = {
      {"Play.Example.COM", "play.example.com", mc::forge_marker::none, "", false},
      {"play.example.com.", "play.example.com", mc::forge_marker::none, "", true},
      {"mc.example.com\0FML\0"s, "mc.example.com", mc::forge_marker::fml, "\0FML\0"s, false},
      {"mc.example.com\0FML2\0"s, "mc.example.com", mc::forge_marker::fml2, "\0FML2\0"s, false},
      {"mc.example.com.\0FML3\0"s, "mc.example.com", mc::forge_marker::fml3, "\0FML3\0"s, true},
      {"MC.example.com\0FORGE"s, "mc.example.com", mc::forge_marker::forge, "\0FORGE"s, false},
      {"mc.example.com\0" "192.168.1.7\0" "069a79f444e94726a5befca90e38aaf5\0[]"s, "mc.example.com",
       mc::forge_marker::other, "\0" "192.168.1.7\0" "069a79f444e94726a5befca90e38aaf5\0[]"s, false},
      {"", "", mc::forge_marker::none, "", false},
      {"127.0.0.1", "127.0.0.1", mc::forge_marker::none, "", false},
      {"\xc3\x89T\xc3\x89.example", "\xc3\x89t\xc3\x89.example", mc::forge_marker::none, "", false},
  };
  for (const auto& t : cases) {
    CAPTURE(t.address);
    mc::handshake hs{765, t.address, 25565, mc::intent::login};
    mc::bytes body;
    mc::append_handshake_body(body, hs);
    auto parsed = mc::parse_handshake(body);
    REQUIRE(parsed);
    CHECK(parsed->server_address == t.address);  // original bytes kept for replay
    const auto a = parsed->address();
    CHECK(a.host == t.host);
    CHECK(a.forge == t.forge);
    CHECK(a.suffix == t.suffix);
    CHECK(a.trailing_dot == t.dot);
  }
}

TEST_CASE("with_host rewrites the hostname and keeps the suffix", "[mc][handshake]") {
  const mc::handshake hs{765, "Play.Example.com.\0FML3\0"s, 25565, mc::intent::login};
  CHECK(mc::with_host(hs, "10.0.0.5").server_address == "10.0.0.5\0FML3\0"s);
  CHECK(mc::with_host(hs, "10.0.0.5", false).server_address == "10.0.0.5");
  const mc::handshake plain{47, "a.example", 25565, mc::intent::status};
  auto r = mc::with_host(plain, "backend.internal");
  CHECK(r.server_address == "backend.internal");
  CHECK(r.protocol_version == 47);
  mc::bytes out;
  mc::append_handshake(out, r);
  CHECK(parse_frame(out) == r);
}

using namespace std::string_view_literals;

namespace {
// Addresses joined out of line: g++ 12 at -O3 misjudges the sizes of inlined std::string
// concatenations in this test (-Warray-bounds / -Wstringop-overread false positives).
[[gnu::noinline]] std::string joined(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s.append(p);
  return s;
}
}  // namespace

TEST_CASE("forwarding data is stripped, Forge markers stay", "[mc][handshake]") {
  auto hs = [](std::string addr) { return mc::handshake{767, std::move(addr), 25565, mc::intent::login}; };
  const auto bungee = hs("mc.example.com\0" "203.0.113.7\0" "0123456789abcdef0123456789abcdef\0[]"s);
  CHECK(mc::has_forwarding_data(bungee));
  CHECK(mc::without_forwarding_data(bungee).server_address == "mc.example.com");
  CHECK(mc::without_forwarding_data(bungee).server_port == 25565);

  for (const auto& marker : {"\0FML\0"s, "\0FML2\0"s, "\0FML3\0"s, "\0FORGE"s, "\0FORGE1"s}) {
    CAPTURE(marker);
    const std::string with_marker = joined({"mc.example.com", marker});
    CHECK_FALSE(mc::has_forwarding_data(hs(with_marker)));
    CHECK(mc::without_forwarding_data(hs(with_marker)).server_address == with_marker);
    // forwarding data after a marker goes, the marker stays
    const auto both = hs(joined({with_marker, marker.back() == '\0' ? ""sv : "\0"sv, "203.0.113.7\0uuid"sv}));
    CHECK(mc::has_forwarding_data(both));
    CHECK(mc::without_forwarding_data(both).server_address == with_marker);
  }
  CHECK_FALSE(mc::has_forwarding_data(hs("Mc.Example.com.")));
  CHECK(mc::without_forwarding_data(hs("Mc.Example.com.")).server_address == "Mc.Example.com.");
  CHECK(mc::has_forwarding_data(hs("h\0"s)));  // a bare '\0' is not a marker
  CHECK(mc::without_forwarding_data(hs("h\0"s)).server_address == "h");
}

TEST_CASE("handshake rejects bad input", "[mc][handshake]") {
  // wrong packet id
  CHECK(mc::parse_handshake(cat(b({0x01, 0x04}), tail(1))).error() == mc::error::unexpected_packet_id);
  // trailing byte
  CHECK(mc::parse_handshake(cat(cat(b({0x00, 0x04}), tail(1)), b({0x00}))).error() == mc::error::trailing_bytes);
  // truncated at every point
  const auto body = cat(b({0x00, 0xfd, 0x05}), tail(2));
  for (std::size_t n = 0; n < body.size(); ++n) {
    auto r = mc::parse_handshake(mc::byte_view(body).first(n));
    REQUIRE_FALSE(r);
    CHECK(r.error() == mc::error::truncated);
  }
  // address of 256 chars: over the vanilla limit of 255
  mc::handshake hs{765, std::string(256, 'a'), 25565, mc::intent::login};
  mc::bytes big;
  mc::append_handshake_body(big, hs);
  CHECK(mc::parse_handshake(big).error() == mc::error::string_too_long);
  hs.server_address.pop_back();
  big.clear();
  mc::append_handshake_body(big, hs);
  CHECK(mc::parse_handshake(big));
  // a forwarding proxy's longer address needs a raised limit
  hs.server_address = joined({"host\0"sv, std::string(1000, 'x')});
  big.clear();
  mc::append_handshake_body(big, hs);
  CHECK(mc::parse_handshake(big).error() == mc::error::string_too_long);
  CHECK(mc::parse_handshake(big, {.max_address_chars = 32767}));
  // bogus address length VarInt
  CHECK(mc::parse_handshake(b({0x00, 0x04, 0xff, 0xff, 0xff, 0xff, 0xff})).error() == mc::error::varint_too_long);
  CHECK(mc::parse_handshake(b({0x00, 0x04, 0xff, 0xff, 0xff, 0xff, 0x0f})).error() == mc::error::negative_length);
}
