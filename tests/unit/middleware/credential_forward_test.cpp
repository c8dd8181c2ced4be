// What a backend is sent after a credential stage ran: the upstream request head the HTTP/1.1
// adapter builds (flow/http1_exchange.hpp's upstream_head, which the HTTP/2 and HTTP/3 flows
// build their backend heads with too). api_key_auth leaves the key out unless forward_key;
// jwt_auth passes the token on unless forward_token is false.
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
