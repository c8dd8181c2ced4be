// Tests for rproxy/config/reference_markdown.hpp: one table per struct, every field with its
// type, default and description, generated from the same declaration that decodes.
#include <catch2/catch.hpp>

#include <rproxy/config/reference_markdown.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rm {

enum class balance { round_robin, least_conn };
constexpr auto config_enum_names(balance) {
  using rproxy::config::enum_name;
  return std::array{enum_name{"round_robin", balance::round_robin}, enum_name{"least_conn", balance::least_conn}};
}

struct limit {
  unsigned per_second = 10;
  unsigned burst = 20;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&limit::per_second>(), doc<&limit::burst>());
  }
};

struct backend {
  rproxy::config::endpoint address;
  unsigned weight = 1;
  static constexpr std::string_view summary = "one server";
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&backend::address>("where the server listens"), doc<&backend::weight>("share | weight"));
  }
};

struct route {
  std::vector<std::string> hosts{"a.example", "b.example"};
  std::vector<backend> backends;
  balance strategy = balance::least_conn;
  limit logins;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&route::hosts>(), doc<&route::backends>(), doc<&route::strategy>(), doc<&route::logins>());
  }
};

struct proxy {
  rproxy::config::endpoint listen{"0.0.0.0", 25565};
  std::chrono::seconds idle_timeout{30};
  std::map<std::string, route> routes;
  std::optional<limit> pings;           // same struct as route.logins: one section
  std::optional<std::string> motd;
  std::map<std::string, int> weights{{"a", 1}};
  std::vector<backend> spares{backend{}};

  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&proxy::listen>("address to accept players on"),
                  doc<&proxy::idle_timeout>("close connections idle this long"), doc<&proxy::routes>("routes by name"),
                  doc<&proxy::pings>(), doc<&proxy::motd>(), doc<&proxy::weights>(), doc<&proxy::spares>());
  }
};

}  // namespace rm

namespace cfg = rproxy::config;

TEST_CASE("reference_markdown: a table per struct, every field", "[config]") {
  const std::string md = cfg::reference_markdown<rm::proxy>("mc-proxy configuration");
  INFO(md);
  const std::string expected = R"(# mc-proxy configuration

## Top level

| key | type | default | description |
|---|---|---|---|
| `listen` | endpoint | **required** | address to accept players on |
| `idle_timeout` | duration | `30s` | close connections idle this long |
| `routes` | map of route, see `routes.<name>` | `{}` | routes by name |
| `pings` | limit, see `routes.<name>.logins` | none |  |
| `motd` | string | none |  |
| `weights` | map of int32 | `{a: 1}` |  |
| `spares` | list of backend, see `routes.<name>.backends[]` | 1 entry |  |

## `routes.<name>`

Type `route`.

| key | type | default | description |
|---|---|---|---|
| `hosts` | list of string | `["a.example", "b.example"]` |  |
| `backends` | list of backend, see `routes.<name>.backends[]` | `[]` |  |
| `strategy` | one of round_robin, least_conn | `least_conn` |  |
| `logins` | limit, see `routes.<name>.logins` | see `routes.<name>.logins` |  |

## `routes.<name>.backends[]`

Type `backend`: one server

| key | type | default | description |
|---|---|---|---|
| `address` | endpoint | **required** | where the server listens |
| `weight` | uint32 | `1` | share \| weight |

## `routes.<name>.logins`

Type `limit`.

| key | type | default | description |
|---|---|---|---|
| `per_second` | uint32 | `10` |  |
| `burst` | uint32 | `20` |  |
)";
  CHECK(md == expected);
}

TEST_CASE("reference_markdown: every field of every struct appears", "[config]") {
  const std::string md = cfg::reference_markdown<rm::proxy>();
  CHECK(md.rfind("# Configuration reference\n", 0) == 0);
  auto has_all = [&](const auto& metas) {
    for (const auto& m : metas) {
      INFO(m.name);
      CHECK(md.find("| `" + std::string(m.name) + "` |") != std::string::npos);
    }
  };
  has_all(cfg::field_metas<rm::proxy>());
  has_all(cfg::field_metas<rm::route>());
  has_all(cfg::field_metas<rm::backend>());
  has_all(cfg::field_metas<rm::limit>());
}
