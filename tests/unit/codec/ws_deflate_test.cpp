// codec/ws/deflate.hpp: the zlib streams behind permessage-deflate: RFC 7692 §7.2.3 bytes,
// lazy allocation and release, windows from 8 to 15, and round trips at every level.
#include <rproxy/codec/ws/deflate.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>

namespace ws = rproxy::codec::ws;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

/// Inflates a whole compressed message (the tail appended) with `in`.
std::string inflate_message(ws::inflater& inf, std::string payload, bool* ok = nullptr) {
  payload.append(ws::deflate_tail);
  std::string out;
  char buf[100];
  std::size_t at = 0;
  bool good = true;
  while (true) {
    const auto r = inf.step(std::string_view(payload).substr(at), buf, sizeof buf);
    at += r.consumed;
    out.append(buf, r.produced);
    if (!r.ok) {
      good = false;
      break;
    }
    if (at == payload.size() && r.produced < sizeof buf) break;
  }
  if (ok) *ok = good;
  inf.end_message();
  return out;
}
}  // namespace

TEST_CASE("inflater: RFC 7692 7.2.3.1 Hello with every window size", "[ws][deflate]") {
  for (std::uint8_t w = 8; w <= 15; ++w) {
    ws::inflater inf{w};
    CHECK_FALSE(inf.allocated());
    CHECK(inflate_message(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
    CHECK(inf.allocated());  // context takeover: kept
  }
}

TEST_CASE("inflater: without context takeover the stream is freed after each message", "[ws][deflate]") {
  ws::inflater inf{15, true};
  CHECK(inflate_message(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
  CHECK_FALSE(inf.allocated());
  CHECK(inflate_message(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
  bool ok = true;
  inflate_message(inf, bytes({0xff, 0xff, 0xff}), &ok);
  CHECK_FALSE(ok);
}

TEST_CASE("deflater: round trips at every level and window, with and without context takeover", "[ws][deflate]") {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i % 37) + " of the text\n";
  for (int level : {0, 1, 6, 9})
    for (std::uint8_t w : {9, 12, 15})
      for (bool reset : {false, true}) {
        ws::deflater d{w, reset, level, 1};
        ws::inflater inf{w, reset};
        for (int m = 0; m < 3; ++m) {
          std::string c;
          REQUIRE(d.compress(text, c));
          CHECK(d.allocated() == !reset);
          CHECK(inflate_message(inf, c) == text);
        }
      }
}
