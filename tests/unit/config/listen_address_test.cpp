// Tests for rproxy/config/listen_address.hpp: a listener's endpoint must name an IP address,
// checked where the config declares it.
#include <rproxy/config/listen_address.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace lat {
namespace cfg = rproxy::config;
struct app_config {
  cfg::endpoint listen{"127.0.0.1", 8080};
  static constexpr auto describe() { return cfg::fields(cfg::doc<&app_config::listen>("where to listen")); }
  void validate(cfg::validator& v) const { cfg::validate_listen_address(v.at(&app_config::listen), listen); }
};
}  // namespace lat

TEST_CASE("is_ip_address: IPv4 and IPv6 (with a zone id) are; names are not", "[config]") {
  using rproxy::config::is_ip_address;
  CHECK(is_ip_address("0.0.0.0"));
  CHECK(is_ip_address("127.0.0.1"));
  CHECK(is_ip_address("::"));
  CHECK(is_ip_address("fe80::1%lo"));
  CHECK_FALSE(is_ip_address("localhost"));
  CHECK_FALSE(is_ip_address("1.2.3"));
  CHECK_FALSE(is_ip_address(""));
}

TEST_CASE("validate_listen_address: a host name is refused at the listen key's value", "[config]") {
  CHECK(rproxy::config::load_string<lat::app_config>("listen: \"[::1]:80\"\n", "app.yaml"));
  auto r = rproxy::config::load_string<lat::app_config>("listen: localhost:80\n", "app.yaml");
  REQUIRE_FALSE(r);
  REQUIRE(r.error().size() == 1);
  CHECK(r.error()[0].to_string() == "app.yaml:1:9: listen address must be an IP address: 'localhost'");
}
