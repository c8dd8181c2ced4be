#include <rproxy/codec/mc/compression.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <numeric>

namespace mc = rproxy::codec::mc;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}
mc::bytes pattern(std::size_t n) {
  mc::bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7) % 13);
  return out;
}
}  // namespace

TEST_CASE("zlib round trip with an exact size", "[mc][compression]") {
  const auto data = pattern(100000);
  mc::bytes z;
  mc::zlib_compress(z, data);
  CHECK(z.size() < data.size());
  CHECK(static_cast<unsigned>(z[0]) == 0x78);  // zlib header, not raw deflate or gzip
  mc::bytes out;
  REQUIRE(mc::zlib_decompress(out, z, data.size()));
  CHECK(out == data);
  // declared size off by one either way
  out.clear();
  CHECK(mc::zlib_decompress(out, z, data.size() - 1).error() == mc::error::decompression_failed);
  CHECK(out.empty());
  CHECK(mc::zlib_decompress(out, z, data.size() + 1).error() == mc::error::decompression_failed);
  // truncated and corrupt streams, trailing bytes
  CHECK_FALSE(mc::zlib_decompress(out, mc::byte_view(z).first(z.size() / 2), data.size()));
  auto corrupt = z;
  corrupt[5] ^= std::byte{0xff};
  CHECK_FALSE(mc::zlib_decompress(out, corrupt, data.size()));
  auto trailing = z;
  trailing.push_back(std::byte{0});
  CHECK_FALSE(mc::zlib_decompress(out, trailing, data.size()));
}

TEST_CASE("frames below the threshold carry data length 0", "[mc][compression]") {
  const mc::compression c{256};
  mc::bytes out;
  mc::append_packet(out, b({0x00, 0x05, 0x41}), c);
  CHECK(out == b({0x04, 0x00, 0x00, 0x05, 0x41}));
  mc::bytes scratch;
  auto body = mc::decode_compressed_payload(mc::byte_view(out).subspan(1), c, scratch);
  REQUIRE(body);
  CHECK(mc::bytes(body->begin(), body->end()) == b({0x00, 0x05, 0x41}));
}

TEST_CASE("frames at or over the threshold are compressed and inflate back", "[mc][compression]") {
  const mc::compression c{256};
  auto body = pattern(256);
  body[0] = std::byte{0x22};  // packet id
  mc::bytes out;
  mc::append_packet(out, body, c);
  auto f = mc::decode_frame(out);
  REQUIRE(f);
  CHECK(f.size() == out.size());
  // data length = 256 = 0x80 0x02, then a zlib stream
  CHECK(static_cast<unsigned>(f->payload[0]) == 0x80);
  CHECK(static_cast<unsigned>(f->payload[1]) == 0x02);
  CHECK(static_cast<unsigned>(f->payload[2]) == 0x78);
  mc::bytes scratch;
  auto got = mc::decode_compressed_payload(f->payload, c, scratch);
  REQUIRE(got);
  CHECK(mc::bytes(got->begin(), got->end()) == body);
}

TEST_CASE("compressed lengths are checked before inflating", "[mc][compression]") {
  mc::compression c{256};
  mc::bytes scratch;
  mc::bytes z;
  mc::zlib_compress(z, pattern(100));
  // declared 100 < threshold 256: "badly compressed packet"
  mc::bytes payload = b({100});
  mc::append(payload, z);
  CHECK(mc::decode_compressed_payload(payload, c, scratch).error() == mc::error::bad_compressed_length);
  // negative data length
  CHECK(mc::decode_compressed_payload(b({0xff, 0xff, 0xff, 0xff, 0x0f, 0x78}), c, scratch).error() ==
        mc::error::bad_compressed_length);
  // over the limit: 8 MiB + 1 = 0x81 0x80 0x80 0x04
  CHECK(mc::decode_compressed_payload(b({0x81, 0x80, 0x80, 0x04, 0x78}), c, scratch).error() ==
        mc::error::bad_compressed_length);
  // uncompressed over the threshold: accepted like vanilla, refused when strict
  mc::bytes raw = b({0x00});
  mc::append(raw, pattern(300));
  CHECK(mc::decode_compressed_payload(raw, c, scratch));
  c.strict_threshold = true;
  CHECK(mc::decode_compressed_payload(raw, c, scratch).error() == mc::error::bad_compressed_length);
  // an empty payload has no data length
  CHECK(mc::decode_compressed_payload({}, c, scratch).error() == mc::error::truncated);
}

TEST_CASE("a zip bomb stops at the declared size", "[mc][compression]") {
  // 64 MiB of zeros compresses to ~64 KiB; declare 1 MiB: inflating must stop right after it.
  mc::bytes zeros(64u << 20);
  mc::bytes z;
  mc::zlib_compress(z, zeros, 9);
  zeros = {};
  REQUIRE(z.size() < (1u << 20));
  mc::compression c{256};
  mc::bytes payload;
  mc::append_varint(payload, 1 << 20);
  mc::append(payload, z);
  mc::bytes scratch;
  CHECK(mc::decode_compressed_payload(payload, c, scratch).error() == mc::error::decompression_failed);
  CHECK(scratch.capacity() <= (2u << 20) + 16);  // never grew far past the declared size
  // and a lower max refuses the declaration outright
  c.max_uncompressed = 1000;
  CHECK(mc::decode_compressed_payload(payload, c, scratch).error() == mc::error::bad_compressed_length);
}

TEST_CASE("packet_reader switches to compressed frames", "[mc][compression]") {
  const mc::compression c{64};
  mc::bytes stream;
  mc::append_frame(stream, b({0x03, 0x40}));  // Set Compression 64, itself uncompressed
  auto big = pattern(500);
  big[0] = std::byte{0x10};
  mc::append_packet(stream, big, c);
  mc::append_packet(stream, b({0x11, 0x01}), c);

  mc::packet_reader in;
  in.feed(stream);
  auto p = in.next();
  REQUIRE(p);
  CHECK(p->id == 3);
  in.set_compression(c);
  p = in.next();
  REQUIRE(p);
  CHECK(p->id == 0x10);
  CHECK(mc::bytes(p->body.begin(), p->body.end()) == big);
  CHECK(p->raw.size() < big.size());  // raw is the compressed frame
  p = in.next();
  REQUIRE(p);
  CHECK(p->id == 0x11);
  CHECK(p->fields.size() == 1);
}
