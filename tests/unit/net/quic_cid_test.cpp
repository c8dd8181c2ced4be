// net/quic/cid.hpp: the connection IDs rproxy issues name the worker that owns the connection.
#include <catch2/catch.hpp>

#include <rproxy/net/quic/cid.hpp>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>

namespace quic = rproxy::net::quic;

TEST_CASE("make_cid: cid_length bytes, the worker first, the rest random", "[quic]") {
  for (std::size_t w : {0u, 1u, 7u, 255u}) {
    const auto c = quic::make_cid(w);
    REQUIRE(c.size == quic::cid_length);
    CHECK(c.bytes[0] == w);
    CHECK(quic::cid_worker(c.span(), 256) == w);
  }
  std::set<std::string> seen;  // 1000 IDs of one worker: all different
  for (int i = 0; i < 1000; ++i) seen.insert(std::string(quic::make_cid(3).key()));
  CHECK(seen.size() == 1000);
}

TEST_CASE("cid_worker: only our length, only a worker that exists", "[quic]") {
  auto c = quic::make_cid(2);
  CHECK(quic::cid_worker(c.span(), 3) == 2u);
  CHECK_FALSE(quic::cid_worker(c.span(), 2));  // worker 2 of 2 workers: not ours
  CHECK_FALSE(quic::cid_worker(c.span(), 0));
  CHECK_FALSE(quic::cid_worker(c.span().first(quic::cid_length - 1), 3));  // a client's 17-byte DCID
  std::array<std::uint8_t, 20> longer{};
  CHECK_FALSE(quic::cid_worker(longer, 3));
  CHECK_FALSE(quic::cid_worker({}, 3));
}

TEST_CASE("connection_id: by value, ngtcp2 round trip, hashable, bounded", "[quic]") {
  const auto a = quic::make_cid(1);
  const auto n = a.to_ngtcp2();
  CHECK(n.datalen == quic::cid_length);
  CHECK(quic::connection_id::from(n) == a);
  std::unordered_map<quic::connection_id, int, quic::cid_hash> m;
  m[a] = 1;
  m[quic::make_cid(1)] = 2;
  CHECK(m.size() == 2);
  CHECK(m.at(quic::connection_id::from(n)) == 1);
  std::array<std::uint8_t, 40> big{};
  CHECK(quic::connection_id::from(big.data(), big.size()).size == 20);  // clamped to the RFC's maximum
}
