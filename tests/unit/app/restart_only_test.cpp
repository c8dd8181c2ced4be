#include <rproxy/app/restart_only.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>

namespace app = rproxy::app;

namespace {

struct link_block {
  rproxy::config::endpoint address{"127.0.0.1", 6379};
  std::string key_prefix = "p:";
  std::vector<std::string> hosts;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&link_block::address>("where"), cfg::doc<&link_block::key_prefix>("prefix"),
                       cfg::doc<&link_block::hosts>("hosts"));
  }
};

}  // namespace

TEST_CASE("restart keys: value_text is the value as init writes it (YAML), on one line", "[app]") {
  CHECK(app::value_text(std::string("a.log")) == "\"a.log\"");
  CHECK(app::value_text(std::optional<rproxy::config::endpoint>{}) == "null");
  link_block b;
  CHECK(app::value_text(b) == R"(address: "127.0.0.1:6379"; key_prefix: "p:"; hosts: [])");
  b.hosts = {"x", "y"};
  CHECK(app::value_text(b) == R"(address: "127.0.0.1:6379"; key_prefix: "p:"; hosts:; - "x"; - "y")");
}

TEST_CASE("restart keys: changed_keys names every key whose value differs, or that one list lacks", "[app]") {
  const app::restart_keys running{{"listen", "127.0.0.1:1"}, {"tls", "off"}, {"audit", "file: a"}};
  CHECK(app::changed_keys(running, running).empty());
  CHECK(app::changed_keys(running, {{"listen", "127.0.0.1:2"}, {"tls", "off"}, {"audit", "file: a"}}) == "listen");
  CHECK(app::changed_keys(running, {{"listen", "127.0.0.1:2"}, {"tls", "on"}, {"audit", "file: b"}}) == "listen, tls, audit");
  CHECK(app::changed_keys(running, {{"listen", "127.0.0.1:1"}, {"tls", "off"}}) == "audit");
  CHECK(app::changed_keys({}, {{"redis", "x"}}) == "redis");
}

TEST_CASE("restart keys: printed one a line, an empty value as (unset); nothing for no keys", "[app]") {
  std::ostringstream out;
  app::print_restart_keys(out, {{"listen", "127.0.0.1:8095"}, {"redis", ""}});
  CHECK(out.str() ==
        "restart-only keys (a reload keeps the values the process started with):\n"
        "  listen: 127.0.0.1:8095\n"
        "  redis: (unset)\n");
  std::ostringstream none;
  app::print_restart_keys(none, {});
  CHECK(none.str().empty());
}

struct with_keys {
  app::restart_keys restart_only() const { return {{"listen", "x"}}; }
};
struct without_keys {};
TEST_CASE("restart keys: a config lists them with restart_only()", "[app]") {
  STATIC_REQUIRE(app::lists_restart_keys<with_keys>);
  STATIC_REQUIRE_FALSE(app::lists_restart_keys<without_keys>);
}
