// Laws every codec/mc packet obeys, checked over generated values (fixed seeds, so runs repeat):
//   1. round trip:      decode(encode(x)) == x
//   2. exact re-encode: encode(decode(wire)) == wire   (what the proxy replays is what it read)
//   3. any byte split:  a stream of several frames, cut anywhere, yields the same packets
#include <rproxy/codec/mc/compression.hpp>
#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/hello.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/codec/mc/varint.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace mc = rproxy::codec::mc;

namespace {

using rng = std::mt19937_64;

std::int64_t any_int(rng& g, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>{lo, hi}(g);
}

// Text with ASCII, 2-, 3- and 4-byte UTF-8, quotes, escapes and control characters.
std::string any_text(rng& g, std::size_t max_units) {
  static const char* pieces[] = {"a", "Z", "0", ".", " ", "\"", "\\", "\n", "\t", "\x01", "\x7f",
                                 "\xc2\xa7", "\xc3\xa9", "\xe2\x82\xac", "\xef\xbf\xbd",
                                 "\xf0\x9f\x98\x80", "/", "<", "{", "}"};
  std::string s;
  std::size_t units = 0;
  const auto n = static_cast<std::size_t>(any_int(g, 0, static_cast<std::int64_t>(max_units)));
  while (true) {
    const char* p = pieces[any_int(g, 0, std::size(pieces) - 1)];
    const std::size_t u = static_cast<unsigned char>(p[0]) >= 0xf0 ? 2 : 1;
    if (units + u > n) break;
    s += p;
    units += u;
  }
  return s;
}

std::string any_hostname(rng& g) {
  static const char* suffixes[] = {"", ".", "\0FML\0", "\0FML2\0", "\0FML3\0", "\0FORGE", ("\0" "10.0.0.1\0abc\0[]")};
  static const std::size_t suffix_len[] = {0, 1, 5, 6, 6, 6, 16};
  std::string host;
  const auto labels = any_int(g, 1, 4);
  for (int i = 0; i < labels; ++i) {
    if (i) host += '.';
    const auto len = any_int(g, 1, 20);
    for (int k = 0; k < len; ++k) host += "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"[any_int(g, 0, 62)];
  }
  const auto s = any_int(g, 0, std::size(suffixes) - 1);
  host.append(suffixes[s], suffix_len[s]);
  if (any_int(g, 0, 9) == 0) host = any_text(g, 255);  // sometimes any text at all
  return host;
}

mc::bytes any_bytes(rng& g, std::size_t max) {
  mc::bytes b(static_cast<std::size_t>(any_int(g, 0, static_cast<std::int64_t>(max))));
  // compressible runs and noise
  for (auto& x : b) x = static_cast<std::byte>(any_int(g, 0, 3) == 0 ? any_int(g, 0, 255) : 0x41);
  return b;
}

mc::uuid any_uuid(rng& g) {
  return {static_cast<std::uint64_t>(g()), static_cast<std::uint64_t>(g())};
}

// --- one "codec model" per packet: gen, encode (a whole frame), decode (a frame's body) ------

struct handshake_model {
  using value = mc::handshake;
  static constexpr const char* name = "handshake";
  static value gen(rng& g) {
    const int intents[] = {1, 2, 3};
    return {static_cast<std::int32_t>(any_int(g, INT32_MIN, INT32_MAX) >> any_int(g, 0, 31)),
            any_hostname(g), static_cast<std::uint16_t>(any_int(g, 0, 65535)),
            static_cast<mc::intent>(intents[any_int(g, 0, 2)])};
  }
  static void encode(mc::bytes& out, const value& v) { mc::append_handshake(out, v); }
  static rproxy::result<value> decode(mc::byte_view body) { return mc::parse_handshake(body); }
};

struct status_model {
  using value = mc::status_info;
  static constexpr const char* name = "status response";
  static value gen(rng& g) {
    value s;
    s.version_name = any_text(g, 20);
    s.protocol = static_cast<std::int32_t>(any_int(g, -1, 1000));
    if (any_int(g, 0, 4) == 0) {
      s.players.reset();
    } else {
      s.players = mc::status_players{static_cast<std::int32_t>(any_int(g, 0, 100000)),
                                     static_cast<std::int32_t>(any_int(g, -5, 1000)), {}};
      for (auto n = any_int(g, 0, 3); n > 0; --n) s.players->sample.push_back({any_text(g, 16), any_uuid(g).to_string()});
    }
    s.description = mc::text_component(any_text(g, 60), any_int(g, 0, 1) ? "gold" : "");
    if (any_int(g, 0, 1)) s.favicon = mc::make_favicon(any_bytes(g, 64));
    if (any_int(g, 0, 1)) s.enforces_secure_chat = any_int(g, 0, 1) == 1;
    if (any_int(g, 0, 3) == 0) s.previews_chat = any_int(g, 0, 1) == 1;
    if (any_int(g, 0, 2) == 0) s.extra.emplace_back("forgeData", R"({"channels":[],"mods":[{"modId":"forge","modmarker":"47.2"}],"truncated":false})");
    return s;
  }
  static void encode(mc::bytes& out, const value& v) { mc::append_status_response(out, mc::to_json(v)); }
  static rproxy::result<value> decode(mc::byte_view body) {
    auto json = mc::parse_status_response(body);
    if (!json) return rproxy::failure(json.error());
    return mc::parse_status_json(*json);
  }
};

struct ping_model {
  using value = std::int64_t;
  static constexpr const char* name = "ping";
  static value gen(rng& g) { return static_cast<std::int64_t>(g()); }
  static void encode(mc::bytes& out, const value& v) { mc::append_ping(out, v); }
  static rproxy::result<value> decode(mc::byte_view body) { return mc::parse_ping(body); }
};

template <std::int32_t Protocol>
struct login_start_model {
  using value = mc::login_start;
  static constexpr const char* name = "login start";
  static value gen(rng& g) {
    value ls;
    ls.username = any_text(g, 16);
    if (ls.username.empty()) ls.username = "x";
    const auto shape = mc::login_start_shape_of(Protocol);
    using s = mc::login_start_shape;
    if ((shape == s::name_sig || shape == s::name_sig_optional_uuid) && any_int(g, 0, 1))
      ls.signature = mc::signature_data{static_cast<std::int64_t>(g()), any_bytes(g, 512), any_bytes(g, 600)};
    if (shape == s::name_uuid || ((shape == s::name_sig_optional_uuid || shape == s::name_optional_uuid) && any_int(g, 0, 1)))
      ls.player_uuid = any_uuid(g);
    return ls;
  }
  static void encode(mc::bytes& out, const value& v) { mc::append_login_start(out, v, Protocol); }
  static rproxy::result<value> decode(mc::byte_view body) { return mc::parse_login_start(body, Protocol); }
};

struct login_disconnect_model {
  using value = std::string;
  static constexpr const char* name = "login disconnect";
  static value gen(rng& g) { return mc::text_component(any_text(g, 300)); }
  static void encode(mc::bytes& out, const value& v) { mc::append_login_disconnect(out, v); }
  static rproxy::result<value> decode(mc::byte_view body) { return mc::parse_login_disconnect(body); }
};

struct set_compression_model {
  using value = std::int32_t;
  static constexpr const char* name = "set compression";
  static value gen(rng& g) { return static_cast<std::int32_t>(any_int(g, -1, 1 << 20)); }
  static void encode(mc::bytes& out, const value& v) { mc::append_set_compression(out, v); }
  static rproxy::result<value> decode(mc::byte_view body) { return mc::parse_set_compression(body); }
};

using models = std::tuple<handshake_model, status_model, ping_model, login_start_model<4>,
                          login_start_model<47>, login_start_model<340>, login_start_model<759>,
                          login_start_model<760>, login_start_model<762>, login_start_model<765>,
                          login_start_model<769>, login_disconnect_model, set_compression_model>;

// Cuts `wire` at random points (and at every point when it is small) and feeds the pieces.
template <class F>
void for_each_split(rng& g, const mc::bytes& wire, F&& check) {
  std::vector<std::vector<std::size_t>> plans;
  if (wire.size() <= 64)
    for (std::size_t i = 0; i <= wire.size(); ++i) plans.push_back({i});
  for (int k = 0; k < 20; ++k) {
    std::vector<std::size_t> cuts;
    for (auto n = any_int(g, 1, 12); n > 0; --n) cuts.push_back(static_cast<std::size_t>(any_int(g, 0, static_cast<std::int64_t>(wire.size()))));
    std::sort(cuts.begin(), cuts.end());
    plans.push_back(cuts);
  }
  plans.push_back({});  // every byte on its own
  for (std::size_t i = 1; i < wire.size() && i < 4096; ++i) plans.back().push_back(i);
  for (const auto& cuts : plans) {
    std::vector<mc::byte_view> pieces;
    std::size_t at = 0;
    for (auto c : cuts) {
      pieces.push_back(mc::byte_view(wire).subspan(at, c - at));
      at = c;
    }
    pieces.push_back(mc::byte_view(wire).subspan(at));
    check(pieces);
  }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("law: decode(encode(x)) == x, encode(decode(w)) == w", "[mc][laws]", models) {
  rng g{0x6d63};
  for (int i = 0; i < 300; ++i) {
    const auto x = TestType::gen(g);
    mc::bytes wire;
    TestType::encode(wire, x);
    auto f = mc::decode_frame(wire);
    REQUIRE(f.is_ok());
    REQUIRE(f.size() == wire.size());
    auto back = TestType::decode(f->payload);
    INFO(TestType::name << " #" << i);
    REQUIRE(back);
    CHECK(*back == x);
    mc::bytes again;
    TestType::encode(again, *back);
    CHECK(again == wire);
  }
}

TEMPLATE_LIST_TEST_CASE("law: any byte split of a stream yields the same packets", "[mc][laws]", models) {
  rng g{0x73706c};
  for (int round = 0; round < 8; ++round) {
    std::vector<typename TestType::value> xs;
    mc::bytes wire;
    for (auto n = any_int(g, 1, 5); n > 0; --n) {
      xs.push_back(TestType::gen(g));
      TestType::encode(wire, xs.back());
    }
    for_each_split(g, wire, [&](const std::vector<mc::byte_view>& pieces) {
      mc::packet_reader in;
      std::vector<typename TestType::value> got;
      for (auto piece : pieces) {
        in.feed(piece);
        for (auto p = in.next(); p; p = in.next()) {
          auto v = TestType::decode(p->body);
          REQUIRE(v);
          got.push_back(*v);
        }
        REQUIRE_FALSE(in.error());
      }
      CHECK(got == xs);
      CHECK(in.unread().empty());
    });
  }
}

TEST_CASE("law: VarInt and VarLong round trip and are minimal", "[mc][laws]") {
  rng g{1};
  for (int i = 0; i < 20000; ++i) {
    const auto shift = any_int(g, 0, 63);
    const auto v64 = static_cast<std::int64_t>(g()) >> shift;
    const auto v32 = static_cast<std::int32_t>(v64);
    mc::bytes a;
    mc::append_varint(a, v32);
    auto r = mc::decode_varint(a);
    REQUIRE(r.is_ok());
    CHECK(r.value() == v32);
    CHECK(r.size() == a.size());
    mc::bytes l;
    mc::append_varlong(l, v64);
    auto rl = mc::decode_varlong(l);
    REQUIRE(rl.is_ok());
    CHECK(rl.value() == v64);
    CHECK(rl.size() == l.size());
    // minimal: dropping the last byte's value never encodes the same number
    CHECK((a.size() == 1 || a.back() != std::byte{0}));
  }
}

TEST_CASE("law: compressed frames round trip and split anywhere", "[mc][laws]") {
  rng g{0x7a};
  for (int round = 0; round < 30; ++round) {
    const mc::compression c{static_cast<std::int32_t>(any_int(g, 0, 300))};
    std::vector<mc::bytes> bodies;
    mc::bytes wire;
    for (auto n = any_int(g, 1, 6); n > 0; --n) {
      auto body = any_bytes(g, 3000);
      body.insert(body.begin(), std::byte{0x20});  // a packet id
      mc::append_packet(wire, body, c);
      bodies.push_back(std::move(body));
    }
    for_each_split(g, wire, [&](const std::vector<mc::byte_view>& pieces) {
      mc::packet_reader in;
      in.set_compression(c);
      std::vector<mc::bytes> got;
      for (auto piece : pieces) {
        in.feed(piece);
        for (auto p = in.next(); p; p = in.next()) got.emplace_back(p->body.begin(), p->body.end());
        REQUIRE_FALSE(in.error());
      }
      CHECK(got == bodies);
    });
  }
}

TEST_CASE("law: legacy ping and kick round trip", "[mc][laws]") {
  rng g{0xfe};
  for (int i = 0; i < 500; ++i) {
    mc::legacy_ping p{mc::legacy_ping_kind::v1_6, static_cast<std::int32_t>(any_int(g, 0, 255)),
                      any_text(g, 255), static_cast<std::int32_t>(any_int(g, INT32_MIN, INT32_MAX))};
    mc::bytes wire;
    mc::append_legacy_ping(wire, p);
    auto r = mc::detect_legacy_ping(wire);
    REQUIRE(r.is_ok());
    REQUIRE(r.value());
    CHECK(*r.value() == p);
    CHECK(r.size() == wire.size());

    std::string motd;
    for (char ch : any_text(g, 100)) motd += ch == '\0' ? ' ' : ch;
    mc::legacy_status s{static_cast<std::int32_t>(any_int(g, 0, 1000)), "1.20.4", motd,
                        static_cast<std::int32_t>(any_int(g, 0, 1000)), static_cast<std::int32_t>(any_int(g, 0, 1000))};
    auto back = mc::parse_legacy_kick(mc::make_legacy_kick(mc::legacy_ping_kind::v1_6, s));
    REQUIRE(back.is_ok());
    CHECK(back.value() == s);
  }
}

TEST_CASE("law: the hello reader sees the same events at any split and replays exactly", "[mc][laws]") {
  rng g{0x4e1};
  const std::int32_t protocols[] = {4, 47, 340, 759, 760, 761, 765, 769};
  for (int round = 0; round < 40; ++round) {
    const auto proto = protocols[any_int(g, 0, std::size(protocols) - 1)];
    auto hs = handshake_model::gen(g);
    hs.protocol_version = proto;
    hs.next_state = any_int(g, 0, 1) ? mc::intent::login : mc::intent::status;
    mc::bytes wire;
    mc::append_handshake(wire, hs);
    mc::login_start ls{"Player" + std::to_string(round), {}, {}};
    if (mc::login_start_shape_of(proto) == mc::login_start_shape::name_uuid) ls.player_uuid = any_uuid(g);
    if (hs.next_state == mc::intent::login) {
      mc::append_login_start(wire, ls, proto);
    } else {
      mc::append_status_request(wire);
      mc::append_ping(wire, round);
    }
    const auto hello_size = wire.size();
    const auto trailing = any_bytes(g, 40);
    wire.insert(wire.end(), trailing.begin(), trailing.end());
    for_each_split(g, wire, [&](const std::vector<mc::byte_view>& pieces) {
      mc::hello_reader r;
      std::vector<mc::hello_event> evs;
      for (auto piece : pieces) {
        r.feed(piece);
        for (auto e = r.next(); e; e = r.next()) evs.push_back(*e);
        REQUIRE_FALSE(r.next().failed());
      }
      REQUIRE(r.done());
      REQUIRE(!evs.empty());
      CHECK(std::get<mc::handshake>(evs.front()) == hs);
      if (hs.next_state == mc::intent::login) {
        REQUIRE(evs.size() == 2);
        CHECK(std::get<mc::login_start>(evs[1]) == ls);
      } else {
        CHECK(evs.size() == 3);
      }
      CHECK(r.replay().size() == hello_size);
      mc::bytes all(r.replay().begin(), r.replay().end());
      all.insert(all.end(), r.unread().begin(), r.unread().end());
      CHECK(all == wire);
    });
  }
}
