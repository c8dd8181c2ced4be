#include <rproxy/codec/mc/varint.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <vector>

namespace mc = rproxy::codec::mc;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}
mc::bytes enc(std::int32_t v) {
  mc::bytes out;
  mc::append_varint(out, v);
  return out;
}
mc::bytes enc_long(std::int64_t v) {
  mc::bytes out;
  mc::append_varlong(out, v);
  return out;
}
}  // namespace

TEST_CASE("VarInt encodes the wiki.vg sample values", "[mc][varint]") {
  CHECK(enc(0) == b({0x00}));
  CHECK(enc(1) == b({0x01}));
  CHECK(enc(2) == b({0x02}));
  CHECK(enc(127) == b({0x7f}));
  CHECK(enc(128) == b({0x80, 0x01}));
  CHECK(enc(255) == b({0xff, 0x01}));
  CHECK(enc(25565) == b({0xdd, 0xc7, 0x01}));
  CHECK(enc(2097151) == b({0xff, 0xff, 0x7f}));
  CHECK(enc(2147483647) == b({0xff, 0xff, 0xff, 0xff, 0x07}));
  CHECK(enc(-1) == b({0xff, 0xff, 0xff, 0xff, 0x0f}));
  CHECK(enc(std::numeric_limits<std::int32_t>::min()) == b({0x80, 0x80, 0x80, 0x80, 0x08}));
  CHECK(mc::varint_size(-1) == 5);
  CHECK(mc::varint_size(127) == 1);
  CHECK(mc::varint_size(128) == 2);
}

TEST_CASE("VarInt decodes the samples and reports the bytes used", "[mc][varint]") {
  for (std::int32_t v : {0, 1, 127, 128, 255, 25565, 2097151, 2147483647, -1, -2147483647 - 1}) {
    auto bytes = enc(v);
    bytes.push_back(std::byte{0x42});  // a following byte is not consumed
    auto r = mc::decode_varint(bytes);
    REQUIRE(r.is_ok());
    CHECK(r.value() == v);
    CHECK(r.size() == bytes.size() - 1);
  }
}

TEST_CASE("VarInt truncated anywhere is need_more", "[mc][varint]") {
  const auto full = enc(-1);
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = mc::decode_varint(mc::byte_view(full).first(n));
    CHECK(r.need_more());
  }
}

TEST_CASE("VarInt rejects too many bytes, overflow and overlong forms", "[mc][varint]") {
  CHECK(mc::decode_varint(b({0xff, 0xff, 0xff, 0xff, 0xff, 0x01})).error() == mc::error::varint_too_long);
  CHECK(mc::decode_varint(b({0x80, 0x80, 0x80, 0x80, 0x80})).error() == mc::error::varint_too_long);
  // 5th byte may only carry 4 bits
  CHECK(mc::decode_varint(b({0xff, 0xff, 0xff, 0xff, 0x1f})).error() == mc::error::varint_overflow);
  CHECK(mc::decode_varint(b({0x80, 0x80, 0x80, 0x80, 0x70})).error() == mc::error::varint_overflow);
  // overlong encodings of 0 and 1
  CHECK(mc::decode_varint(b({0x80, 0x00})).error() == mc::error::varint_non_minimal);
  CHECK(mc::decode_varint(b({0x81, 0x80, 0x00})).error() == mc::error::varint_non_minimal);
  CHECK(mc::decode_varint(b({0x80, 0x80, 0x80, 0x80, 0x00})).error() == mc::error::varint_non_minimal);
  // errors come from the downstream (client) side
  CHECK(mc::make_error_code(mc::error::varint_too_long) == rproxy::condition::downstream);
  CHECK(mc::make_error_code(mc::error::varint_too_long) != rproxy::condition::retry_safe);
}

TEST_CASE("VarLong encodes and decodes the wiki.vg sample values", "[mc][varint]") {
  struct sample {
    std::int64_t v;
    mc::bytes wire;
  };
  const std::vector<sample> samples = {
      {0, b({0x00})},
      {1, b({0x01})},
      {127, b({0x7f})},
      {128, b({0x80, 0x01})},
      {255, b({0xff, 0x01})},
      {2147483647, b({0xff, 0xff, 0xff, 0xff, 0x07})},
      {9223372036854775807, b({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})},
      {-1, b({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
      {-2147483648, b({0x80, 0x80, 0x80, 0x80, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x01})},
      {std::numeric_limits<std::int64_t>::min(),
       b({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})},
  };
  for (const auto& s : samples) {
    CAPTURE(s.v);
    CHECK(enc_long(s.v) == s.wire);
    CHECK(mc::varlong_size(s.v) == s.wire.size());
    auto r = mc::decode_varlong(s.wire);
    REQUIRE(r.is_ok());
    CHECK(r.value() == s.v);
    CHECK(r.size() == s.wire.size());
    for (std::size_t n = 0; n < s.wire.size(); ++n)
      CHECK(mc::decode_varlong(mc::byte_view(s.wire).first(n)).need_more());
  }
}

TEST_CASE("VarLong rejects too many bytes, overflow and overlong forms", "[mc][varint]") {
  auto eleven = b({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00});
  CHECK(mc::decode_varlong(eleven).error() == mc::error::varint_too_long);
  CHECK(mc::decode_varlong(b({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})).error() ==
        mc::error::varint_overflow);
  CHECK(mc::decode_varlong(b({0xff, 0x00})).error() == mc::error::varint_non_minimal);
}

TEST_CASE("every 32-bit boundary value round-trips", "[mc][varint]") {
  for (int shift = 0; shift < 32; ++shift) {
    for (std::int64_t delta : {-1, 0, 1}) {
      const auto v = static_cast<std::int32_t>(static_cast<std::uint32_t>((std::int64_t{1} << shift) + delta));
      auto e = enc(v);
      CHECK(e.size() == mc::varint_size(v));
      auto r = mc::decode_varint(e);
      REQUIRE(r.is_ok());
      CHECK(r.value() == v);
    }
  }
}
