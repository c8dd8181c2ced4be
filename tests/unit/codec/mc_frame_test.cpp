#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <vector>

namespace mc = rproxy::codec::mc;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}
}  // namespace

TEST_CASE("a frame is a VarInt length and that many bytes", "[mc][frame]") {
  const auto wire = b({0x03, 0x00, 0x01, 0x02, 0x99});
  auto f = mc::decode_frame(wire);
  REQUIRE(f.is_ok());
  CHECK(f.size() == 4);
  CHECK(mc::bytes(f->payload.begin(), f->payload.end()) == b({0x00, 0x01, 0x02}));
  CHECK(f->raw.size() == 4);
  CHECK(f->raw.data() == wire.data());

  mc::bytes out;
  mc::append_frame(out, b({0x00, 0x01, 0x02}));
  CHECK(out == b({0x03, 0x00, 0x01, 0x02}));
}

TEST_CASE("a partial frame is need_more at every split", "[mc][frame]") {
  mc::bytes payload(300, std::byte{7});
  mc::bytes wire;
  mc::append_frame(wire, payload);
  REQUIRE(wire.size() == 302);  // 2-byte length prefix
  for (std::size_t n = 0; n < wire.size(); ++n) CHECK(mc::decode_frame(mc::byte_view(wire).first(n)).need_more());
  CHECK(mc::decode_frame(wire).is_ok());
}

TEST_CASE("bogus lengths are errors, early", "[mc][frame]") {
  CHECK(mc::decode_frame(b({0x00})).error() == mc::error::empty_frame);
  CHECK(mc::decode_frame(b({0x80, 0x00})).error() == mc::error::varint_non_minimal);
  // over a 2048 limit: 2049 = 0x81 0x10
  CHECK(mc::decode_frame(b({0x81, 0x10}), 2048).error() == mc::error::frame_too_large);
  CHECK(mc::decode_frame(b({0x80, 0x10}), 2048).need_more());  // exactly 2048: wait for it
  // a third length byte cannot fit a 2048 limit: refused before it arrives
  CHECK(mc::decode_frame(b({0x80, 0x80}), 2048).error() == mc::error::frame_too_large);
  CHECK(mc::decode_frame(b({0xff}), 2048).need_more());
  // the vanilla limit is 3 bytes of length
  CHECK(mc::decode_frame(b({0xff, 0xff, 0xff})).error() == mc::error::frame_too_large);
  CHECK(mc::decode_frame(b({0xff, 0xff, 0x7f})).need_more());  // 2097151: allowed
  // a 5-byte negative length, with a limit that allows 5-byte prefixes
  CHECK(mc::decode_frame(b({0xff, 0xff, 0xff, 0xff, 0x0f}), 0x7fffffff).error() == mc::error::negative_length);
  CHECK(mc::decode_frame(b({0xff, 0xff, 0xff, 0xff, 0xff}), 0x7fffffff).error() == mc::error::varint_too_long);
}

TEST_CASE("packet_reader returns packets from any split and keeps raw bytes", "[mc][frame]") {
  mc::bytes stream;
  mc::append_frame(stream, b({0x00, 0xaa}));
  mc::append_frame(stream, b({0x01, 1, 2, 3, 4, 5, 6, 7, 8}));
  mc::append_frame(stream, b({0x7f}));
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    mc::packet_reader in;
    std::vector<std::int32_t> ids;
    std::vector<mc::bytes> raws;
    auto drain = [&] {
      for (auto r = in.next(); r; r = in.next()) {
        ids.push_back(r->id);
        raws.emplace_back(r->raw.begin(), r->raw.end());
      }
    };
    in.feed(mc::byte_view(stream).first(split));
    drain();
    in.feed(mc::byte_view(stream).subspan(split));
    drain();
    CHECK(ids == std::vector<std::int32_t>{0x00, 0x01, 0x7f});
    mc::bytes joined;
    for (auto& r : raws) joined.insert(joined.end(), r.begin(), r.end());
    CHECK(joined == stream);
    CHECK(in.unread().empty());
  }
}

TEST_CASE("packet_reader: prepare/commit, unread, sticky errors", "[mc][frame]") {
  mc::packet_reader in{16};
  auto room = in.prepare(4);
  room[0] = std::byte{0x02};
  room[1] = std::byte{0x05};
  room[2] = std::byte{0x01};
  room[3] = std::byte{0xee};
  in.commit(4);
  auto p = in.next();
  REQUIRE(p);
  CHECK(p->id == 5);
  CHECK(p->fields.size() == 1);
  CHECK(in.unread().size() == 1);
  // 0xee needs a second length byte, which cannot fit a limit of 16: refused at once
  auto e = in.next();
  REQUIRE(e.failed());
  CHECK(e.error() == mc::error::frame_too_large);
  in.feed(b({0x01, 0x00}));
  CHECK(in.next().error() == mc::error::frame_too_large);  // stays failed
  CHECK(in.error() == mc::error::frame_too_large);

  mc::packet_reader lax;
  lax.feed(b({0xee, 0x00}));  // an overlong length VarInt
  CHECK(lax.next().error() == mc::error::varint_non_minimal);
}

TEST_CASE("packet_reader enforces its limit and can change it", "[mc][frame]") {
  mc::packet_reader in{4};
  in.feed(b({0x05, 0, 0, 0, 0, 0}));
  CHECK(in.next().error() == mc::error::frame_too_large);
  mc::packet_reader big{4};
  big.set_max_length(8);
  big.feed(b({0x05, 0, 0, 0, 0, 0}));
  CHECK(big.next());
}
