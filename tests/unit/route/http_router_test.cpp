// Tests for rproxy/route/http_router.hpp (and normalize_path.hpp, weighted_split.hpp,
// http1_request.hpp, by_http_route.hpp): a table of routes and requests with the expected
// route and params, following the precedence rules of docs/routing.md.
#include <rproxy/route/by_http_route.hpp>
#include <rproxy/route/http1_request.hpp>
#include <rproxy/route/http_router.hpp>
#include <rproxy/route/normalize_path.hpp>
#include <rproxy/route/weighted_split.hpp>

#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace rt = rproxy::route;

namespace {

struct fake_request {
  std::string method = "GET";
  std::string authority = "any.test";
  std::string path = "/";
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;

  std::optional<std::string_view> header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (n.size() == name.size() && std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          }))
        return std::string_view(v);
    return std::nullopt;
  }
};

// The request view the router reads (a separate type so the data members keep plain names).
struct view {
  const fake_request* r;
  std::string_view method() const { return r->method; }
  std::string_view authority() const { return r->authority; }
  std::string_view path() const { return r->path; }
  std::string_view query() const { return r->query; }
  std::optional<std::string_view> header(std::string_view n) const { return r->header(n); }
};
static_assert(rt::http_route_request<view>);
static_assert(rt::http_route_request<rt::http1_request>);

rt::http_route_config route(std::string name, std::string path) {
  rt::http_route_config c;
  c.name = std::move(name);
  if (path.starts_with("prefix:")) c.prefix = path.substr(7);
  else c.path = std::move(path);
  c.backends = {{"main", 1}};
  return c;
}

template <class F>
rt::http_route_config route(std::string name, std::string path, F&& edit) {
  auto c = route(std::move(name), std::move(path));
  edit(c);
  return c;
}

rt::http_router build(std::vector<rt::http_route_config> routes) {
  auto r = rt::http_router::build(std::move(routes));
  if (!r) {
    for (const auto& e : r.error()) UNSCOPED_INFO("route " << e.route << " " << e.field << ": " << e.message);
    FAIL("the table did not build");
  }
  return std::move(*r);
}

std::vector<rt::http_route_config> table() {
  using c = rt::http_route_config;
  return {
      route("root", "/"),
      route("users-list", "/users", [](c& r) { r.methods = {"GET", "HEAD"}; }),
      route("users-create", "/users", [](c& r) { r.methods = {"POST"}; }),
      route("user", "/users/:id"),
      route("user-me", "/users/me"),
      route("user-posts", "/users/:id/posts/:post"),
      route("static", "/static/*rest"),
      route("api", "prefix:/api", [](c& r) { r.strip_prefix = "/api"; }),
      route("api-v2", "prefix:/api/v2/"),
      route("api-beta", "prefix:/api", [](c& r) { r.headers = {{"X-Beta", "1"}}; }),
      route("admin", "/admin"),
      route("admin-area", "prefix:/admin"),
      route("v1-user", "/v1/users/:id", [](c& r) { r.rewrite = "/users/{id}"; }),
      route("search", "/search", [](c& r) { r.query = {{"q", std::nullopt}}; }),
      route("search-fr", "/search", [](c& r) { r.query = {{"lang", "fr"}, {"q", std::nullopt}}; }),
      route("beta-plain", "/beta"),
      route("beta-cookie", "/beta", [](c& r) { r.cookies = {{"beta", "yes"}}; }),
      route("files", "/files/:dir/*rest", [](c& r) { r.rewrite = "/store/{dir}/{rest}"; }),
      route("shop", "prefix:/", [](c& r) { r.hosts = {"shop.example.com"}; }),
      route("shop-cart", "/cart", [](c& r) { r.hosts = {"shop.example.com"}; }),
      route("any-example", "prefix:/", [](c& r) { r.hosts = {"*.example.com"}; }),
      route("eu-example", "prefix:/", [](c& r) { r.hosts = {"*.eu.example.com"}; }),
      route("ip", "/ip", [](c& r) { r.hosts = {"127.0.0.1"}; }),
  };
}

struct row {
  fake_request req;
  std::string route;  // "" : not found; "!": bad path
  std::map<std::string, std::string> params{};
  std::string upstream{};  // "" : not checked
};

fake_request get(std::string path) {
  fake_request r;
  const auto q = path.find('?');
  if (q != std::string::npos) {
    r.query = path.substr(q + 1);
    path.resize(q);
  }
  r.path = std::move(path);
  return r;
}
fake_request with(fake_request r, std::string method) {
  r.method = std::move(method);
  return r;
}
fake_request at(std::string host, std::string path) {
  auto r = get(std::move(path));
  r.authority = std::move(host);
  return r;
}
fake_request hdr(fake_request r, std::string name, std::string value) {
  r.headers.emplace_back(std::move(name), std::move(value));
  return r;
}

void check_rows(const rt::http_router& router, const std::vector<row>& rows) {
  rt::http_match m;
  for (const auto& r : rows) {
    INFO(r.req.method << " " << r.req.authority << " " << r.req.path << (r.req.query.empty() ? "" : "?") << r.req.query);
    const auto st = router.match(view{&r.req}, m);
    if (r.route == "!") {
      CHECK(st == rt::http_route_status::bad_path);
      continue;
    }
    if (r.route.empty()) {
      CHECK(st == rt::http_route_status::not_found);
      CHECK_FALSE(m);
      continue;
    }
    REQUIRE(st == rt::http_route_status::matched);
    CHECK(m.route()->name() == r.route);
    std::map<std::string, std::string> got;
    for (std::size_t i = 0; i < m.param_count(); ++i)
      got.emplace(std::string(m.param_at(i).name), std::string(m.param_at(i).value));
    CHECK(got == r.params);
    if (!r.upstream.empty()) CHECK(m.upstream_path() == r.upstream);
  }
}

}  // namespace

TEST_CASE("normalize_path: RFC 3986 §5.2.4 dot-segment examples and §6.2.2 escapes", "[route]") {
  std::string out;
  // The remove_dot_segments examples of RFC 3986 §5.2.4 (absolute paths).
  CHECK((rt::normalize_path("/a/b/c/./../../g", out) && out == "/a/g"));
  CHECK((rt::normalize_path("/mid/content=5/../6", out) && out == "/mid/6"));
  // RFC 3986 §5.4.1/§5.4.2 results written as absolute paths (base /b/c/d;p).
  CHECK((rt::normalize_path("/b/c/./g", out) && out == "/b/c/g"));
  CHECK((rt::normalize_path("/b/c/.", out) && out == "/b/c/"));
  CHECK((rt::normalize_path("/b/c/..", out) && out == "/b/"));
  CHECK((rt::normalize_path("/b/../../g", out) && out == "/g"));  // never above the root
  CHECK((rt::normalize_path("/b/c/g.", out) && out == "/b/c/g."));
  CHECK((rt::normalize_path("/b/c/..g", out) && out == "/b/c/..g"));
  // Unreserved escapes decode (§2.3), others keep upper-case hex (§6.2.2.1).
  CHECK((rt::normalize_path("/%7Euser/%61%62%2d%5F%2E", out) && out == "/~user/ab-_."));
  CHECK((rt::normalize_path("/a%2fb%3a%20", out) && out == "/a%2Fb%3A%20"));
  CHECK((rt::normalize_path("/%2e%2E/x/%2e/y", out) && out == "/x/y"));
  // Empty segments.
  CHECK((rt::normalize_path("//a///b//", out) && out == "/a/b/"));
  CHECK((rt::normalize_path("/", out) && out == "/"));
  CHECK((rt::normalize_path("/..", out) && out == "/"));
  // Sub-delims, ':' and '@' are path characters.
  CHECK((rt::normalize_path("/a:b@c!$&'()*+,;=", out) && out == "/a:b@c!$&'()*+,;="));
  // Escaped separators, when not allowed.
  CHECK_FALSE(rt::normalize_path("/a%2fb", out, false));
  CHECK_FALSE(rt::normalize_path("/a%5Cb", out, false));
  CHECK((rt::normalize_path("/a%2eb%20", out, false) && out == "/a.b%20"));
  // Refused: not origin-form, bad escapes, characters outside pchar.
  for (std::string_view bad : {"", "*", "a/b", "http://x/", "/%", "/%4", "/%zz", "/%4g", "/a b", "/a\\b", "/a\"b", "/a<b",
                               "/a{b}", "/a|b", "/a^b", "/a`b", "/a#b", "/a?b", "/\x01", "/\x7f", "/caf\xc3\xa9"}) {
    INFO(bad);
    CHECK_FALSE(rt::normalize_path(bad, out));
  }
  // Idempotent.
  for (std::string_view p : {"/a/./b/../c//d/", "/%2e%2e/%41/%2f", "/x/.."}) {
    REQUIRE(rt::normalize_path(p, out));
    std::string again;
    REQUIRE(rt::normalize_path(out, again));
    CHECK(again == out);
  }
}

TEST_CASE("http_router: a table of routes and requests, with precedence", "[route]") {
  const auto router = build(table());
  check_rows(router, {
      {get("/"), "root"},
      // method predicates on one path
      {get("/users"), "users-list"},
      {with(get("/users"), "HEAD"), "users-list"},
      {with(get("/users"), "POST"), "users-create"},
      {with(get("/users"), "DELETE"), ""},
      {with(get("/users"), "get"), ""},  // methods are case-sensitive
      // literal before :param, params captured
      {get("/users/me"), "user-me"},
      {get("/users/42"), "user", {{"id", "42"}}},
      {get("/users/42/posts/7"), "user-posts", {{"id", "42"}, {"post", "7"}}},
      {get("/users/42/posts"), ""},
      {get("/users/42/posts/"), ""},  // a :param never matches an empty segment
      {get("/users/42/"), ""},  // a trailing slash is a segment of its own
      {get("/users/me/posts/1"), "user-posts", {{"id", "me"}, {"post", "1"}}},  // backs out of the literal
      // *rest: zero or more segments
      {get("/static/css/site.css"), "static", {{"rest", "css/site.css"}}},
      {get("/static"), "static", {{"rest", ""}}},
      {get("/static/"), "static", {{"rest", ""}}},
      // prefix: whole segments, longer literal first, predicates before config order
      {get("/api/items"), "api", {}, "/items"},
      {get("/api"), "api", {}, "/"},
      {get("/apix"), ""},
      {get("/api/v2/x"), "api-v2", {}, "/api/v2/x"},
      {get("/api/v2"), "api-v2"},
      {hdr(get("/api/items"), "x-beta", "1"), "api-beta"},
      {hdr(get("/api/items"), "X-Beta", "2"), "api"},
      // exact path before a prefix of the same segments
      {get("/admin"), "admin"},
      {get("/admin/"), "admin-area"},
      {get("/admin/users"), "admin-area"},
      // rewrites with params
      {get("/v1/users/9"), "v1-user", {{"id", "9"}}, "/users/9"},
      {get("/files/docs/a/b.txt"), "files", {{"dir", "docs"}, {"rest", "a/b.txt"}}, "/store/docs/a/b.txt"},
      {get("/files/docs"), "files", {{"dir", "docs"}, {"rest", ""}}, "/store/docs/"},
      // query predicates: more predicates first; values compared decoded
      {get("/search?q=x"), "search"},
      {get("/search?q=x&lang=fr"), "search-fr"},
      {get("/search?lang=%66r&q="), "search-fr"},
      {get("/search?lang=de&q=x"), "search"},
      {get("/search?%71=1"), "search"},  // the name is decoded too
      {get("/search"), ""},
      // cookie predicates
      {hdr(get("/beta"), "Cookie", "a=1; beta=yes"), "beta-cookie"},
      {hdr(get("/beta"), "Cookie", "beta=no"), "beta-plain"},
      {get("/beta"), "beta-plain"},
  });
}

TEST_CASE("http_router: hosts pick one group; exact, then the longest wildcard, then the default", "[route]") {
  const auto router = build(table());
  check_rows(router, {
      {at("shop.example.com", "/cart"), "shop-cart"},
      {at("shop.example.com", "/users"), "shop"},  // the default group's routes are not tried
      {at("SHOP.Example.COM:8443", "/x"), "shop"},
      {at("shop.example.com.", "/x"), "shop"},
      {at("a.shop.example.com", "/x"), "any-example"},
      {at("a.example.com", "/x"), "any-example"},
      {at("x.eu.example.com", "/x"), "eu-example"},
      {at("a.b.eu.example.com", "/x"), "eu-example"},
      {at("eu.example.com", "/x"), "any-example"},
      {at("example.com", "/users"), "users-list"},  // not below example.com: the default group
      {at("", "/users"), "users-list"},
      {at("127.0.0.1:8080", "/ip"), "ip"},
      {at("127.0.0.1", "/users"), ""},
      {at("[::1]:8080", "/users"), "users-list"},  // no route names it: the default group
      {at(std::string(300, 'a'), "/users"), "users-list"},  // not a host name: the default group
  });
}

TEST_CASE("http_router: normalisation attacks reach the route that guards the path, or none", "[route]") {
  const auto router = build(table());
  check_rows(router, {
      {get("/%61dmin"), "admin"},
      {get("/x/../admin"), "admin"},
      {get("//admin"), "admin"},
      {get("/./admin"), "admin"},
      {get("/%2e%2e/admin"), "admin"},
      {get("/%2E/admin/%2e"), "admin-area"},  // "/admin/": the prefix route of /admin
      {get("/static/../admin"), "admin"},
      {get("/static/%2e%2e/admin/x"), "admin-area"},
      {get("/users/..%2fadmin"), "!"},  // an escaped '/' or '\\' is refused by default
      {get("/static/..%5C..%5Cadmin"), "!"},
      {get("/ADMIN"), ""},  // paths are case-sensitive
      {get("/admin%2f"), "!"},
      {get("/admin;x"), ""},
      {get("/%zz"), "!"},
      {get("/admin%"), "!"},
      {get("/admin\\..\\x"), "!"},
      {get("*"), "!"},
      {get(""), "!"},
      {get("/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd"), ""},  // clamps at the root: /etc/passwd
  });
  // Allowed, an escaped '/' is data inside one segment, never a separator.
  auto open = rt::http_router::build(table(), {.allow_encoded_slashes = true});
  REQUIRE(open);
  check_rows(*open, {
      {get("/users/..%2fadmin"), "user", {{"id", "..%2Fadmin"}}},
      {get("/admin%2f"), ""},
      {get("/static/..%5c..%5cadmin"), "static", {{"rest", "..%5C..%5Cadmin"}}},
  });
  // What is forwarded is the normalised path.
  rt::http_match m;
  const auto r = get("/static/./css//a.css");
  REQUIRE(router.match(view{&r}, m) == rt::http_route_status::matched);
  CHECK(m.path() == "/static/css/a.css");
  CHECK(m.upstream_path() == "/static/css/a.css");
}

TEST_CASE("http_router: the precedence example of docs/routing.md", "[route]") {
  const auto router = build({route("path", "/admin"), route("prefix", "prefix:/admin"), route("page", "/:page"),
                             route("all", "/*all")});
  check_rows(router, {
      {get("/admin"), "path"},
      {get("/admin/"), "prefix"},
      {get("/admin/x"), "prefix"},
      {get("/about"), "page", {{"page", "about"}}},
      {get("/a/b"), "all", {{"all", "a/b"}}},
      {get("/"), "all", {{"all", ""}}},
  });
}

TEST_CASE("http_router: ties on one path shape: more predicates first, then config order", "[route]") {
  using c = rt::http_route_config;
  const auto router = build({
      route("first", "/t", [](c& r) { r.headers = {{"A", std::nullopt}}; }),
      route("second", "/t", [](c& r) { r.headers = {{"B", std::nullopt}}; }),
      route("both", "/t", [](c& r) { r.headers = {{"A", std::nullopt}, {"B", std::nullopt}}; }),
      route("plain", "/t"),
  });
  check_rows(router, {
      {hdr(hdr(get("/t"), "A", "1"), "B", "1"), "both"},
      {hdr(get("/t"), "B", "1"), "second"},
      {hdr(get("/t"), "A", "1"), "first"},
      {get("/t"), "plain"},
  });
}

TEST_CASE("http_router: conflicting and unreachable routes are errors at build", "[route]") {
  using c = rt::http_route_config;
  auto errors = [](std::vector<rt::http_route_config> routes) {
    auto r = rt::http_router::build(std::move(routes));
    REQUIRE_FALSE(r);
    return r.error();
  };
  {
    const auto e = errors({route("a", "/x"), route("b", "/x")});
    REQUIRE(e.size() == 1);
    CHECK(e[0].route == 1);
    CHECK(e[0].other == 0u);
    CHECK(e[0].message == "route 'b' is unreachable: route 'a' has the same hosts and path and matches every request it matches");
  }
  // Same shape whatever the parameter names; prefix == /*rest.
  CHECK(errors({route("a", "/u/:id"), route("b", "/u/:uid")}).at(0).route == 1);
  CHECK(errors({route("a", "prefix:/s"), route("b", "/s/*rest")}).at(0).route == 1);
  // A broader method list first shadows a narrower one after it; not the other way round.
  CHECK(errors({route("a", "/x", [](c& r) { r.methods = {"GET", "POST"}; }),
                route("b", "/x", [](c& r) { r.methods = {"GET"}; })})
            .at(0)
            .route == 1);
  CHECK(rt::http_router::build({route("a", "/x", [](c& r) { r.methods = {"GET"}; }),
                                route("b", "/x", [](c& r) { r.methods = {"GET", "POST"}; })}));
  // A presence check first shadows an exact value after it (same count, config order).
  CHECK(errors({route("a", "/x", [](c& r) { r.headers = {{"X", std::nullopt}}; }),
                route("b", "/x", [](c& r) { r.headers = {{"x", "1"}}; })})
            .at(0)
            .route == 1);
  // Different hosts never conflict; the same host written twice in one route does.
  CHECK(rt::http_router::build({route("a", "/x", [](c& r) { r.hosts = {"a.test"}; }), route("b", "/x")}));
  CHECK(errors({route("a", "/x", [](c& r) { r.hosts = {"a.test", "A.test."}; })}).at(0).field == "hosts[1]");
  // Names.
  CHECK(errors({route("a", "/x"), route("a", "/y")}).at(0).field == "name");
  CHECK(errors({route("", "/x")}).at(0).field == "name");
}

TEST_CASE("http_router: bad routes are errors at their field", "[route]") {
  using c = rt::http_route_config;
  auto field_of = [](rt::http_route_config rc) {
    auto r = rt::http_router::build({std::move(rc)});
    REQUIRE_FALSE(r);
    INFO(r.error().at(0).message);
    return r.error().at(0).field;
  };
  for (std::string p : {"users", "/a/*r/b", "/a/:", "/a/*", "/a/../b", "/a//b", "/a/./b", "/a/%7e", "/a/%2f", "/:id/:id",
                        "/a b", "/a/:b-c"}) {
    INFO(p);
    CHECK(field_of(route("r", p)) == "path");
  }
  CHECK(field_of(route("r", "prefix:/a/*rest")) == "prefix");
  CHECK(field_of(route("r", "/x", [](c& r) { r.prefix = "/y"; })) == "path");
  CHECK(field_of(route("r", "", [](c&) {})) == "path");
  CHECK(field_of(route("r", "/x", [](c& r) { r.hosts = {"a..b"}; })) == "hosts[0]");
  CHECK(field_of(route("r", "/x", [](c& r) { r.methods = {"G T"}; })) == "methods[0]");
  CHECK(field_of(route("r", "/x", [](c& r) { r.headers = {{"Bad Name", std::nullopt}}; })) == "headers[0].name");
  CHECK(field_of(route("r", "/x", [](c& r) { r.backends.clear(); })) == "backends");
  CHECK(field_of(route("r", "/x", [](c& r) { r.backends = {{"a", 0}, {"b", 0}}; })) == "backends");
  CHECK(field_of(route("r", "/x", [](c& r) { r.sticky = {"X-User", "session"}; })) == "sticky");
  CHECK(field_of(route("r", "/x/:id", [](c& r) { r.rewrite = "/y/{nope}"; })) == "rewrite");
  CHECK(field_of(route("r", "/x/:id", [](c& r) { r.rewrite = "/y/../{id}"; })) == "rewrite");
  CHECK(field_of(route("r", "/x/:id", [](c& r) { r.rewrite = "y"; })) == "rewrite");
  CHECK(field_of(route("r", "/x/*rest", [](c& r) { r.rewrite = "/y/{rest}/z"; })) == "rewrite");
  CHECK(field_of(route("r", "/x/:id", [](c& r) { r.strip_prefix = "/x/y"; })) == "strip_prefix");
  CHECK(field_of(route("r", "/x/:id", [](c& r) { r.strip_prefix = "/xx"; })) == "strip_prefix");
  CHECK(field_of(route("r", "prefix:/x", [](c& r) {
          r.strip_prefix = "/x";
          r.rewrite = "/y";
        })) == "rewrite");
  CHECK(field_of(route("r", "/x", [](c& r) { r.timeout = std::chrono::milliseconds(0); })) == "timeout");
  // Header rules: hop-by-hop and framing fields are the proxy's; forwarding fields and Host too.
  for (std::string name : {"Transfer-Encoding", "content-length", "Connection", "Upgrade", "TE", "Keep-Alive", "Trailer"}) {
    INFO(name);
    CHECK(field_of(route("r", "/x", [&](c& r) { r.request_headers.set = {{name, "x"}}; })) == "request_headers.set." + name);
    CHECK(field_of(route("r", "/x", [&](c& r) { r.response_headers.remove = {name}; })) == "response_headers.remove[0]");
  }
  CHECK(field_of(route("r", "/x", [](c& r) { r.request_headers.add = {{"X-Forwarded-For", "1.2.3.4"}}; })) ==
        "request_headers.add.X-Forwarded-For");
  CHECK(field_of(route("r", "/x", [](c& r) { r.request_headers.remove = {"host"}; })) == "request_headers.remove[0]");
  CHECK(field_of(route("r", "/x", [](c& r) { r.response_headers.set = {{"X-A", "a\r\nb"}}; })) == "response_headers.set.X-A");
  // Every problem is reported, not only the first.
  auto r = rt::http_router::build({route("a", "users"), route("b", "/x", [](c& x) { x.backends.clear(); })});
  REQUIRE_FALSE(r);
  CHECK(r.error().size() == 2);
}

TEST_CASE("http_router: header edits keep their order: remove, set, add", "[route]") {
  using c = rt::http_route_config;
  const auto router = build({route("r", "/x", [](c& r) {
    r.request_headers.add = {{"X-Added", "1"}};
    r.request_headers.set = {{"X-Route", "r"}};
    r.request_headers.remove = {"X-Debug"};
    r.response_headers.set = {{"Cache-Control", "no-store"}};
  })});
  const auto& e = router.routes()[0].request_edits();
  REQUIRE(e.size() == 3);
  CHECK((e[0].what == rt::http_header_edit::op::remove && e[0].name == "X-Debug"));
  CHECK((e[1].what == rt::http_header_edit::op::set && e[1].name == "X-Route" && e[1].value == "r"));
  CHECK((e[2].what == rt::http_header_edit::op::add && e[2].name == "X-Added" && e[2].value == "1"));
  REQUIRE(router.routes()[0].response_edits().size() == 1);
  // Applied to an HTTP/1.1 field list.
  rproxy::codec::http1::fields f{{"Host", "a"}, {"X-Debug", "1"}, {"x-route", "old"}, {"X-Added", "0"}, {"x-debug", "2"}};
  rt::apply_header_edits(e, f);
  CHECK(f == rproxy::codec::http1::fields{{"Host", "a"}, {"x-route", "r"}, {"X-Added", "0"}, {"X-Added", "1"}});
}

namespace {
// |observed - n p| within k standard deviations of a binomial(n, p) count.
bool within(std::size_t observed, std::size_t n, double p, double k = 5.0) {
  const double mean = static_cast<double>(n) * p;
  const double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
  return std::abs(static_cast<double>(observed) - mean) <= k * sd;
}
}  // namespace

TEST_CASE("weighted_split: shares over many draws stay within 5 standard deviations", "[route]") {
  const rt::weighted_split s{{1, 2, 7, 0}};
  std::mt19937_64 rng(12345);
  constexpr std::size_t n = 200'000;
  std::array<std::size_t, 4> count{};
  for (std::size_t i = 0; i < n; ++i) ++count[s.pick(rng())];
  CHECK(within(count[0], n, 0.1));
  CHECK(within(count[1], n, 0.2));
  CHECK(within(count[2], n, 0.7));
  CHECK(count[3] == 0);  // weight 0: never
  // The ends of the draw range.
  CHECK(s.pick(0) == 0);
  CHECK(s.pick(~0ull) == 2);
  CHECK(rt::weighted_split{{5}}.pick(12345) == 0);
}

TEST_CASE("http_router: a canary split is deterministic per draw, sticky by header or cookie", "[route]") {
  using c = rt::http_route_config;
  const auto router = build({
      route("canary", "/c", [](c& r) { r.backends = {{"stable", 90}, {"canary", 10}}; }),
      route("sticky", "/s", [](c& r) {
        r.backends = {{"stable", 90}, {"canary", 10}};
        r.sticky.header = "X-User";
      }),
      route("sticky-cookie", "/k", [](c& r) {
        r.backends = {{"a", 1}, {"b", 1}};
        r.sticky.cookie = "session";
      }),
  });
  rt::http_match m;
  std::mt19937_64 rng(7);
  constexpr std::size_t n = 100'000;
  std::size_t canary = 0;
  const auto creq = get("/c");
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(router.match(view{&creq}, m, rng()) == rt::http_route_status::matched);
    canary += m.group() == "canary";
  }
  CHECK(within(canary, n, 0.1));
  // The same draw, the same group.
  const std::uint64_t d = rng();
  REQUIRE(router.match(view{&creq}, m, d) == rt::http_route_status::matched);
  const std::string g(m.group());
  for (int i = 0; i < 10; ++i) {
    REQUIRE(router.match(view{&creq}, m, d) == rt::http_route_status::matched);
    CHECK(m.group() == g);
  }
  // Sticky: one user stays on one group whatever the draw; many users split by weight.
  std::size_t sticky_canary = 0;
  constexpr std::size_t users = 20'000;
  for (std::size_t u = 0; u < users; ++u) {
    const auto s = hdr(get("/s"), "X-User", "user-" + std::to_string(u));
    REQUIRE(router.match(view{&s}, m, rng()) == rt::http_route_status::matched);
    const std::string first(m.group());
    REQUIRE(router.match(view{&s}, m, rng()) == rt::http_route_status::matched);
    CHECK(m.group() == first);
    sticky_canary += first == "canary";
  }
  CHECK(within(sticky_canary, users, 0.1));
  // Without the key: split by the draw.
  std::size_t keyless = 0;
  const auto k = get("/s");
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(router.match(view{&k}, m, rng()) == rt::http_route_status::matched);
    keyless += m.group() == "canary";
  }
  CHECK(within(keyless, n, 0.1));
  // By cookie.
  const auto kc = hdr(get("/k"), "Cookie", "session=abc");
  REQUIRE(router.match(view{&kc}, m, 1) == rt::http_route_status::matched);
  const std::string gk(m.group());
  REQUIRE(router.match(view{&kc}, m, ~0ull) == rt::http_route_status::matched);
  CHECK(m.group() == gk);
  CHECK(m.group() == (rt::weighted_split{{1, 1}}.pick(rt::sticky_hash("abc")) == 0 ? "a" : "b"));
  CHECK(m.sticky_key() == rt::sticky_hash("abc"));  // (for the group's balancer: consistent_hash)
  REQUIRE(router.match(view{&k}, m, 1) == rt::http_route_status::matched);
  CHECK(!m.sticky_key());
}

TEST_CASE("http_router: the sticky key is kept for the balancer even without a split", "[route]") {
  using c = rt::http_route_config;
  const auto router = build({route("one", "/o", [](c& r) { r.sticky.header = "X-User"; })});
  rt::http_match m;
  const auto r = hdr(get("/o"), "X-User", "ada");
  REQUIRE(router.match(view{&r}, m) == rt::http_route_status::matched);
  CHECK(m.group() == "main");
  CHECK(m.sticky_key() == rt::sticky_hash("ada"));
}

TEST_CASE("http_router: per-route settings travel with the match", "[route]") {
  using c = rt::http_route_config;
  const auto router = build({route("slow", "/report", [](c& r) {
    r.timeout = std::chrono::seconds(30);
    r.max_body = rproxy::config::byte_size::mib(1);
    r.middleware = {"jwt", "rate_limit"};
  })});
  rt::http_match m;
  const auto r = get("/report");
  REQUIRE(router.match(view{&r}, m) == rt::http_route_status::matched);
  const auto& cfg = m.route()->config();
  CHECK(cfg.timeout == std::chrono::milliseconds(30'000));
  CHECK(cfg.max_body->bytes == 1024u * 1024u);
  CHECK(cfg.middleware == std::vector<std::string>{"jwt", "rate_limit"});
  CHECK(m.group() == "main");
}

TEST_CASE("http1_request: Host, absolute-form targets, query and cookies of a parsed head", "[route]") {
  namespace http1 = rproxy::codec::http1;
  const auto router = build(table());
  auto match = [&](const std::string& bytes) {
    http1::request_parser p;
    REQUIRE(p.parse(bytes).what == http1::event::head);
    http1::request_view req{p.head()};
    rt::http1_request r{req};
    rt::http_match m;
    const auto st = router.match(r, m);
    return st == rt::http_route_status::matched ? std::string(m.route()->name()) : std::string();
  };
  CHECK(match("GET /users/me HTTP/1.1\r\nHost: x\r\n\r\n") == "user-me");
  CHECK(match("GET /cart HTTP/1.1\r\nHost: shop.example.com\r\n\r\n") == "shop-cart");
  CHECK(match("GET http://shop.example.com/cart HTTP/1.1\r\nHost: other\r\n\r\n") == "shop-cart");
  CHECK(match("GET /search?lang=fr&q=1 HTTP/1.1\r\nHost: x\r\n\r\n") == "search-fr");
  CHECK(match("GET /beta HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: beta=yes\r\n\r\n") == "beta-cookie");
}

namespace {
struct http1_hello_protocol {
  using flow = rproxy::flow_info;
  using hello = rproxy::codec::http1::request_view;
  using message = int;
  using response = int;
};
// A stage after the router: sees the route and the match.
struct after_route {
  std::string* seen;
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const rproxy::codec::http1::request_view&) const {
    *seen = std::string(ctx.route) + " " + std::string(ctx.template state<rt::by_http_route>().match.upstream_path());
    return rproxy::next;
  }
};
}  // namespace

TEST_CASE("by_http_route: sets ctx.route and keeps the match; 404 and 400 otherwise", "[route]") {
  namespace http1 = rproxy::codec::http1;
  const auto router = build(table());
  std::string seen;
  auto p = rproxy::make_pipeline<http1_hello_protocol>(rt::by_http_route{&router}, after_route{&seen});
  auto run = [&](const std::string& bytes, auto& ctx) {
    http1::request_parser parser;
    REQUIRE(parser.parse(bytes).what == http1::event::head);
    http1::request_view req{parser.head()};
    return p.hello(ctx, req);
  };
  auto ok = p.make_context();
  CHECK(run("GET /v1/users/5 HTTP/1.1\r\nHost: x\r\n\r\n", ok).is_next());
  CHECK(ok.route == "v1-user");
  CHECK(ok.route.data() == router.routes()[12].name().data());  // config-owned text
  CHECK(ok.template state<rt::by_http_route>().match.param("id") == "5");
  CHECK(seen == "v1-user /users/5");
  auto missing = p.make_context();
  const auto v = run("GET /nowhere/x HTTP/1.1\r\nHost: x\r\n\r\n", missing);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::not_found);
  auto bad = p.make_context();
  const auto b = run("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", bad);
  REQUIRE(b.is_reject());
  CHECK(b.reason().code == rproxy::reject_code::bad_request);
}

namespace {
// The precedence rules of docs/routing.md written as a plain reference: among the routes whose
// pattern and predicates accept the request, the least by (per segment: literal < :param <
// end < *rest/prefix), then more predicates, then config order.
struct reference_route {
  const rt::http_route* route;
  std::vector<std::string> segs;  // literal text or ":name"
  bool tail = false;
  std::string tail_name;
};

std::vector<reference_route> reference_of(const rt::http_router& r) {
  std::vector<reference_route> out;
  for (const auto& route : r.routes()) {
    reference_route e{&route, {}, !route.config().prefix.empty(), {}};
    std::string p = route.config().path.empty() ? route.config().prefix : route.config().path;
    if (p != "/") {
      std::size_t pos = 1;
      for (;;) {
        const auto slash = p.find('/', pos);
        std::string seg = p.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        if (!seg.empty() && seg[0] == '*') e.tail = true, e.tail_name = seg.substr(1);
        else e.segs.push_back(seg);
        if (slash == std::string::npos) break;
        pos = slash + 1;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

int rank(const reference_route& e, std::size_t i) {
  if (i < e.segs.size()) return e.segs[i][0] == ':' ? 1 : 0;
  return e.tail ? 3 : 2;
}

bool before(const reference_route& a, const reference_route& b) {
  for (std::size_t i = 0;; ++i) {
    const int ra = rank(a, i), rb = rank(b, i);
    if (ra != rb) return ra < rb;
    if (ra == 0 && a.segs[i] != b.segs[i]) return a.segs[i] < b.segs[i];  // never both match
    if (ra >= 2) break;
  }
  if (a.route->predicate_count() != b.route->predicate_count())
    return a.route->predicate_count() > b.route->predicate_count();
  return a.route->index() < b.route->index();
}
}  // namespace

TEST_CASE("http_router: random tables agree with the reference order of docs/routing.md", "[route]") {
  std::mt19937 rng(2026);
  const std::vector<std::string> seg_choices{"a", "b", ":p", ":q"};
  const std::vector<std::string> path_segs{"a", "b", "c", ""};
  std::size_t compared = 0, matched = 0;
  for (int t = 0; t < 300; ++t) {
    // A random table; routes another shadows are dropped (that is build's error).
    std::vector<rt::http_route_config> routes;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      std::string p;
      const int depth = static_cast<int>(rng() % 4);
      std::vector<std::string> used;
      for (int d = 0; d < depth; ++d) {
        std::string s = seg_choices[rng() % seg_choices.size()];
        if (s[0] == ':') s += std::to_string(d);
        p += "/" + s;
      }
      const int end = static_cast<int>(rng() % 3);  // whole path, *rest, prefix
      if (end == 1) p += "/*r";
      if (p.empty()) p = "/";
      auto c = route("r" + std::to_string(i), end == 2 ? "prefix:" + p : p);
      if (rng() % 3 == 0) c.methods = {rng() % 2 ? "GET" : "POST"};
      if (rng() % 3 == 0) c.headers = {{"X", rng() % 2 ? std::optional<std::string>("1") : std::nullopt}};
      routes.push_back(std::move(c));
    }
    auto built = rt::http_router::build(routes);
    while (!built) {
      std::vector<std::size_t> drop;
      for (const auto& e : built.error()) drop.push_back(e.route);
      std::sort(drop.begin(), drop.end());
      drop.erase(std::unique(drop.begin(), drop.end()), drop.end());
      for (auto it = drop.rbegin(); it != drop.rend(); ++it) routes.erase(routes.begin() + static_cast<std::ptrdiff_t>(*it));
      built = rt::http_router::build(routes);
    }
    const auto& router = *built;
    const auto ref = reference_of(router);
    for (int q = 0; q < 40; ++q) {
      fake_request req;
      req.method = rng() % 2 ? "GET" : "POST";
      if (rng() % 2) req.headers.emplace_back("X", rng() % 2 ? "1" : "2");
      std::vector<std::string> segs;
      req.path.clear();
      const int depth = static_cast<int>(rng() % 5);
      for (int d = 0; d < depth; ++d) {
        segs.push_back(path_segs[rng() % (d + 1 == depth ? 4 : 3)]);  // "" only last: a trailing slash
        req.path += "/" + segs.back();
      }
      if (req.path.empty() || req.path == "/") req.path = "/", segs.clear();  // "/" has no segment
      // The reference.
      const reference_route* best = nullptr;
      for (const auto& e : ref) {
        if (e.segs.size() > segs.size() || (!e.tail && e.segs.size() != segs.size())) continue;
        bool ok = true;
        for (std::size_t i = 0; ok && i < e.segs.size(); ++i)
          ok = e.segs[i][0] == ':' ? !segs[i].empty() : e.segs[i] == segs[i];
        if (!ok || !e.route->accepts(view{&req})) continue;
        if (!best || before(e, *best)) best = &e;
      }
      rt::http_match m;
      const auto st = router.match(view{&req}, m);
      INFO("table " << t << " path " << req.path << " method " << req.method);
      ++compared;
      if (!best) {
        CHECK(st == rt::http_route_status::not_found);
        continue;
      }
      ++matched;
      REQUIRE(st == rt::http_route_status::matched);
      CHECK(m.route() == best->route);
      // Params: each :name is its segment; *r is the rest.
      for (std::size_t i = 0; i < best->segs.size(); ++i)
        if (best->segs[i][0] == ':') CHECK(m.param(best->segs[i].substr(1)) == segs[i]);
      if (!best->tail_name.empty()) {
        std::string rest;
        for (std::size_t i = best->segs.size(); i < segs.size(); ++i) rest += (i > best->segs.size() ? "/" : "") + segs[i];
        CHECK(m.param(best->tail_name) == rest);
      }
    }
  }
  CHECK(compared == 300u * 40u);
  CHECK(matched > compared / 4);  // the comparison is not all misses
}
