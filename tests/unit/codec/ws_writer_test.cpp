// codec/ws/writer.hpp and frame.hpp: the bytes of RFC 6455 §5.7's examples, smallest length
// forms, masking, close frames, fragmentation and compressed messages (checked against
// RFC 7692 §7.2.3's bytes and by parsing back).
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/codec/ws/writer.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <vector>

namespace ws = rproxy::codec::ws;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}
const ws::mask_key rfc_key{0x37, 0xfa, 0x21, 0x3d};
}  // namespace

TEST_CASE("RFC 6455 5.7: the writer produces the example frames", "[ws]") {
  std::string out;
  ws::append_frame(out, ws::opcode::text, "Hello");
  CHECK(out == bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  out.clear();
  ws::append_frame(out, ws::opcode::text, "Hello", {.mask = rfc_key});
  CHECK(out == bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  out.clear();
  ws::append_frame(out, ws::opcode::text, "Hel", {.fin = false});
  ws::append_frame(out, ws::opcode::continuation, "lo");
  CHECK(out == bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}));
  CHECK(ws::encode_message(ws::opcode::text, "Hello", {.fragment_size = 3}) == out);
  out.clear();
  ws::append_frame(out, ws::opcode::ping, "Hello");
  CHECK(out == bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  out.clear();
  ws::append_frame(out, ws::opcode::pong, "Hello", {.mask = rfc_key});
  CHECK(out == bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  CHECK(ws::encode_message(ws::opcode::binary, std::string(256, 'x')).substr(0, 4) == bytes({0x82, 0x7E, 0x01, 0x00}));
  CHECK(ws::encode_message(ws::opcode::binary, std::string(65536, 'x')).substr(0, 10) ==
        bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
}

TEST_CASE("headers use the smallest length form", "[ws]") {
  for (std::uint64_t n : {0ull, 125ull, 126ull, 65535ull, 65536ull}) {
    const std::string f = ws::encode_message(ws::opcode::binary, std::string(n, 'a'));
    CHECK(f.size() == ws::header_size(n, false) + n);
  }
  CHECK(ws::header_size(125, false) == 2);
  CHECK(ws::header_size(126, false) == 4);
  CHECK(ws::header_size(65536, true) == 14);
  std::array<char, ws::max_header_size> h{};
  ws::frame_header big;
  big.length = 0x0102030405060708ull;
  CHECK(ws::write_header(h, big) == 10);
  CHECK(std::string(h.data(), 10) == bytes({0x81, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST_CASE("apply_mask: any offset and length equals the byte-wise XOR", "[ws]") {
  const ws::mask_key key{0x01, 0x23, 0x45, 0x67};
  for (std::size_t offset = 0; offset < 5; ++offset)
    for (std::size_t n = 0; n < 40; ++n) {
      std::string data(n, '\0');
      for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i * 7 + 3);
      std::string expect = data;
      for (std::size_t i = 0; i < n; ++i)
        expect[i] = static_cast<char>(static_cast<unsigned char>(expect[i]) ^ key[(offset + i) % 4]);
      ws::apply_mask(std::span<char>(data.data(), data.size()), key, offset);
      CHECK(data == expect);
    }
}

TEST_CASE("close frames: code, reason, cut at a UTF-8 boundary within 125 bytes", "[ws]") {
  std::string out;
  ws::append_close(out, 1000, "bye");
  CHECK(out == bytes({0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'}));
  out.clear();
  ws::append_close(out, 0, "ignored");
  CHECK(out == bytes({0x88, 0x00}));
  // 122 ASCII bytes and then a 2-byte character: the character does not fit and is dropped.
  std::string reason(122, 'r');
  reason += "\xc3\xa9";  // (not operator+: g++ 12 -O3 -Warray-bounds false positive)
  out.clear();
  ws::append_close(out, 1001, reason);
  CHECK(out.size() == 2 + 2 + 122);
  ws::collector c{{.side = ws::role::client}};
  c.feed(out);
  REQUIRE(c.received.size() == 1);
  CHECK(c.received[0].what == ws::event::close);
  CHECK(c.received[0].code == 1001);
  CHECK(c.received[0].data == std::string(122, 'r'));
}

TEST_CASE("client messages: masked per frame with the key source", "[ws]") {
  std::uint8_t n = 0;
  const auto keys = [&] { ++n; return ws::mask_key{n, 0x55, n, 0xAA}; };
  std::string out;
  REQUIRE(ws::append_message(out, ws::opcode::binary, "abcdefgh", {.fragment_size = 3}, keys));
  CHECK(n == 3);
  ws::collector c;  // server side: requires masks
  c.feed(out);
  REQUIRE(c.received.size() == 1);
  CHECK(c.received[0].data == "abcdefgh");
}

TEST_CASE("compressed messages: RFC 7692 7.2.3.1/2 bytes, RSV1 on the first frame only", "[ws][deflate]") {
  ws::deflater takeover;  // context takeover: the second Hello refers to the first
  CHECK(ws::encode_message(ws::opcode::text, "Hello", {.compress = &takeover}) ==
        bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  CHECK(ws::encode_message(ws::opcode::text, "Hello", {.compress = &takeover}) ==
        bytes({0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00}));
  ws::deflater fresh{15, true};  // no context takeover: the same bytes every time
  for (int i = 0; i < 2; ++i)
    CHECK(ws::encode_message(ws::opcode::text, "Hello", {.compress = &fresh}) ==
          bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  CHECK_FALSE(fresh.allocated());
  // Fragments of the compressed payload; RSV1 on the first (the 3+4 split of RFC 7692 7.2.3.1
  // is the parser test's).
  CHECK(ws::encode_message(ws::opcode::text, "Hello", {.fragment_size = 3, .compress = &fresh}) ==
        bytes({0x41, 0x03, 0xf2, 0x48, 0xcd, 0x00, 0x03, 0xc9, 0xc9, 0x07, 0x80, 0x01, 0x00}));
}

TEST_CASE("compressed messages parse back, with and without context takeover", "[ws][deflate]") {
  for (bool reset : {false, true}) {
    ws::deflate_params p;
    p.server_no_context_takeover = reset;
    ws::deflater d{p.send_window(ws::role::server), p.send_reset(ws::role::server)};
    ws::collector c{{.side = ws::role::client}, p};
    std::vector<std::string> sent;
    for (int i = 0; i < 50; ++i) {
      std::string m = "message " + std::to_string(i) + std::string(static_cast<std::size_t>(i * 97), 'a' + i % 26);
      std::string w;
      REQUIRE(ws::append_message(w, i % 2 ? ws::opcode::binary : ws::opcode::text, m,
                                 {.fragment_size = static_cast<std::size_t>(i % 5) * 7, .compress = &d}));
      c.feed(w);
      sent.push_back(m);
    }
    REQUIRE(c.received.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) CHECK(c.received[i].data == sent[i]);
  }
}

TEST_CASE("window bits: a 9-bit compressor is read by a 9-bit decompressor", "[ws][deflate]") {
  ws::deflate_params p;
  p.server_max_window_bits = 9;
  ws::deflater d{p.send_window(ws::role::server), false};
  std::string text;
  for (int i = 0; i < 3000; ++i) text += std::to_string(i * 7919 % 1000);
  std::string w;
  REQUIRE(ws::append_message(w, ws::opcode::text, text, {.compress = &d}));
  REQUIRE(ws::append_message(w, ws::opcode::text, text, {.compress = &d}));
  ws::collector c{{.side = ws::role::client}, p};
  c.feed(w);
  REQUIRE(c.received.size() == 2);
  CHECK(c.received[1].data == text);
}

TEST_CASE("an empty compressed message is one 0x00 byte (RFC 7692 7.2.3.6), also after another", "[ws][deflate]") {
  ws::deflater d;  // context takeover
  CHECK(ws::encode_message(ws::opcode::text, "", {.compress = &d}) == bytes({0xc1, 0x01, 0x00}));
  std::string w = ws::encode_message(ws::opcode::text, "Hello", {.compress = &d});
  w += ws::encode_message(ws::opcode::text, "", {.compress = &d});
  w += ws::encode_message(ws::opcode::text, "Hello", {.compress = &d});
  CHECK(w.substr(9, 3) == bytes({0xc1, 0x01, 0x00}));
  ws::collector c{{.side = ws::role::client}, ws::deflate_params{}};
  c.feed(w);
  REQUIRE(c.received.size() == 3);
  CHECK(c.received[0].data == "Hello");
  CHECK(c.received[1].data.empty());
  CHECK(c.received[2].data == "Hello");
}
