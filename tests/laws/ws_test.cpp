// Laws codec/ws obeys, checked over generated conversations (fixed seeds, so runs repeat):
//   1. round trip:    parse(write(items)) == items, for both roles, with every fragmentation,
//                     and with permessage-deflate in each context-takeover and window setup
//   2. any byte split: the same wire cut anywhere (and in random pieces) gives the same items
//   3. limits:        a message one byte over max_message_size is refused with 1009, one at the
//                     limit passes, compressed or not
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/core/utf8.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ws = rproxy::codec::ws;

namespace {

using rng = std::mt19937_64;
using items = std::vector<ws::received_item>;

std::size_t any(rng& g, std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>{lo, hi}(g); }

std::string any_text(rng& g, std::size_t max_units) {
  static const char* pieces[] = {"a", "Z", " ", "\n", "\x7f", "\xc2\xa7", "\xc3\xa9", "\xe2\x82\xac", "\xef\xbf\xbd",
                                 "\xf0\x9f\x98\x80", "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf"};
  std::string s;
  const std::size_t n = any(g, 0, max_units);
  for (std::size_t i = 0; i < n; ++i) s += pieces[any(g, 0, std::size(pieces) - 1)];
  return s;
}

std::string any_bytes(rng& g, std::size_t max) {
  std::string s(any(g, 0, max), '\0');
  const bool compressible = any(g, 0, 1) == 0;
  for (auto& c : s) c = static_cast<char>(compressible ? 'a' + any(g, 0, 3) : any(g, 0, 255));
  return s;
}

struct conversation {
  items expect;
  std::string wire;
};

/// Items sent by `sender`, written with the writer (masks from g when a client sends).
conversation any_conversation(rng& g, ws::role sender, ws::deflater* z) {
  conversation c;
  const auto key = [&] {
    return ws::mask_key{static_cast<std::uint8_t>(any(g, 0, 255)), static_cast<std::uint8_t>(any(g, 0, 255)),
                        static_cast<std::uint8_t>(any(g, 0, 255)), static_cast<std::uint8_t>(any(g, 0, 255))};
  };
  const auto mask = [&]() -> std::optional<ws::mask_key> {
    if (sender == ws::role::client) return key();
    return std::nullopt;
  };
  const std::size_t n = any(g, 1, 12);
  for (std::size_t i = 0; i < n; ++i) {
    switch (any(g, 0, 5)) {
      case 0:
      case 1: {
        const std::string t = any_text(g, any(g, 0, 1) ? 40 : 20000);
        const ws::message_options mo{.fragment_size = any(g, 0, 3) ? 0 : any(g, 1, 300), .compress = z};
        REQUIRE((sender == ws::role::client ? ws::append_message(c.wire, ws::opcode::text, t, mo, key)
                                            : ws::append_message(c.wire, ws::opcode::text, t, mo)));
        c.expect.push_back({ws::event::data, ws::opcode::text, t, 0, {}});
        break;
      }
      case 2:
      case 3: {
        const std::string b = any_bytes(g, any(g, 0, 1) ? 200 : 70000);
        const ws::message_options mo{.fragment_size = any(g, 0, 3) ? 0 : any(g, 1, 5000), .compress = z};
        REQUIRE((sender == ws::role::client ? ws::append_message(c.wire, ws::opcode::binary, b, mo, key)
                                            : ws::append_message(c.wire, ws::opcode::binary, b, mo)));
        c.expect.push_back({ws::event::data, ws::opcode::binary, b, 0, {}});
        break;
      }
      case 4: {
        const bool ping = any(g, 0, 1) == 0;
        const std::string p = any_bytes(g, 125);
        ws::append_frame(c.wire, ping ? ws::opcode::ping : ws::opcode::pong, p, {.mask = mask()});
        c.expect.push_back({ping ? ws::event::ping : ws::event::pong, ws::opcode::text, p, 0, {}});
        break;
      }
      default: break;
    }
  }
  if (any(g, 0, 1)) {
    const std::string reason = any_text(g, 20).substr(0, 123);
    std::string cut = reason;
    while (!rproxy::utf8::is_valid(cut)) cut.pop_back();
    const auto code = static_cast<std::uint16_t>(any(g, 0, 1) ? 1000 : 4000 + any(g, 0, 999));
    ws::append_close(c.wire, code, cut, mask());
    c.expect.push_back({ws::event::close, ws::opcode::text, cut, code, {}});
  }
  return c;
}

items parse(std::string_view wire, const ws::parser_options& o, const std::optional<ws::deflate_params>& d,
            rng* cuts) {
  ws::collector c{o, d};
  std::size_t i = 0;
  while (i < wire.size()) {
    const std::size_t n = cuts ? std::min(wire.size() - i, any(*cuts, 1, 2000)) : wire.size();
    c.feed(wire.substr(i, n));
    i += n;
  }
  return c.received;
}

std::vector<std::optional<ws::deflate_params>> setups() {
  std::vector<std::optional<ws::deflate_params>> v{std::nullopt};
  for (bool snct : {false, true})
    for (bool cnct : {false, true})
      for (std::uint8_t w : {9, 15}) {
        ws::deflate_params p;
        p.server_no_context_takeover = snct;
        p.client_no_context_takeover = cnct;
        p.server_max_window_bits = w;
        p.client_max_window_bits = w;
        v.push_back(p);
      }
  return v;
}

}  // namespace

TEST_CASE("ws laws: round trip and any byte split, both roles, every deflate setup", "[ws][laws]") {
  rng g{20261205};
  for (const auto& d : setups())
    for (ws::role sender : {ws::role::client, ws::role::server}) {
      const ws::role receiver = sender == ws::role::client ? ws::role::server : ws::role::client;
      std::optional<ws::deflater> z;
      if (d) z.emplace(d->send_window(sender), d->send_reset(sender));
      for (int round = 0; round < 8; ++round) {
        // One conversation per parser: the deflate context carries over within it.
        const conversation c = any_conversation(g, sender, z ? &*z : nullptr);
        ws::parser_options o;
        o.side = receiver;
        o.inflate_chunk = any(g, 0, 1) ? 64 : 16 * 1024;
        CHECK(parse(c.wire, o, d, nullptr) == c.expect);
        CHECK(parse(c.wire, o, d, &g) == c.expect);
        if (c.wire.size() < 600) {
          for (std::size_t cut = 1; cut < c.wire.size(); ++cut) {
            ws::collector col{o, d};
            col.feed(std::string_view(c.wire).substr(0, cut));
            col.feed(std::string_view(c.wire).substr(cut));
            if (col.received != c.expect) FAIL("cut at " << cut);
          }
        }
        if (z) z->release();  // the next conversation starts a new connection
      }
    }
}

TEST_CASE("ws laws: the message limit is exact, compressed or not", "[ws][laws]") {
  rng g{7};
  for (const auto& d : setups())
    for (std::size_t limit : {0u, 1u, 125u, 126u, 4096u, 65536u}) {
      ws::parser_options o;
      o.max_message_size = limit;
      o.max_frame_size = 1u << 20;
      const std::string at(limit, 'q');
      const std::string over = at + "q";
      for (const auto& [payload, ok] : {std::pair{at, true}, std::pair{over, false}}) {
        std::optional<ws::deflater> z;
        if (d) z.emplace(d->send_window(ws::role::client), true);
        std::string w;
        REQUIRE(ws::append_message(w, ws::opcode::binary, payload, {.fragment_size = 1000, .compress = z ? &*z : nullptr},
                                   [] { return ws::mask_key{1, 2, 3, 4}; }));
        const items got = parse(w, o, d, &g);
        REQUIRE(got.size() == 1);
        if (ok) {
          CHECK(got[0].data == payload);
        } else {
          CHECK(got[0].what == ws::event::error);
          CHECK(got[0].code == 1009);
        }
      }
    }
}
