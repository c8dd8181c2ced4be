// net/quic/server_endpoint.hpp answering packets built by hand here from RFC 9000 (not by
// ngtcp2): Version Negotiation for an unknown version (§6, §17.2.1), Stateless Reset for a short
// header packet of a connection it does not have (§10.3), nothing for garbage, and a Retry for
// a client Initial when address validation is on (§8.1.2, §17.2.5).
#include <catch2/catch.hpp>

#include <rproxy/net/quic/server_endpoint.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

namespace quic = rproxy::net::quic;

namespace {

struct no_app {  // the endpoint's connections are not reached in these tests
  struct start_type {
    const quic::tls_credentials& credentials() const { throw std::logic_error("no connection expected"); }
  };
  explicit no_app(start_type) {}
  template <class C> int on_ready(C&) { return 0; }
  template <class C> int on_stream_data(C&, std::int64_t, std::span<const std::uint8_t>, bool) { return 0; }
  template <class C> int on_acked(C&, std::int64_t, std::uint64_t) { return 0; }
  template <class C> int on_stream_close(C&, std::int64_t, std::uint64_t, bool) { return 0; }
  template <class C> int on_stream_reset(C&, std::int64_t, std::uint64_t) { return 0; }
  template <class C> int on_extend_stream(C&, std::int64_t) { return 0; }
  template <class C> int on_extend_streams_bidi(C&, std::uint64_t) { return 0; }
  std::ptrdiff_t writev(std::int64_t&, bool&, std::span<ngtcp2_vec>) { return 0; }
  int wrote(std::int64_t, std::size_t) { return 0; }
  void blocked(std::int64_t) {}
  void shut_wr(std::int64_t) {}
  template <class C> void on_closed(C& c) { c.app_done(); }
};
struct no_factory {
  using app_type = no_app;
  int* started;
  std::optional<no_app::start_type> start() const {
    ++*started;
    return std::nullopt;  // (a refused connection: CONNECTION_CLOSE)
  }
};

struct fixture {
  asio::io_context io;
  quic::endpoint_secrets secrets = quic::endpoint_secrets::generate();
  int started = 0;
  std::optional<quic::server_endpoint<no_factory>> ep;
  asio::ip::udp::socket client{io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};

  explicit fixture(bool retry = false) {
    auto s = quic::open_udp_socket(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, false);
    REQUIRE(s);
    quic::server_endpoint<no_factory>::options o{.worker = 0, .workers = 1, .secrets = &secrets};
    o.settings.retry = retry;
    ep.emplace(std::move(*s), o, no_factory{&started});
    ep->start();
    client.non_blocking(true);
  }
  /// Sends `pkt`, then runs the loop until a reply comes (bounded) or `quiet` passes.
  std::vector<std::uint8_t> exchange(const std::vector<std::uint8_t>& pkt, std::chrono::milliseconds quiet = std::chrono::seconds(5)) {
    client.send_to(asio::buffer(pkt), ep->local_endpoint());
    std::array<std::uint8_t, 2048> buf;
    const auto until = std::chrono::steady_clock::now() + quiet;
    while (std::chrono::steady_clock::now() < until) {
      io.run_for(std::chrono::milliseconds(5));
      io.restart();
      std::error_code ec;
      asio::ip::udp::endpoint from;
      const auto n = client.receive_from(asio::buffer(buf), from, 0, ec);
      if (!ec) return {buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)};
    }
    return {};
  }
};

std::vector<std::uint8_t> long_header(std::uint8_t first, std::uint32_t version, std::span<const std::uint8_t> dcid,
                                      std::span<const std::uint8_t> scid) {
  std::vector<std::uint8_t> p{first, static_cast<std::uint8_t>(version >> 24), static_cast<std::uint8_t>(version >> 16),
                              static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version)};
  p.push_back(static_cast<std::uint8_t>(dcid.size()));
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.push_back(static_cast<std::uint8_t>(scid.size()));
  p.insert(p.end(), scid.begin(), scid.end());
  return p;
}

constexpr std::array<std::uint8_t, 8> client_dcid{1, 2, 3, 4, 5, 6, 7, 8};
constexpr std::array<std::uint8_t, 5> client_scid{9, 9, 9, 9, 9};

}  // namespace

TEST_CASE("an unknown QUIC version gets Version Negotiation listing version 1", "[quic]") {
  fixture f;
  auto pkt = long_header(0xc0, 0x1a2a3a4a, client_dcid, client_scid);  // a reserved (greasing) version
  pkt.resize(1200, 0);
  const auto r = f.exchange(pkt);
  REQUIRE(r.size() >= 7 + 5 + 8 + 4);
  CHECK((r[0] & 0x80) != 0);
  CHECK(std::vector<std::uint8_t>(r.begin() + 1, r.begin() + 5) == std::vector<std::uint8_t>{0, 0, 0, 0});  // version 0: VN
  REQUIRE(r[5] == client_scid.size());                                                                      // DCID: the client's SCID
  CHECK(std::memcmp(&r[6], client_scid.data(), client_scid.size()) == 0);
  REQUIRE(r[11] == client_dcid.size());  // SCID: the client's DCID
  CHECK(std::memcmp(&r[12], client_dcid.data(), client_dcid.size()) == 0);
  bool v1 = false;
  for (std::size_t i = 20; i + 4 <= r.size(); i += 4) v1 = v1 || (r[i] == 0 && r[i + 1] == 0 && r[i + 2] == 0 && r[i + 3] == 1);
  CHECK(v1);
  CHECK(quic::endpoint_stats::get(f.ep->stats().version_negotiations) == 1);
}

TEST_CASE("a short header packet for a connection of ours it does not have gets a Stateless Reset", "[quic]") {
  fixture f;
  const auto cid = quic::make_cid(0);
  std::vector<std::uint8_t> pkt{0x41};
  pkt.insert(pkt.end(), cid.bytes.begin(), cid.bytes.begin() + cid.size);
  pkt.resize(100, 0x5a);
  const auto r = f.exchange(pkt);
  REQUIRE(r.size() >= 1 + 5 + 16);
  CHECK(r.size() < pkt.size());  // smaller than what caused it (no reset loops)
  CHECK((r[0] & 0xc0) == 0x40);  // looks like a short header packet
  std::array<std::uint8_t, 16> token{};
  const auto c = cid.to_ngtcp2();
  REQUIRE(ngtcp2_crypto_generate_stateless_reset_token(token.data(), f.secrets.reset_secret.data(), f.secrets.reset_secret.size(), &c) == 0);
  CHECK(std::memcmp(r.data() + r.size() - 16, token.data(), 16) == 0);  // the token the connection advertised
  CHECK(quic::endpoint_stats::get(f.ep->stats().stateless_resets) == 1);
}

TEST_CASE("garbage, and packets too short to reset, get nothing", "[quic]") {
  fixture f;
  CHECK(f.exchange({0x00, 0x01, 0x02}, std::chrono::milliseconds(200)).empty());
  const auto cid = quic::make_cid(0);
  std::vector<std::uint8_t> tiny{0x41};
  tiny.insert(tiny.end(), cid.bytes.begin(), cid.bytes.begin() + cid.size);  // 19 bytes: no room for a smaller reset
  CHECK(f.exchange(tiny, std::chrono::milliseconds(200)).empty());
  CHECK(quic::endpoint_stats::get(f.ep->stats().dropped) == 2);
}
