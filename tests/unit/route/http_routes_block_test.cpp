// Tests for rproxy/route/http_routes_block.hpp: the `routes:` block read from YAML, its errors
// at file:line:col (bad patterns, unreachable duplicates, refused header rules), and the
// starter config and reference that come from its describe().
#include <rproxy/route/http_routes_block.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/reference_markdown.hpp>
#include <rproxy/config/starter_config.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cfg = rproxy::config;
namespace rt = rproxy::route;

namespace {
std::vector<std::string> errors_of(const std::string& yaml) {
  auto r = cfg::load_string<rt::http_routes_block>(yaml, "routes.yaml");
  REQUIRE_FALSE(r);
  std::vector<std::string> out;
  for (const auto& d : r.error()) out.push_back(d.to_string());
  return out;
}
}  // namespace

TEST_CASE("http_routes_block: the docs/routing.md example loads and routes", "[route][config]") {
  auto r = cfg::load_string<rt::http_routes_block>(R"(routes:
  - name: users-v1
    hosts: [ api.example.com ]
    path: /v1/users/:id
    methods: [ GET, HEAD ]
    rewrite: /users/{id}
    backends:
      - { group: users, weight: 90 }
      - { group: users-canary, weight: 10 }
    sticky: { cookie: session }
    request_headers: { set: { X-Route: users-v1 }, remove: [ X-Debug ] }
    response_headers: { add: { Cache-Control: no-store } }
    timeout: 5s
    idle_timeout: 2s
    max_body: 1MiB
    middleware: [ jwt, rate_limit ]
  - name: api
    hosts: [ api.example.com ]
    prefix: /api
    strip_prefix: /api
    headers: [ { name: X-Tenant, value: acme } ]
    query: [ { name: debug } ]
    cookies: [ { name: beta, value: "yes" } ]
    backends: [ { group: api } ]
  - name: static
    path: /static/*rest
    backends: [ { group: files } ]
)",
                                                   "routes.yaml");
  REQUIRE(r);
  const auto& routes = r->routes;
  REQUIRE(routes.size() == 3);
  CHECK(routes[0].backends[1].group == "users-canary");
  CHECK(routes[0].backends[1].weight == 10);
  CHECK(routes[0].timeout == std::chrono::milliseconds(5000));
  CHECK(routes[0].max_body->bytes == 1024u * 1024u);
  CHECK(routes[0].request_headers.set.at("X-Route") == "users-v1");
  CHECK(routes[1].headers[0].value == "acme");
  CHECK_FALSE(routes[1].query[0].value);
  const auto router = r->build();
  CHECK(router.routes().size() == 3);
  CHECK_FALSE(r->allow_encoded_slashes);
}

namespace {
struct path_only {
  std::string_view p;
  std::string_view method() const { return "GET"; }
  std::string_view authority() const { return "x"; }
  std::string_view path() const { return p; }
  std::string_view query() const { return {}; }
  std::optional<std::string_view> header(std::string_view) const { return std::nullopt; }
};
}  // namespace

TEST_CASE("http_routes_block: allow_encoded_slashes reaches the table", "[route][config]") {
  const std::string routes = "routes:\n  - { name: f, path: /f/:name, backends: [ { group: g } ] }\n";
  auto strict = cfg::load_string<rt::http_routes_block>(routes, "a.yaml");
  auto open = cfg::load_string<rt::http_routes_block>(routes + "allow_encoded_slashes: true\n", "b.yaml");
  REQUIRE(strict);
  REQUIRE(open);
  rt::http_match m;
  const auto strict_table = strict->build();
  const auto open_table = open->build();  // the match points into the table: it must outlive m's use
  CHECK(strict_table.match(path_only{"/f/a%2Fb"}, m) == rt::http_route_status::bad_path);
  REQUIRE(open_table.match(path_only{"/f/a%2Fb"}, m) == rt::http_route_status::matched);
  CHECK(m.param("name") == "a%2Fb");
}

TEST_CASE("http_routes_block: route errors at file:line:col, all of them", "[route][config]") {
  const auto e = errors_of(R"(routes:
  - name: users
    path: /users/:id
    backends: [ { group: users } ]
  - name: users-again
    path: /users/:uid
    backends: [ { group: users } ]
  - name: dots
    path: /a/../b
    backends: [ { group: x } ]
  - name: framing
    prefix: /h
    backends: [ { group: x } ]
    request_headers: { set: { Transfer-Encoding: chunked } }
  - name: canary
    path: /c/:id
    rewrite: /d/{idx}
    backends: [ { group: a, weight: 0 } ]
)");
  CHECK(e == std::vector<std::string>{
                 "routes.yaml:9:11: not a normalised path (no '.', '..' or empty segments, escapes only of reserved "
                 "characters, upper-case hex)",
                 "routes.yaml:14:50: 'Transfer-Encoding' is a hop-by-hop or framing header: the proxy sets it itself",
                 "routes.yaml:17:14: '{idx}' is not a parameter of the route's path",
                 "routes.yaml:18:15: the weights add up to 0: no group would get a request",
             });
  const auto dup = errors_of(R"(routes:
  - name: users
    path: /users/:id
    backends: [ { group: users } ]
  - name: users-again
    path: /users/:uid
    backends: [ { group: users } ]
)");
  CHECK(dup == std::vector<std::string>{
                   "routes.yaml:5:5: route 'users-again' is unreachable: route 'users' has the same hosts and path and "
                   "matches every request it matches (route 'users' is at line 2)",
               });
}

TEST_CASE("http_routes_block: unknown keys and wrong types are the decoder's errors", "[route][config]") {
  const auto e = errors_of(R"(routes:
  - name: a
    path: /a
    pathh: /b
    backends: [ { group: x, weight: -1 } ]
)");
  REQUIRE(e.size() == 2);
  CHECK(e[0].starts_with("routes.yaml:4:5: "));
  CHECK(e[1].starts_with("routes.yaml:5:37: "));
}

TEST_CASE("http_routes_block: starter config and reference come from describe()", "[route][config]") {
  const std::string md = cfg::reference_markdown<rt::http_routes_block>("routes");
  for (std::string_view key : {"hosts", "prefix", "strip_prefix", "rewrite", "sticky", "request_headers", "max_body", "middleware"}) {
    INFO(key);
    CHECK(md.find(key) != std::string::npos);
  }
  const std::string text = cfg::starter_config<rt::http_routes_block>("routes");
  CHECK(cfg::load_string<rt::http_routes_block>(text, "starter.yaml"));
}
