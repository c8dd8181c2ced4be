// codec/ws/parser.hpp: RFC 6455 §5.7 examples, every error with its close code, limits, and
// permessage-deflate (RFC 7692 §7.2.3 examples), each input fed whole, at every split and
// byte by byte.
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/parser.hpp>
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

using items = std::vector<ws::received_item>;

items run(std::string_view wire, const ws::parser_options& o, const std::optional<ws::deflate_params>& d,
          std::size_t step) {
  ws::collector c{o, d};
  for (std::size_t i = 0; i < wire.size() && !c.failed(); i += step) c.feed(wire.substr(i, step));
  if (wire.empty()) c.feed({});
  return c.received;
}

/// Parses `wire` whole, split in two at every point, and byte by byte; all must agree.
items parse_all_ways(std::string_view wire, const ws::parser_options& o = {},
                     const std::optional<ws::deflate_params>& d = {}) {
  const items whole = run(wire, o, d, wire.size() == 0 ? 1 : wire.size());
  CHECK(run(wire, o, d, 1) == whole);
  for (std::size_t cut = 1; cut < wire.size() && cut < 300; ++cut) {
    ws::collector c{o, d};
    c.feed(wire.substr(0, cut));
    c.feed(wire.substr(cut));
    if (c.received != whole) FAIL("split at " << cut << " differs");
  }
  return whole;
}

ws::received_item msg(ws::opcode op, std::string data) { return {ws::event::data, op, std::move(data), 0, {}}; }
ws::received_item ctl(ws::event e, std::string data, std::uint16_t code = 0) {
  return {e, ws::opcode::text, std::move(data), code, {}};
}
ws::received_item err(ws::error e) { return {ws::event::error, ws::opcode::text, {}, ws::close_code_for(e), e}; }

const ws::parser_options client{.side = ws::role::client};
const std::string masked_hello = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});

}  // namespace

TEST_CASE("RFC 6455 5.7: single-frame unmasked and masked text", "[ws]") {
  CHECK(parse_all_ways(bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), client) ==
        items{msg(ws::opcode::text, "Hello")});
  CHECK(parse_all_ways(masked_hello) == items{msg(ws::opcode::text, "Hello")});
}

TEST_CASE("RFC 6455 5.7: fragmented unmasked text", "[ws]") {
  CHECK(parse_all_ways(bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}), client) ==
        items{msg(ws::opcode::text, "Hello")});
}

TEST_CASE("RFC 6455 5.7: ping and masked pong", "[ws]") {
  CHECK(parse_all_ways(bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), client) ==
        items{ctl(ws::event::ping, "Hello")});
  CHECK(parse_all_ways(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58})) ==
        items{ctl(ws::event::pong, "Hello")});
}

TEST_CASE("RFC 6455 5.7: 256-byte and 64 KiB binary messages", "[ws]") {
  std::string p256(256, '\0');
  for (std::size_t i = 0; i < p256.size(); ++i) p256[i] = static_cast<char>(i);
  CHECK(parse_all_ways(bytes({0x82, 0x7E, 0x01, 0x00}) + p256, client) == items{msg(ws::opcode::binary, p256)});
  std::string p64k(65536, 'x');
  const std::string wire = bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}) + p64k;
  CHECK(run(wire, client, {}, wire.size()) == items{msg(ws::opcode::binary, p64k)});
  CHECK(run(wire, client, {}, 7) == items{msg(ws::opcode::binary, p64k)});
  // Non-minimal length forms are accepted on receive.
  CHECK(parse_all_ways(bytes({0x82, 0x7E, 0x00, 0x02, 'h', 'i'}), client) == items{msg(ws::opcode::binary, "hi")});
  CHECK(parse_all_ways(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'}), client) ==
        items{msg(ws::opcode::binary, "hi")});
}

TEST_CASE("control frames interleaved in a fragmented message", "[ws]") {
  std::string w;
  ws::append_frame(w, ws::opcode::text, "Hel", {.fin = false, .mask = ws::mask_key{1, 2, 3, 4}});
  ws::append_frame(w, ws::opcode::ping, "p", {.mask = ws::mask_key{5, 6, 7, 8}});
  ws::append_frame(w, ws::opcode::continuation, "", {.fin = false, .mask = ws::mask_key{9, 9, 9, 9}});
  ws::append_frame(w, ws::opcode::pong, "", {.mask = ws::mask_key{5, 6, 7, 8}});
  ws::append_frame(w, ws::opcode::continuation, "lo", {.fin = true, .mask = ws::mask_key{0xff, 0, 0xff, 0}});
  ws::append_close(w, 1000, "bye", ws::mask_key{1, 1, 1, 1});
  CHECK(parse_all_ways(w) == items{ctl(ws::event::ping, "p"), ctl(ws::event::pong, ""),
                                   msg(ws::opcode::text, "Hello"), ctl(ws::event::close, "bye", 1000)});
}

TEST_CASE("empty messages and frames", "[ws]") {
  CHECK(parse_all_ways(bytes({0x81, 0x00, 0x82, 0x00}), client) ==
        items{msg(ws::opcode::text, ""), msg(ws::opcode::binary, "")});
  CHECK(parse_all_ways(bytes({0x01, 0x00, 0x00, 0x00, 0x80, 0x00}), client) == items{msg(ws::opcode::text, "")});
  CHECK(parse_all_ways(bytes({0x88, 0x00}), client) == items{ctl(ws::event::close, "", 1005)});
}

TEST_CASE("masking must match the role: an unmasked client frame is 1002", "[ws]") {
  CHECK(parse_all_ways(bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})) == items{err(ws::error::unmasked_frame)});
  CHECK(parse_all_ways(masked_hello, client) == items{err(ws::error::unmasked_frame)});
  CHECK(ws::close_code_for(ws::error::unmasked_frame) == 1002);
}

TEST_CASE("reserved bits, opcodes and control frame rules", "[ws]") {
  for (int rsv : {0x40, 0x20, 0x10})
    CHECK(parse_all_ways(bytes({0x81 | rsv, 0x00}), client) == items{err(ws::error::reserved_bits)});
  for (int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
    CHECK(parse_all_ways(bytes({0x80 | op, 0x00}), client) == items{err(ws::error::bad_opcode)});
  // Control frames: not fragmented, at most 125 bytes (also with a 16-bit length form).
  CHECK(parse_all_ways(bytes({0x09, 0x00}), client) == items{err(ws::error::bad_control_frame)});
  CHECK(parse_all_ways(bytes({0x89, 0x7E, 0x00, 0x7E}), client) == items{err(ws::error::bad_control_frame)});
  std::string ping125 = bytes({0x89, 0x7D}) + std::string(125, 'a');
  CHECK(parse_all_ways(ping125, client) == items{ctl(ws::event::ping, std::string(125, 'a'))});
  // A frame's errors are known from its first two bytes: nothing more is awaited.
  ws::parser p{client};
  std::string two = bytes({0x83, 0x7F});
  CHECK(p.parse(two).what == ws::event::error);
}

TEST_CASE("continuation rules", "[ws]") {
  CHECK(parse_all_ways(bytes({0x80, 0x00}), client) == items{err(ws::error::bad_continuation)});
  CHECK(parse_all_ways(bytes({0x01, 0x01, 'a', 0x81, 0x01, 'b'}), client) == items{err(ws::error::bad_continuation)});
  CHECK(parse_all_ways(bytes({0x01, 0x01, 'a', 0x02, 0x01, 'b'}), client) == items{err(ws::error::bad_continuation)});
}

TEST_CASE("64-bit lengths with the top bit set are refused", "[ws]") {
  CHECK(parse_all_ways(bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}), client) == items{err(ws::error::bad_length)});
  CHECK(parse_all_ways(bytes({0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4})) ==
        items{err(ws::error::bad_length)});
}

TEST_CASE("close payloads: 1 byte, codes, reasons", "[ws]") {
  CHECK(parse_all_ways(bytes({0x88, 0x01, 0x03}), client) == items{err(ws::error::bad_close_payload)});
  for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999})
    CHECK(parse_all_ways(bytes({0x88, 0x02, code >> 8, code & 0xFF}), client) ==
          items{ctl(ws::event::close, "", static_cast<std::uint16_t>(code))});
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
    CHECK(parse_all_ways(bytes({0x88, 0x02, code >> 8, code & 0xFF}), client) == items{err(ws::error::bad_close_payload)});
  CHECK(parse_all_ways(bytes({0x88, 0x04, 0x03, 0xE8, 0xCE, 0xBA}), client) ==
        items{ctl(ws::event::close, "\xce\xba", 1000)});
  CHECK(parse_all_ways(bytes({0x88, 0x04, 0x03, 0xE8, 0xCE, 0xFF}), client) == items{err(ws::error::invalid_utf8)});
  // Anything after the close frame is an error, not a message.
  CHECK(parse_all_ways(bytes({0x88, 0x00, 0x81, 0x00}), client) ==
        items{ctl(ws::event::close, "", 1005), err(ws::error::frame_after_close)});
}

TEST_CASE("text must be UTF-8 across fragments, and fails at the first bad byte", "[ws]") {
  // U+00E9 split across two fragments is fine.
  CHECK(parse_all_ways(bytes({0x01, 0x01, 0xC3, 0x80, 0x01, 0xA9}), client) == items{msg(ws::opcode::text, "\xc3\xa9")});
  // A truncated sequence at the end of the message.
  CHECK(parse_all_ways(bytes({0x01, 0x01, 0xC3, 0x80, 0x00}), client) == items{err(ws::error::invalid_utf8)});
  // Binary messages are not checked.
  CHECK(parse_all_ways(bytes({0x82, 0x01, 0xFF}), client) == items{msg(ws::opcode::binary, "\xff")});
  // Fail fast: the first fragment holds a surrogate's first two bytes; the frame is not over
  // (its declared length is 100) and no later byte has arrived, yet the error is reported.
  ws::parser p{client};
  std::string first = bytes({0x01, 0x64, 'a', 'b', 0xED, 0xA0});
  auto r = p.parse(first);
  CHECK(r.what == ws::event::error);
  CHECK(r.error == ws::error::invalid_utf8);
  CHECK(r.code == 1007);
}

TEST_CASE("size limits answer 1009, per frame and per message, before the payload arrives", "[ws]") {
  ws::parser_options o = client;
  o.max_frame_size = 10;
  o.max_message_size = 15;
  CHECK(parse_all_ways(bytes({0x82, 0x0B}), o) == items{err(ws::error::frame_too_big)});
  std::string w = bytes({0x02, 0x0A}) + std::string(10, 'a') + bytes({0x80, 0x06}) + std::string(6, 'b');
  CHECK(parse_all_ways(w, o) == items{err(ws::error::message_too_big)});
  std::string ok = bytes({0x02, 0x0A}) + std::string(10, 'a') + bytes({0x80, 0x05}) + std::string(5, 'b');
  CHECK(parse_all_ways(ok, o) == items{msg(ws::opcode::binary, std::string(10, 'a') + std::string(5, 'b'))});
  CHECK(ws::close_code_for(ws::error::message_too_big) == 1009);
  // A 2^62-byte frame is refused from its header alone.
  CHECK(parse_all_ways(bytes({0x82, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0}), client) == items{err(ws::error::frame_too_big)});
  // Limits above 1 GiB act as 1 GiB (the parser counts in 32 bits): a 4 GiB + 5 byte frame,
  // whose length would wrap to 5 in 32 bits, is refused from its header.
  ws::parser_options big = client;
  big.max_frame_size = big.max_message_size = std::uint64_t{1} << 40;
  CHECK(parse_all_ways(bytes({0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 5}) + "hello", big) == items{err(ws::error::frame_too_big)});
  CHECK(parse_all_ways(bytes({0x82, 0x7F, 0, 0, 0, 0, 0x40, 0, 0, 1}), big) == items{err(ws::error::frame_too_big)});  // 1 GiB + 1
}

TEST_CASE("unmasking: masked frames of many sizes round-trip through the writer", "[ws]") {
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 125u, 126u, 65535u, 65536u, 70000u}) {
    std::string payload(n, '\0');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 31 + 7);
    std::string w;
    ws::append_frame(w, ws::opcode::binary, payload, {.mask = ws::mask_key{0xde, 0xad, 0xbe, 0xef}});
    CHECK(run(w, {}, {}, w.size() + 1) == items{msg(ws::opcode::binary, payload)});
    CHECK(run(w, {}, {}, 13) == items{msg(ws::opcode::binary, payload)});
  }
}

// --- permessage-deflate ----------------------------------------------------------------------

namespace {
const ws::deflate_params pmd{};  // context takeover both ways, 15-bit windows
}

TEST_CASE("RFC 7692 7.2.3.1: compressed Hello, whole and fragmented", "[ws][deflate]") {
  CHECK(parse_all_ways(bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), client, pmd) ==
        items{msg(ws::opcode::text, "Hello")});
  CHECK(parse_all_ways(bytes({0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00}), client, pmd) ==
        items{msg(ws::opcode::text, "Hello")});
}

TEST_CASE("RFC 7692 7.2.3.2: sharing the LZ77 window (context takeover)", "[ws][deflate]") {
  const std::string first = bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  const std::string second = bytes({0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00});
  CHECK(parse_all_ways(first + second, client, pmd) ==
        items{msg(ws::opcode::text, "Hello"), msg(ws::opcode::text, "Hello")});
  // Without context takeover the second message is compressed like the first.
  ws::deflate_params no_ctx;
  no_ctx.server_no_context_takeover = true;
  CHECK(parse_all_ways(first + first, client, no_ctx) ==
        items{msg(ws::opcode::text, "Hello"), msg(ws::opcode::text, "Hello")});
  // ... and the back-reference of the second form then has no window to refer to.
  CHECK(parse_all_ways(first + second, client, no_ctx).back().what == ws::event::error);
}

TEST_CASE("RFC 7692 7.2.3.3-5: stored block, BFINAL, two blocks", "[ws][deflate]") {
  CHECK(parse_all_ways(bytes({0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), client,
                       pmd) == items{msg(ws::opcode::text, "Hello")});
  CHECK(parse_all_ways(bytes({0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), client, pmd) ==
        items{msg(ws::opcode::text, "Hello")});
  CHECK(parse_all_ways(bytes({0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                              0x00}),
                       client, pmd) == items{msg(ws::opcode::text, "Hello")});
}

TEST_CASE("permessage-deflate: RSV1 rules", "[ws][deflate]") {
  // Without negotiation RSV1 is an error; with it, only on a message's first frame.
  CHECK(parse_all_ways(bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), client) ==
        items{err(ws::error::reserved_bits)});
  CHECK(parse_all_ways(bytes({0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00}), client, pmd) ==
        items{err(ws::error::reserved_bits)});
  CHECK(parse_all_ways(bytes({0xc9, 0x00}), client, pmd) == items{err(ws::error::reserved_bits)});
  // An uncompressed message is still fine.
  CHECK(parse_all_ways(bytes({0x81, 0x02, 'h', 'i'}), client, pmd) == items{msg(ws::opcode::text, "hi")});
}

TEST_CASE("permessage-deflate: a zip bomb stops at the message limit with 1009", "[ws][deflate]") {
  ws::deflater d;
  std::string w;
  REQUIRE(ws::append_message(w, ws::opcode::binary, std::string(10 * 1024 * 1024, '\0'), {.compress = &d}));
  CHECK(w.size() < 20000);
  ws::parser_options o = client;
  o.max_message_size = 1024 * 1024;
  const auto got = run(w, o, pmd, w.size());
  REQUIRE(got.size() == 1);
  CHECK(got[0] == err(ws::error::message_too_big));
  // Exactly at the limit it passes.
  o.max_message_size = 10 * 1024 * 1024;
  CHECK(run(w, o, pmd, 4096) == items{msg(ws::opcode::binary, std::string(10 * 1024 * 1024, '\0'))});
}

TEST_CASE("permessage-deflate: small decompression pieces, fragments and masks at every split", "[ws][deflate]") {
  ws::deflater d;
  std::string text;
  for (int i = 0; i < 300; ++i) text += "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 " + std::to_string(i);
  std::uint8_t n = 0;
  const auto keys = [&] { ++n; return ws::mask_key{n, 0x5a, static_cast<std::uint8_t>(n * 3), 0xa5}; };
  std::string w;
  REQUIRE(ws::append_message(w, ws::opcode::text, text, {.fragment_size = 50, .compress = &d}, keys));
  ws::append_frame(w, ws::opcode::ping, "x", {.mask = keys()});
  REQUIRE(ws::append_message(w, ws::opcode::text, text, {.compress = &d}, keys));
  ws::parser_options o;
  o.inflate_chunk = 64;
  CHECK(parse_all_ways(w, o, pmd) ==
        items{msg(ws::opcode::text, text), ctl(ws::event::ping, "x"), msg(ws::opcode::text, text)});
}

TEST_CASE("permessage-deflate: invalid data and invalid UTF-8 after inflation", "[ws][deflate]") {
  CHECK(parse_all_ways(bytes({0xc1, 0x02, 0xff, 0xff}), client, pmd) == items{err(ws::error::bad_compressed_data)});
  ws::deflater d;
  std::string w;
  REQUIRE(ws::append_message(w, ws::opcode::text, "ok \xff", {.compress = &d}));
  CHECK(parse_all_ways(w, client, pmd) == items{err(ws::error::invalid_utf8)});
}

TEST_CASE("permessage-deflate: no buffer or zlib stream is held between messages without context takeover",
          "[ws][deflate]") {
  ws::deflate_params p;
  p.server_no_context_takeover = true;  // the client parses what the server compressed
  ws::collector c{client, p};
  ws::deflater d{15, true};
  std::string w;
  REQUIRE(ws::append_message(w, ws::opcode::text, std::string(100000, 'z'), {.compress = &d}));
  CHECK_FALSE(d.allocated());
  c.feed(w);
  REQUIRE(c.received == items{msg(ws::opcode::text, std::string(100000, 'z'))});
  CHECK_FALSE(c.parser().in_message());
  CHECK_FALSE(c.parser().holds_memory());
  // With context takeover the stream stays (it holds the window), and only it.
  ws::collector keep{client, ws::deflate_params{}};
  ws::deflater d2;
  std::string w2;
  REQUIRE(ws::append_message(w2, ws::opcode::text, "abc", {.compress = &d2}));
  keep.feed(w2);
  CHECK(keep.parser().holds_memory());
}

TEST_CASE("per-connection parser state is small", "[ws]") {
  CHECK(sizeof(ws::parser) <= 128);
}
