// net/quic/token.hpp: Retry tokens. The MAC is checked against OpenSSL's HMAC-SHA-256 over the
// documented layout (an implementation other than the GnuTLS one the token uses).
#include <catch2/catch.hpp>

#include <rproxy/net/quic/token.hpp>

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

namespace quic = rproxy::net::quic;
using namespace std::chrono_literals;

namespace {

// In a sockaddr_storage, as the endpoint's paths hold them (g++ -O3 sees the AF_INET6 branch
// read past a bare sockaddr_in and warns).
quic::address_bytes v4(const char* ip, std::uint16_t port) {
  sockaddr_storage s{};
  auto& a = reinterpret_cast<sockaddr_in&>(s);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return quic::address_bytes::of(reinterpret_cast<const sockaddr*>(&s));
}
quic::address_bytes v6(const char* ip, std::uint16_t port) {
  sockaddr_storage s{};
  auto& a = reinterpret_cast<sockaddr_in6&>(s);
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return quic::address_bytes::of(reinterpret_cast<const sockaddr*>(&s));
}

constexpr std::array<std::uint8_t, 32> key_bytes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
constexpr ngtcp2_tstamp t0 = 5'000'000'000'000ull;

}  // namespace

TEST_CASE("token layout and MAC match an independent HMAC-SHA-256 (OpenSSL)", "[quic]") {
  const auto key = quic::token_key::from(key_bytes);
  const auto odcid = quic::connection_id::from(std::array<std::uint8_t, 8>{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}.data(), 8);
  const auto addr = v4("192.0.2.7", 4433);
  const auto t = key.make(addr, odcid, t0);
  REQUIRE(t.size() == 1 + 8 + 1 + 8 + 32);
  CHECK(t[0] == 0x52);
  ngtcp2_tstamp issued = 0;
  for (int i = 0; i < 8; ++i) issued = (issued << 8) | t[1 + i];
  CHECK(issued == t0);
  CHECK(t[9] == 8);
  CHECK(std::memcmp(&t[10], odcid.bytes.data(), 8) == 0);
  // MAC = HMAC-SHA-256(key, token body || 4 | IPv4 | port (network order))
  std::vector<std::uint8_t> msg(t.begin(), t.begin() + 18);
  const std::uint8_t a[] = {4, 192, 0, 2, 7, 0x11, 0x51};
  msg.insert(msg.end(), a, a + sizeof a);
  std::array<std::uint8_t, 32> want{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key_bytes.data(), key_bytes.size(), msg.data(), msg.size(), want.data(), &len);
  REQUIRE(len == 32);
  CHECK(std::memcmp(&t[18], want.data(), 32) == 0);
}

TEST_CASE("a token validates for its address within its lifetime, and gives back the original DCID", "[quic]") {
  const auto key = quic::token_key::generate();
  const auto odcid = quic::make_cid(0);
  for (const auto& addr : {v4("127.0.0.1", 50000), v6("::1", 50000)}) {
    const auto t = key.make(addr, odcid, t0);
    auto r = key.validate(t, addr, t0 + 1'000'000'000ull, 10s);
    REQUIRE(r);
    CHECK(*r == odcid);
  }
  const auto empty = quic::connection_id{};  // a zero-length original DCID is legal
  auto r = key.validate(key.make(v4("127.0.0.1", 1), empty, t0), v4("127.0.0.1", 1), t0, 10s);
  REQUIRE(r);
  CHECK(r->size == 0);
}

TEST_CASE("a token is refused from another address, after its lifetime, from another key, or altered", "[quic]") {
  const auto key = quic::token_key::generate();
  const auto addr = v4("127.0.0.1", 50000);
  const auto t = key.make(addr, quic::make_cid(1), t0);
  CHECK(key.validate(t, v4("127.0.0.1", 50001), t0, 10s).error() == quic::token_error::bad_mac);  // other port
  CHECK(key.validate(t, v4("127.0.0.2", 50000), t0, 10s).error() == quic::token_error::bad_mac);  // other IP
  CHECK(key.validate(t, v6("::ffff:127.0.0.1", 50000), t0, 10s).error() == quic::token_error::bad_mac);  // other family
  CHECK(key.validate(t, addr, t0 + 11'000'000'000ull, 10s).error() == quic::token_error::expired);
  CHECK(key.validate(t, addr, t0 - 1, 10s).error() == quic::token_error::expired);  // issued in the future
  CHECK(quic::token_key::generate().validate(t, addr, t0, 10s).error() == quic::token_error::bad_mac);
  for (std::size_t i = 1; i < t.size(); ++i) {  // every byte but the kind: MAC or length check
    if (i == 9) continue;
    auto bad = t;
    bad[i] ^= 0x01;
    CHECK(key.validate(bad, addr, t0, 10s).error() == quic::token_error::bad_mac);
  }
}

TEST_CASE("malformed tokens: bounded reads, a clear error", "[quic]") {
  const auto key = quic::token_key::generate();
  const auto addr = v4("127.0.0.1", 1);
  const auto t = key.make(addr, quic::make_cid(0), t0);
  CHECK(key.validate({}, addr, t0, 10s).error() == quic::token_error::malformed);
  for (std::size_t n = 0; n < t.size(); ++n)
    CHECK(key.validate(std::span(t).first(n), addr, t0, 10s).error() == quic::token_error::malformed);
  auto wrong_kind = t;
  wrong_kind[0] = 0x4e;
  CHECK(key.validate(wrong_kind, addr, t0, 10s).error() == quic::token_error::malformed);
  auto long_cid = t;
  long_cid[9] = 21;  // more than 20 bytes of CID
  CHECK(key.validate(long_cid, addr, t0, 10s).error() == quic::token_error::malformed);
  auto longer = t;
  longer.push_back(0);
  CHECK(key.validate(longer, addr, t0, 10s).error() == quic::token_error::malformed);
  CHECK(quic::address_bytes::of(nullptr).size == 0);
}
