// Hostile input: huge hostnames, bogus lengths, random and mutated bytes, zip bombs. Every
// decoder must refuse cleanly (never crash or over-read: the ASan build checks the latter), and
// whatever it accepts must re-encode to exactly the bytes it read.
#include <rproxy/codec/mc/compression.hpp>
#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/hello.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/core/json.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

namespace mc = rproxy::codec::mc;
using namespace std::string_literals;

namespace {
mc::bytes random_bytes(std::mt19937_64& g, std::size_t n) {
  mc::bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(g());
  return b;
}

// Feeds `wire` in pieces of `step` bytes; returns the sizes of the items decoded and the error.
template <class Reader, class Next>
std::pair<std::vector<std::size_t>, std::error_code> run(const mc::bytes& wire, std::size_t step, Next next) {
  Reader r;
  std::vector<std::size_t> out;
  for (std::size_t at = 0; at < wire.size(); at += step) {
    r.feed(mc::byte_view(wire).subspan(at, std::min(step, wire.size() - at)));
    for (;;) {
      auto e = next(r);
      if (e.failed()) return {out, e.error()};
      if (e.need_more()) break;
      out.push_back(e.size());
    }
  }
  return {out, {}};
}

// Accepting implies exact re-encoding.
void check_exact(mc::byte_view body) {
  if (auto hs = mc::parse_handshake(body)) {
    mc::bytes again;
    mc::append_handshake_body(again, *hs);
    CHECK(mc::bytes(body.begin(), body.end()) == again);
  }
  for (std::int32_t proto : {47, 759, 760, 761, 765}) {
    if (auto ls = mc::parse_login_start(body, proto)) {
      mc::bytes again;
      mc::append_login_start_body(again, *ls, proto);
      CHECK(mc::bytes(body.begin(), body.end()) == again);
    }
  }
  if (auto p = mc::parse_ping(body)) {
    mc::bytes again;
    mc::append_ping(again, *p);
    CHECK(mc::bytes(body.begin(), body.end()) == mc::bytes(again.begin() + 1, again.end()));
  }
  if (auto s = mc::parse_status_response(body)) (void)mc::parse_status_json(*s);
  (void)mc::parse_set_compression(body);
  (void)mc::parse_login_disconnect(body);
  (void)mc::parse_status_request(body);
}
}  // namespace

TEST_CASE("huge hostnames are refused at the frame or the string limit", "[mc][robustness]") {
  const mc::handshake hs{765, std::string(70000, 'a') + ".example.com", 25565, mc::intent::login};
  mc::bytes wire;
  mc::append_handshake(wire, hs);
  // the handshake-phase frame limit stops it after 3 bytes of length, without buffering the rest
  CHECK(mc::decode_frame(mc::byte_view(wire).first(3), mc::handshake_max_length).error() ==
        mc::error::frame_too_large);
  mc::hello_reader r;
  r.feed(mc::byte_view(wire).first(3));
  CHECK(r.next().error() == mc::error::frame_too_large);
  // with a generous frame limit the 255-char address limit still holds
  auto f = mc::decode_frame(wire);
  REQUIRE(f);
  CHECK(mc::parse_handshake(f->payload).error() == mc::error::string_too_long);
  // a 1.6 legacy ping claiming a 65535-char host
  mc::bytes legacy = {std::byte{0xfe}, std::byte{0x01}, std::byte{0xfa}};
  mc::append_u16(legacy, 11);
  mc::append_utf16be(legacy, "MC|PingHost");
  mc::append_u16(legacy, static_cast<std::uint16_t>(7 + 2 * 65535));
  mc::append_u8(legacy, 78);
  mc::append_u16(legacy, 65535);
  CHECK(mc::detect_legacy_ping(legacy).error() == mc::error::bad_legacy_ping);
}

TEST_CASE("bogus VarInt lengths anywhere in a handshake", "[mc][robustness]") {
  const mc::bytes bogus[] = {
      {std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}},  // too long
      {std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0x0f}},  // -1
      {std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0x07}},  // INT_MAX
      {std::byte{0x80}, std::byte{0x00}},                                                      // overlong 0
  };
  mc::bytes good;
  mc::append_handshake_body(good, {765, "localhost", 25565, mc::intent::login});
  for (const auto& v : bogus) {
    for (std::size_t at = 0; at <= good.size(); ++at) {
      mc::bytes body(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(at));
      body.insert(body.end(), v.begin(), v.end());
      body.insert(body.end(), good.begin() + static_cast<std::ptrdiff_t>(at), good.end());
      CHECK_FALSE(mc::parse_handshake(body));
      // as a frame length
      mc::bytes frame = v;
      frame.insert(frame.end(), good.begin(), good.end());
      auto f = mc::decode_frame(frame);
      CHECK(f.failed());
    }
  }
}

TEST_CASE("random bytes: decoders refuse cleanly, whole and split agree", "[mc][robustness]") {
  std::mt19937_64 g{42};
  for (int i = 0; i < 3000; ++i) {
    auto wire = random_bytes(g, static_cast<std::size_t>(g() % 300));
    if (i % 3 == 0 && !wire.empty()) wire[0] = std::byte{static_cast<unsigned char>(g() % 40)};  // plausible length
    check_exact(wire);
    (void)rproxy::json::parse(mc::as_chars(wire), mc::json_limits);
    (void)mc::plain_text(mc::as_chars(wire));
    (void)mc::detect_legacy_ping(wire, true);
    (void)mc::parse_legacy_kick(wire);
    mc::bytes scratch;
    (void)mc::decode_compressed_payload(wire, mc::compression{64}, scratch);

    auto next_packet = [](mc::packet_reader& r) { return r.next(); };
    auto whole = run<mc::packet_reader>(wire, wire.size() + 1, next_packet);
    auto split = run<mc::packet_reader>(wire, 1, next_packet);
    CHECK(whole.first == split.first);
    CHECK(whole.second == split.second);

    auto next_hello = [](mc::hello_reader& r) { return r.next(); };
    auto hw = run<mc::hello_reader>(wire, wire.size() + 1, next_hello);
    auto hs = run<mc::hello_reader>(wire, 1, next_hello);
    CHECK(hw.first == hs.first);
    CHECK(hw.second == hs.second);
  }
}

TEST_CASE("mutated valid packets: whatever is accepted re-encodes exactly", "[mc][robustness]") {
  std::mt19937_64 g{7};
  std::vector<mc::bytes> seeds;
  {
    mc::bytes b;
    mc::append_handshake_body(b, {765, "mc.example.com\0FML3\0"s, 25565, mc::intent::login});
    seeds.push_back(b);
    b.clear();
    mc::append_login_start_body(b, {"Steve", {}, mc::uuid{1, 2}}, 765);
    seeds.push_back(b);
    b.clear();
    mc::append_login_start_body(b, {"Steve", mc::signature_data{1, mc::bytes(20), mc::bytes(30)}, mc::uuid{1, 2}}, 760);
    seeds.push_back(b);
    b.clear();
    mc::append_ping(b, 99);
    seeds.push_back(mc::bytes(b.begin() + 1, b.end()));
  }
  for (int i = 0; i < 20000; ++i) {
    auto m = seeds[g() % seeds.size()];
    for (auto n = g() % 4 + 1; n > 0; --n) {
      switch (g() % 3) {
        case 0: m[g() % m.size()] = static_cast<std::byte>(g()); break;
        case 1: m.insert(m.begin() + static_cast<std::ptrdiff_t>(g() % (m.size() + 1)), static_cast<std::byte>(g())); break;
        default: if (m.size() > 1) m.erase(m.begin() + static_cast<std::ptrdiff_t>(g() % m.size())); break;
      }
    }
    check_exact(m);
  }
}

TEST_CASE("a zip bomb through packet_reader", "[mc][robustness]") {
  mc::bytes zeros(32u << 20);
  mc::bytes z;
  mc::zlib_compress(z, zeros, 9);
  zeros = {};
  // claims 8 MiB (the vanilla maximum), inflates to 32 MiB
  mc::bytes payload;
  mc::append_varint(payload, 8 << 20);
  mc::append(payload, z);
  mc::bytes wire;
  mc::append_frame(wire, payload);
  mc::packet_reader in;
  in.set_compression(mc::compression{256});
  in.feed(wire);
  CHECK(in.next().error() == mc::error::decompression_failed);
  // claims more than allowed: refused before inflating
  payload.clear();
  mc::append_varint(payload, (8 << 20) + 1);
  mc::append(payload, z);
  wire.clear();
  mc::append_frame(wire, payload);
  mc::packet_reader in2;
  in2.set_compression(mc::compression{256});
  in2.feed(wire);
  CHECK(in2.next().error() == mc::error::bad_compressed_length);
}

TEST_CASE("deeply nested or huge status JSON is bounded", "[mc][robustness]") {
  std::string deep = "{\"version\":{\"name\":\"x\",\"protocol\":1},\"description\":";
  for (int i = 0; i < 10000; ++i) deep += "{\"extra\":[";
  CHECK_FALSE(mc::parse_status_json(deep));
  std::string wide = "{\"version\":{\"name\":\"x\",\"protocol\":1},\"description\":{\"text\":\"" + std::string(30000, 'y') + "\"}}";
  auto s = mc::parse_status_json(wide);
  REQUIRE(s);
  CHECK(mc::plain_text(s->description).size() == 30000);
}
