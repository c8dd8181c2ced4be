// Tests for rproxy/config/validator.hpp: validate() hooks report cross-field errors at the line
// of the offending node, found by path.
#include <catch2/catch.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/validator.hpp>

#include <map>
#include <string>
#include <vector>

namespace vt {

struct limit {
  int min = 0;
  int max = 10;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&limit::min>(), doc<&limit::max>());
  }
  void validate(rproxy::config::validator& v) const {
    if (min > max) v.error(&limit::min, "min (" + std::to_string(min) + ") is above max (" + std::to_string(max) + ")");
  }
};

struct route {
  std::string pool;
  std::vector<std::string> fallbacks;
  limit connections;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&route::pool>(), doc<&route::fallbacks>(), doc<&route::connections>());
  }
};

struct backend_pool {
  std::vector<std::string> servers;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&backend_pool::servers>());
  }
};

struct proxy {
  std::map<std::string, route> routes;
  std::map<std::string, backend_pool> pools;
  std::string default_route;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&proxy::routes>(), doc<&proxy::pools>(), doc<&proxy::default_route>());
  }

  void validate(rproxy::config::validator& v) const {
    std::vector<std::string> names;
    for (const auto& [name, p] : pools) names.push_back(name);
    for (const auto& [name, r] : routes) {
      auto at = v.at(&proxy::routes).at(name);
      if (!pools.contains(r.pool)) {
        std::string msg = "route '" + name + "' names unknown backend pool '" + r.pool + "'";
        if (auto s = rproxy::config::did_you_mean(r.pool, names)) msg += " (did you mean '" + *s + "'?)";
        at.at(&route::pool).error(msg);
      }
      for (std::size_t i = 0; i < r.fallbacks.size(); ++i)
        if (!pools.contains(r.fallbacks[i]))
          at.at(&route::fallbacks).at(i).error("unknown fallback pool '" + r.fallbacks[i] + "'");
    }
    if (!default_route.empty() && !routes.contains(default_route))
      v.error(&proxy::default_route, "default_route '" + default_route + "' is not a route");
  }
};

}  // namespace vt

namespace {
namespace cfg = rproxy::config;

std::vector<std::string> errors_of(const std::string& yaml) {
  auto r = cfg::load_string<vt::proxy>(yaml, "proxy.yaml");
  REQUIRE_FALSE(r);
  std::vector<std::string> out;
  for (const auto& d : r.error()) {
    CHECK(d.code == cfg::error::invalid);
    out.push_back(d.to_string());
  }
  return out;
}
}  // namespace

TEST_CASE("validate: a good file passes every hook", "[config]") {
  auto r = cfg::load_string<vt::proxy>(R"(pools:
  main: {servers: [a]}
routes:
  lobby: {pool: main}
default_route: lobby
)");
  REQUIRE(r);
  CHECK(r->routes.at("lobby").pool == "main");
}

TEST_CASE("validate: cross-reference error at the line of the field", "[config]") {
  const std::string yaml = R"(pools:
  main:
    servers: [a, b]
routes:
  lobby:
    pool: mian
  games:
    pool: main
    fallbacks: [main, nope]
)";
  const std::vector<std::string> expected = {
      "proxy.yaml:6:11: route 'lobby' names unknown backend pool 'mian' (did you mean 'main'?)",
      "proxy.yaml:9:23: unknown fallback pool 'nope'",
  };
  CHECK(errors_of(yaml) == expected);
}

TEST_CASE("validate: nested hooks run with their own position", "[config]") {
  const std::string yaml = R"(pools: {main: {}}
routes:
  lobby:
    pool: main
    connections:
      max: 5
      min: 9
)";
  CHECK(errors_of(yaml) == std::vector<std::string>{"proxy.yaml:7:12: min (9) is above max (5)"});
}

TEST_CASE("validate: a field absent from the file reports at its nearest ancestor", "[config]") {
  // The pool is missing entirely, so the route's own position is used; max keeps its default.
  const std::string yaml = R"(default_route: nowhere
routes:
  lobby:
    connections: {min: 20}
)";
  const std::vector<std::string> expected = {
      "proxy.yaml:1:16: default_route 'nowhere' is not a route",
      "proxy.yaml:4:5: route 'lobby' names unknown backend pool ''",
      "proxy.yaml:4:24: min (20) is above max (10)",
  };
  CHECK(errors_of(yaml) == expected);
}

TEST_CASE("validate: hooks do not run when decoding already failed", "[config]") {
  auto r = cfg::load_string<vt::proxy>("routes:\n  lobby: {pool: nope, pol: x}\n", "proxy.yaml");
  REQUIRE_FALSE(r);
  REQUIRE(r.error().size() == 1);
  CHECK(r.error()[0].code == cfg::error::unknown_key);
}

TEST_CASE("validator: paths and positions", "[config]") {
  cfg::positions pos("f.yaml");
  pos.set("", {1, 1});
  pos.set("routes", {2, 3});
  pos.set("routes.lobby", {3, 5});
  pos.set("list[1]", {9, 4});
  cfg::diagnostics diags;
  cfg::validator root(diags, pos);
  CHECK(root.path().empty());
  CHECK(root.at("routes").at("lobby").path() == "routes.lobby");
  CHECK(root.at("list").at(std::size_t{1}).path() == "list[1]");
  CHECK(root.at(&vt::proxy::default_route).path() == "default_route");
  CHECK(root.at("routes.lobby.pool").position() == cfg::mark{3, 5});
  CHECK(root.at("list").at(std::size_t{1}).at("x").position() == cfg::mark{9, 4});
  CHECK(root.at("elsewhere").position() == cfg::mark{1, 1});

  root.at("routes").error("bad routes");
  root.error(&vt::proxy::routes, "again");
  CHECK(root.error_count() == 2);
  CHECK(diags.to_string() == "f.yaml:2:3: bad routes\nf.yaml:2:3: again\n");

  cfg::positions empty("g.yaml");
  cfg::diagnostics d2;
  cfg::validator(d2, empty).error("whole file");
  CHECK(d2[0].to_string() == "g.yaml: whole file");
}

TEST_CASE("field: names by member pointer, docs checked against the Hana declaration", "[config]") {
  CHECK(cfg::field_name(&vt::route::fallbacks) == "fallbacks");
  CHECK(cfg::field_name(&vt::limit::max) == "max");
  const auto& metas = cfg::field_metas<vt::proxy>();
  REQUIRE(metas.size() == 3);
  CHECK(metas[2].name == "default_route");
  CHECK_FALSE(metas[2].required);
}
