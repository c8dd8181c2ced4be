#include <rproxy/codec/mc/reader.hpp>
#include <rproxy/codec/mc/utf.hpp>
#include <rproxy/codec/mc/uuid.hpp>
#include <rproxy/codec/mc/writer.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>

namespace mc = rproxy::codec::mc;
using namespace std::string_view_literals;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}
}  // namespace

TEST_CASE("writer emits big-endian fixed-size types", "[mc][wire]") {
  mc::bytes out;
  mc::append_u16(out, 25565);
  mc::append_i32(out, -2);
  mc::append_i64(out, 0x0102030405060708);
  mc::append_bool(out, true);
  mc::append_bool(out, false);
  CHECK(out == b({0x63, 0xdd, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0}));

  mc::reader r{out};
  CHECK(*r.read_u16() == 25565);
  CHECK(*r.read_i32() == -2);
  CHECK(*r.read_i64() == 0x0102030405060708);
  CHECK(*r.read_bool() == true);
  CHECK(*r.read_bool() == false);
  CHECK(r.at_end());
  CHECK(r.expect_end());
  CHECK(r.read_u8().error() == mc::error::truncated);
}

TEST_CASE("UUIDs are two big-endian longs and print hyphenated", "[mc][wire]") {
  auto id = mc::uuid::parse("069a79f4-44e9-4726-a5be-fca90e38aaf5");
  REQUIRE(id);
  CHECK(id->hi == 0x069a79f444e94726u);
  CHECK(id->lo == 0xa5befca90e38aaf5u);
  CHECK(id->to_string() == "069a79f4-44e9-4726-a5be-fca90e38aaf5");
  CHECK(mc::uuid::parse("069A79F444E94726A5BEFCA90E38AAF5") == id);
  CHECK_FALSE(mc::uuid::parse("069a79f4-44e9-4726-a5be-fca90e38aaf"));
  CHECK_FALSE(mc::uuid::parse("069a79f4+44e9-4726-a5be-fca90e38aaf5"));
  CHECK_FALSE(mc::uuid::parse("g69a79f444e94726a5befca90e38aaf5"));
  mc::bytes out;
  mc::append_uuid(out, *id);
  CHECK(out == b({0x06, 0x9a, 0x79, 0xf4, 0x44, 0xe9, 0x47, 0x26, 0xa5, 0xbe, 0xfc, 0xa9, 0x0e, 0x38,
                  0xaa, 0xf5}));
  mc::reader r{out};
  CHECK(*r.read_uuid() == *id);
}

TEST_CASE("strings: VarInt byte length, UTF-8, max length in UTF-16 units", "[mc][wire]") {
  mc::bytes out;
  mc::append_string(out, "h\xc3\xa9llo");  // 6 bytes, 5 chars
  CHECK(out == b({0x06, 'h', 0xc3, 0xa9, 'l', 'l', 'o'}));
  {
    mc::reader r{out};
    CHECK(*r.read_string(5) == "h\xc3\xa9llo"sv);
  }
  {
    mc::reader r{out};
    CHECK(r.read_string(4).error() == mc::error::string_too_long);
  }
  // U+1F600 is 4 bytes of UTF-8 and 2 UTF-16 units (Java counts 2)
  mc::bytes emoji;
  mc::append_string(emoji, "\xf0\x9f\x98\x80");
  CHECK(mc::reader{emoji}.read_string(2));
  CHECK(mc::reader{emoji}.read_string(1).error() == mc::error::string_too_long);
  // a byte length over 3 * max is refused before looking at the bytes
  CHECK(mc::reader{b({0x07, 'a', 'a', 'a', 'a', 'a', 'a', 'a'})}.read_string(2).error() ==
        mc::error::string_too_long);
  // a length longer than the packet
  CHECK(mc::reader{b({0x05, 'a', 'b'})}.read_string(255).error() == mc::error::truncated);
  // a negative length
  CHECK(mc::reader{b({0xff, 0xff, 0xff, 0xff, 0x0f})}.read_string(255).error() == mc::error::negative_length);
  // invalid UTF-8: lone continuation, overlong '/', surrogate, truncated sequence
  CHECK(mc::reader{b({0x01, 0x80})}.read_string(10).error() == mc::error::invalid_utf8);
  CHECK(mc::reader{b({0x02, 0xc0, 0xaf})}.read_string(10).error() == mc::error::invalid_utf8);
  CHECK(mc::reader{b({0x03, 0xed, 0xa0, 0x80})}.read_string(10).error() == mc::error::invalid_utf8);
  CHECK(mc::reader{b({0x02, 0xe2, 0x82})}.read_string(10).error() == mc::error::invalid_utf8);
}

TEST_CASE("booleans other than 0 and 1 are refused", "[mc][wire]") {
  CHECK(mc::reader{b({0x02})}.read_bool().error() == mc::error::bad_boolean);
}

TEST_CASE("prefixed byte arrays are bounded", "[mc][wire]") {
  mc::bytes out;
  mc::append_prefixed_bytes(out, b({1, 2, 3}));
  CHECK(out == b({3, 1, 2, 3}));
  CHECK(mc::reader{out}.read_prefixed_bytes(3));
  CHECK(mc::reader{out}.read_prefixed_bytes(2).error() == mc::error::string_too_long);
}

TEST_CASE("UTF-16 helpers", "[mc][wire]") {
  CHECK(mc::utf16_length("abc") == 3u);
  CHECK(mc::utf16_length("\xf0\x9f\x98\x80") == 2u);
  CHECK_FALSE(mc::utf16_length("\xff"));

  mc::bytes u16;
  CHECK(mc::append_utf16be(u16, "\xc2\xa7" "1\xf0\x9f\x98\x80") == 4);
  CHECK(u16 == b({0x00, 0xa7, 0x00, 0x31, 0xd8, 0x3d, 0xde, 0x00}));
  CHECK(mc::utf16be_to_utf8(u16) == "\xc2\xa7" "1\xf0\x9f\x98\x80");
  CHECK_FALSE(mc::utf16be_to_utf8(b({0xd8, 0x3d})));        // unpaired high surrogate
  CHECK_FALSE(mc::utf16be_to_utf8(b({0xde, 0x00, 0, 65})));  // unpaired low surrogate
  CHECK_FALSE(mc::utf16be_to_utf8(b({0x00})));              // odd size
}
