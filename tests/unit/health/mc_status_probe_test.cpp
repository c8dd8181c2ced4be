// Tests for rproxy/health/mc_status_probe.hpp's make_mc_status_probe: the probe of a Minecraft
// server pool from its backends as a config lists them. (The status exchange itself runs against
// real servers in tests/e2e/mc_proxy_test.py.)
#include <rproxy/health/mc_status_probe.hpp>

#include <rproxy/balance/upstream_config.hpp>

#include <catch2/catch.hpp>

#include <utility>
#include <vector>

TEST_CASE("make_mc_status_probe: asks as host:port; a PROXY header for the backends that want one", "[health][mc]") {
  namespace bal = rproxy::balance;
  const std::vector<bal::backend_settings> backends{
      {.address = {"127.0.0.1", 25566}},
      {.address = {"127.0.0.1", 25567}, .send_proxy_protocol = rproxy::proxy_send::v1},
      {.address = {"::1", 25568}, .send_proxy_protocol = rproxy::proxy_send::v2},
  };
  const auto p = rproxy::health::make_mc_status_probe("lobby.example.com", 25565, backends);
  CHECK(p.query.host == "lobby.example.com");
  CHECK(p.query.port == 25565);
  using ep = asio::ip::tcp::endpoint;
  const std::vector<std::pair<ep, int>> want{{ep(asio::ip::make_address("127.0.0.1"), 25567), 1},
                                             {ep(asio::ip::make_address("::1"), 25568), 2}};
  CHECK(p.proxied == want);
}
