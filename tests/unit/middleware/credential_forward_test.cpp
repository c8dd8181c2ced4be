// What a backend is sent after a credential stage ran: the upstream request head the HTTP/1.1
// adapter builds (flow/http1_exchange.hpp's upstream_head, which the HTTP/2 and HTTP/3 flows
// build their backend heads with too). api_key_auth leaves the key out unless forward_key;
// jwt_auth passes the token on unless forward_token is false.
#include <rproxy/codec/h3/request.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/middleware/api_key.hpp>
#include <rproxy/middleware/api_key_block.hpp>
#include <rproxy/middleware/jwt_auth.hpp>
#include <rproxy/middleware/jwt_block.hpp>

#include <catch2/catch.hpp>

#include "jwt_signer.hpp"

#include <string>
#include <string_view>

namespace {
namespace mw = rproxy::middleware;
namespace http1 = rproxy::codec::http1;
namespace flow = rproxy::flow;

const std::string key = "rk_live_5d0c1e2f3a4b5c6d7e8f9a0b1c2d3e4f";

/// The upstream head for `request` after `stage` ran on it, and the stage's verdict.
template <class Stage>
std::string upstream_after(Stage stage, std::string_view request, bool& passed) {
  auto p = rproxy::make_pipeline<flow::http1_protocol>(std::move(stage));
  http1::request_parser parser;
  REQUIRE(parser.parse(request).what == http1::event::head);
  auto ctx = p.make_context();
  passed = p.hello(ctx, http1::request_view(parser.head())).is_next();
  flow::http1_adapter adapter;
  return adapter.upstream_head(ctx, parser.head(), parser.info());
}

/// The api_key_auth stage over one stored key.
struct through_stage {
  mw::api_key_config cfg;
  mw::api_key_store store;
  bool passed = false;
  std::string upstream;

  through_stage() {
    mw::api_key_table t;
    REQUIRE(t.add_key(key, "ci-bot"));
    store.replace(std::move(t));
  }
  void run(std::string_view request) { upstream = upstream_after(mw::api_key_auth{&cfg, &store, nullptr}, request, passed); }
  bool has(std::string_view text) const { return upstream.find(text) != std::string::npos; }
};

}  // namespace

TEST_CASE("api_key_auth: the key never reaches the backend unless forward_key", "[middleware][api_key]") {
  through_stage s;
  const std::string request = "GET /v1/x HTTP/1.1\r\nHost: api.test\r\nx-api-key: " + key + "\r\nX-Other: kept\r\n\r\n";

  SECTION("default: removed, whatever the name's case") {
    s.run(request);
    CHECK(s.passed);
    CHECK_FALSE(s.has(key));
    CHECK_FALSE(s.has("x-api-key"));
    CHECK(s.has("\r\nX-Other: kept\r\n"));
    CHECK(s.has("\r\nHost: api.test\r\n"));
  }
  SECTION("optional: a request without a key passes as it came") {
    s.cfg.optional = true;
    s.run("GET / HTTP/1.1\r\nHost: a\r\nX-Other: kept\r\n\r\n");
    CHECK(s.passed);
    CHECK(s.has("\r\nX-Other: kept\r\n"));
    CHECK_FALSE(s.has("-Key"));
  }
  SECTION("a configured header name, the default one untouched") {
    mw::api_key_block b;
    b.header = "X-Partner-Key";
    s.cfg = b.config();
    s.run("GET / HTTP/1.1\r\nHost: a\r\nX-Partner-Key: " + key + "\r\nX-API-Key: other\r\n\r\n");
    CHECK(s.passed);
    CHECK_FALSE(s.has(key));
    CHECK(s.has("\r\nX-API-Key: other\r\n"));
  }
  SECTION("a key in the query is taken out of the target, the other parameters kept") {
    s.cfg.sources.push_back({mw::credential_source::place::query, "api_key", ""});
    s.run("GET /v1/x?a=1&api%5Fkey=" + key + "&b=two+words HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(s.passed);
    CHECK_FALSE(s.has(key));
    CHECK(s.upstream.starts_with("GET /v1/x?a=1&b=two+words HTTP/1.1\r\n"));
    s.run("GET /v1/x?api_key=" + key + " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(s.passed);
    CHECK(s.upstream.starts_with("GET /v1/x HTTP/1.1\r\n"));
    s.cfg.forward_key = true;
    s.run("GET /v1/x?api_key=" + key + " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(s.upstream.starts_with("GET /v1/x?api_key=" + key + " HTTP/1.1\r\n"));
  }
  SECTION("forward_key: true passes it on") {
    mw::api_key_block b;
    b.forward_key = true;
    s.cfg = b.config();
    s.run(request);
    CHECK(s.passed);
    CHECK(s.has("\r\nx-api-key: " + key + "\r\n"));
  }
}

TEST_CASE("jwt_auth: the token goes on to the backend unless forward_token is false", "[middleware][jwt]") {
  mw::key_set ks;
  REQUIRE(ks.add_jwks(test_jwt::jwk(test_jwt::keys::get().p256.get(), "ec1")));
  mw::key_store keys(std::move(ks));
  const std::string claims = R"({"sub":"alice","iss":"https://idp.test","exp":)" + std::to_string(test_jwt::now_s() + 3600) + "}";
  const std::string tok = test_jwt::token(mw::jwt_alg::es256, test_jwt::keys::get().p256.get(), "", R"({"alg":"ES256","kid":"ec1"})", claims);
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + tok + "\r\nX-Other: kept\r\n\r\n";
  mw::jwt_block b;
  b.issuers = {"https://idp.test"};
  b.forward = {{"sub", "X-User"}};
  bool passed = false;

  SECTION("default: passed on") {
    auto cfg = b.config();
    const auto up = upstream_after(mw::jwt_auth{&cfg, &keys, nullptr}, request, passed);
    CHECK(passed);
    CHECK(up.find("\r\nAuthorization: Bearer " + tok + "\r\n") != std::string::npos);
    CHECK(up.find("\r\nX-User: alice\r\n") != std::string::npos);
  }
  SECTION("forward_token: false removes it, the claim headers stay") {
    b.forward_token = false;
    auto cfg = b.config();
    const auto up = upstream_after(mw::jwt_auth{&cfg, &keys, nullptr}, request, passed);
    CHECK(passed);
    CHECK(up.find(tok) == std::string::npos);
    CHECK(up.find("Authorization") == std::string::npos);
    CHECK(up.find("\r\nX-User: alice\r\n") != std::string::npos);
    CHECK(up.find("\r\nX-Other: kept\r\n") != std::string::npos);
  }
}

TEST_CASE("api_key_auth: a key in a cookie is taken out of Cookie, the other cookies kept", "[middleware][api_key]") {
  through_stage s;
  mw::api_key_block b;
  b.cookie = "api_key";
  s.cfg = b.config();

  SECTION("one Cookie field: the others kept in order") {
    s.run("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; api_key=" + key + "; b=\"two\"\r\n\r\n");
    CHECK(s.passed);
    CHECK_FALSE(s.has(key));
    CHECK(s.has("\r\nCookie: a=1; b=\"two\"\r\n"));
  }
  SECTION("the key the only cookie: no Cookie field") {
    s.run("GET / HTTP/1.1\r\nHost: a\r\nCookie: api_key=" + key + "\r\nX-Other: kept\r\n\r\n");
    CHECK(s.passed);
    CHECK_FALSE(s.has(key));
    CHECK_FALSE(s.has("ookie"));
    CHECK(s.has("\r\nX-Other: kept\r\n"));
  }
  SECTION("several Cookie fields: joined into one without the key") {
    s.run("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: api_key=" + key + ";b=2\r\n\r\n");
    CHECK(s.passed);
    CHECK_FALSE(s.has(key));
    CHECK(s.has("\r\nCookie: a=1; b=2\r\n"));
    CHECK(s.upstream.find("ookie") == s.upstream.rfind("ookie"));  // one field
  }
  SECTION("no key cookie: Cookie fields pass as they came") {
    s.cfg.optional = true;
    s.run("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: api_keyx=2\r\n\r\n");
    CHECK(s.passed);
    CHECK(s.has("\r\nCookie: a=1\r\nCookie: api_keyx=2\r\n"));
  }
  SECTION("a wrong key is dropped too") {
    s.run("GET / HTTP/1.1\r\nHost: a\r\nCookie: api_key=wrong; a=1\r\n\r\n");
    CHECK_FALSE(s.passed);
    CHECK(s.has("\r\nCookie: a=1\r\n"));
  }
  SECTION("forward_key: true passes the cookie on") {
    b.forward_key = true;
    s.cfg = b.config();
    s.run("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; api_key=" + key + "\r\n\r\n");
    CHECK(s.passed);
    CHECK(s.has("\r\nCookie: a=1; api_key=" + key + "\r\n"));
  }
  SECTION("the query parameter from the block") {
    b.query = "api_key";
    s.cfg = b.config();
    s.run("GET /x?api_key=" + key + "&q=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(s.passed);
    CHECK(s.upstream.starts_with("GET /x?q=1 HTTP/1.1\r\n"));
  }
}

namespace {

/// A signed token for alice and the key store that verifies it.
struct token_fixture {
  mw::key_store keys{[] {
    mw::key_set ks;
    REQUIRE(ks.add_jwks(test_jwt::jwk(test_jwt::keys::get().p256.get(), "ec1")));
    return ks;
  }()};
  std::string tok = test_jwt::token(mw::jwt_alg::es256, test_jwt::keys::get().p256.get(), "", R"({"alg":"ES256","kid":"ec1"})",
                                    R"({"sub":"alice","exp":)" + std::to_string(test_jwt::now_s() + 3600) + "}");
};

}  // namespace

TEST_CASE("jwt_auth: a token in a cookie or the query is taken out when forward_token is false", "[middleware][jwt]") {
  token_fixture t;
  mw::jwt_block b;
  b.cookie = "access_token";
  b.query = "access_token";
  b.forward_token = false;
  bool passed = false;

  SECTION("cookie: the others kept") {
    auto cfg = b.config();
    const auto up = upstream_after(mw::jwt_auth{&cfg, &t.keys, nullptr},
                                   "GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; access_token=" + t.tok + "; lang=en\r\n\r\n", passed);
    CHECK(passed);
    CHECK(up.find(t.tok) == std::string::npos);
    CHECK(up.find("\r\nCookie: theme=dark; lang=en\r\n") != std::string::npos);
  }
  SECTION("query: the other parameters kept") {
    auto cfg = b.config();
    const auto up = upstream_after(mw::jwt_auth{&cfg, &t.keys, nullptr}, "GET /a?x=1&access_token=" + t.tok + " HTTP/1.1\r\nHost: a\r\n\r\n", passed);
    CHECK(passed);
    CHECK(up.starts_with("GET /a?x=1 HTTP/1.1\r\n"));
  }
  SECTION("forward_token: true passes the cookie on") {
    b.forward_token = true;
    auto cfg = b.config();
    const auto up = upstream_after(mw::jwt_auth{&cfg, &t.keys, nullptr},
                                   "GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; access_token=" + t.tok + "\r\n\r\n", passed);
    CHECK(passed);
    CHECK(up.find("\r\nCookie: theme=dark; access_token=" + t.tok + "\r\n") != std::string::npos);
  }
  SECTION("a JWT cookie and an API key cookie: both taken out, in either stage's turn") {
    auto cfg = b.config();
    mw::api_key_block kb;
    kb.cookie = "api_key";
    auto kcfg = kb.config();
    mw::api_key_store store;
    mw::api_key_table table;
    REQUIRE(table.add_key(key, "ci-bot"));
    store.replace(std::move(table));
    auto p = rproxy::make_pipeline<flow::http1_protocol>(mw::jwt_auth{&cfg, &t.keys, nullptr}, mw::api_key_auth{&kcfg, &store, nullptr});
    const std::string request = "GET / HTTP/1.1\r\nHost: a\r\nCookie: api_key=" + key + "; a=1; access_token=" + t.tok + "; b=2\r\n\r\n";
    http1::request_parser parser;
    REQUIRE(parser.parse(request).what == http1::event::head);
    auto ctx = p.make_context();
    CHECK(p.hello(ctx, http1::request_view(parser.head())).is_next());
    const auto up = flow::http1_adapter{}.upstream_head(ctx, parser.head(), parser.info());
    CHECK(up.find(t.tok) == std::string::npos);
    CHECK(up.find(key) == std::string::npos);
    CHECK(up.find("\r\nCookie: a=1; b=2\r\n") != std::string::npos);
  }
}

TEST_CASE("credential cookies in HTTP/2 and HTTP/3 cookie crumbs: joined, the credential left out", "[middleware][jwt]") {
  token_fixture t;
  mw::jwt_block b;
  b.cookie = "access_token";
  b.forward_token = false;
  auto cfg = b.config();
  // h3::request maps a header block as h2::request does (the same header_block: crumbs joined).
  rproxy::codec::h3::request r;
  r.add(":method", "GET");
  r.add(":path", "/p");
  r.add(":authority", "a.test");
  r.add(":scheme", "https");
  r.add("cookie", "theme=dark");
  r.add("x-other", "kept");
  r.add("cookie", "access_token=" + t.tok);
  r.add("cookie", "lang=en");
  REQUIRE(r.finish_head(0) == rproxy::codec::h2::error{});
  auto p = rproxy::make_pipeline<flow::http1_protocol>(mw::jwt_auth{&cfg, &t.keys, nullptr});
  auto ctx = p.make_context();
  CHECK(p.hello(ctx, rproxy::codec::h3::request_view(r)).is_next());
  const auto up = flow::http1_adapter{}.upstream_head(ctx, r.head(), {});
  CHECK(up.find(t.tok) == std::string::npos);
  CHECK(up.find("\r\nCookie: theme=dark; lang=en\r\n") != std::string::npos);
  CHECK(up.find("\r\nx-other: kept\r\n") != std::string::npos);
  CHECK(up.find("ookie") == up.rfind("ookie"));
}
