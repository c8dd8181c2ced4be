// Tests for rproxy/app/config_blocks.hpp: the admin block and the YAML names of the PROXY
// protocol modes, as an app's config declares them.
#include <rproxy/app/config_blocks.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <string>

namespace cfg = rproxy::config;
namespace net = rproxy;  // the PROXY modes are rproxy::proxy_accept / proxy_send (net/ names them too)

namespace cbt {
struct app_config {
  rproxy::app::admin_config admin{};
  rproxy::proxy_accept accept = rproxy::proxy_accept::none;
  rproxy::proxy_send send = rproxy::proxy_send::none;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&app_config::admin>(), cfg::doc<&app_config::accept>(), cfg::doc<&app_config::send>());
  }
};
}  // namespace cbt

namespace {
using cbt::app_config;

std::string error_of(const std::string& yaml) {
  auto r = cfg::load_string<app_config>(yaml, "app.yaml");
  REQUIRE_FALSE(r);
  REQUIRE(r.error().size() == 1);
  return r.error()[0].to_string();
}
}  // namespace

TEST_CASE("config_blocks: defaults: no admin endpoint, PROXY protocol off both ways", "[app][config_blocks]") {
  auto r = cfg::load_string<app_config>("", "app.yaml");
  REQUIRE(r);
  CHECK_FALSE(r->admin.listen);
  CHECK(r->accept == net::proxy_accept::none);
  CHECK(r->send == net::proxy_send::none);
}

TEST_CASE("config_blocks: admin listen and every PROXY protocol mode by its YAML name", "[app][config_blocks]") {
  auto r = cfg::load_string<app_config>("admin: {listen: 127.0.0.1:9901}\naccept: optional\nsend: v2\n", "app.yaml");
  REQUIRE(r);
  REQUIRE(r->admin.listen);
  CHECK(*r->admin.listen == cfg::endpoint{"127.0.0.1", 9901});
  CHECK(r->accept == net::proxy_accept::optional);
  CHECK(r->send == net::proxy_send::v2);
  auto r2 = cfg::load_string<app_config>("accept: required\nsend: v1\n", "app.yaml");
  REQUIRE(r2);
  CHECK(r2->accept == net::proxy_accept::required);
  CHECK(r2->send == net::proxy_send::v1);
  auto r3 = cfg::load_string<app_config>("accept: none\nsend: none\n", "app.yaml");
  REQUIRE(r3);
  CHECK(r3->accept == net::proxy_accept::none);
  CHECK(r3->send == net::proxy_send::none);
}

TEST_CASE("config_blocks: bad values are refused with the place and the choices", "[app][config_blocks]") {
  const auto bad_mode = error_of("send: v3\n");
  CHECK(bad_mode.starts_with("app.yaml:1:7: "));
  CHECK(bad_mode.find("'v3'") != std::string::npos);
  CHECK(bad_mode.find("none") != std::string::npos);
  CHECK(bad_mode.find("v1") != std::string::npos);
  CHECK(bad_mode.find("v2") != std::string::npos);
  const auto bad_accept = error_of("accept: maybe\n");
  CHECK(bad_accept.find("optional") != std::string::npos);
  CHECK(bad_accept.find("required") != std::string::npos);
  CHECK(error_of("admin: {lisen: 127.0.0.1:1}\n") == "app.yaml:1:9: unknown key 'lisen' (did you mean 'listen'?)");
  const auto bad_endpoint = error_of("admin: {listen: nowhere}\n");
  CHECK(bad_endpoint.starts_with("app.yaml:1:17: "));
  CHECK(bad_endpoint.find("missing port") != std::string::npos);
}

TEST_CASE("config_blocks: the enum names are the ones documented", "[app][config_blocks]") {
  constexpr auto accepts = config_enum_names(net::proxy_accept{});
  STATIC_REQUIRE(accepts.size() == 3);
  CHECK(accepts[0].name == std::string_view("none"));
  CHECK(accepts[1].name == std::string_view("optional"));
  CHECK(accepts[2].name == std::string_view("required"));
  constexpr auto sends = config_enum_names(net::proxy_send{});
  STATIC_REQUIRE(sends.size() == 3);
  CHECK(sends[1].value == net::proxy_send::v1);
  CHECK(sends[2].value == net::proxy_send::v2);
}
