#include <rproxy/middleware/jwt_auth.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "jwt_signer.hpp"

namespace mw = rproxy::middleware;
using mw::jwt_alg;

namespace {

struct fake_request {
  std::map<std::string, std::string, std::less<>> headers, cookies, query_params;
  static std::optional<std::string_view> get(const std::map<std::string, std::string, std::less<>>& m,
                                             std::string_view n) {
    auto it = m.find(n);
    return it == m.end() ? std::nullopt : std::optional<std::string_view>(it->second);
  }
  std::optional<std::string_view> header(std::string_view n) const { return get(headers, n); }
  std::optional<std::string_view> cookie(std::string_view n) const { return get(cookies, n); }
  std::optional<std::string_view> query(std::string_view n) const { return get(query_params, n); }
};

struct http_protocol {
  using flow = rproxy::flow_info;
  using hello = fake_request;
  using message = fake_request;
  using response = int;
};

struct lines {
  std::vector<std::string> out;
  void operator()(const mw::audit_record&, std::string_view line) { out.emplace_back(line); }
};

std::string token(const std::string& claims_body, std::int64_t exp_offset = 3600) {
  const auto& k = test_jwt::keys::get();
  std::string claims = "{" + claims_body + (claims_body.empty() ? "" : ",") +
                       R"("iss":"https://idp.test","aud":"chat","exp":)" +
                       std::to_string(test_jwt::now_s() + exp_offset) + "}";
  return test_jwt::token(jwt_alg::es256, k.p256.get(), "", R"({"alg":"ES256","kid":"ec1"})", claims);
}

mw::key_store make_keys() {
  mw::key_set ks;
  REQUIRE(ks.add_jwks(test_jwt::jwk(test_jwt::keys::get().p256.get(), "ec1")));
  return mw::key_store(std::move(ks));
}

mw::jwt_auth_config make_config() {
  mw::jwt_auth_config cfg;
  cfg.token.issuers = {"https://idp.test"};
  cfg.token.audiences = {"chat"};
  cfg.sources.push_back({mw::credential_source::place::cookie, "session", ""});
  cfg.sources.push_back({mw::credential_source::place::query, "access_token", ""});
  cfg.keep_claims = {"role", "org"};
  cfg.forward = {{"sub", "X-User"}, {"role", "X-Role"}, {"evil", "X-Evil"}, {"groups", "X-Groups"}};
  return cfg;
}

}  // namespace

TEST_CASE("jwt_auth stage: bearer token sets identity, principal and forwarded headers", "[middleware][jwt]") {
  auto keys = make_keys();
  auto cfg = make_config();
  lines sink;
  auto log = mw::audit_log::to(sink);
  using jwt_stage = mw::jwt_auth;
  auto p = rproxy::make_pipeline<http_protocol>(jwt_stage{&cfg, &keys, &log});

  fake_request req;
  req.headers["Authorization"] =
      "bearer " + token(R"("sub":"alice","tier":"premium","role":"mod","org":7,"evil":"a\r\nX-Admin: 1","groups":["a","b"])");
  auto ctx = p.make_context();
  REQUIRE(p.hello(ctx, req).is_next());
  CHECK(ctx.identity == "alice");
  const mw::principal* who = mw::find_principal(ctx);
  REQUIRE(who);
  CHECK(who->subject == "alice");
  CHECK(who->tier == "premium");
  CHECK(who->claim("role") == "mod");
  CHECK(who->claim("org") == "7");
  CHECK_FALSE(who->claim("sub"));
  const auto& fwd = ctx.state<jwt_stage>().forward_headers;
  using pairs = std::vector<std::pair<std::string_view, std::string>>;
  CHECK(fwd == pairs{{"X-User", "alice"}, {"X-Role", "mod"}, {"X-Groups", "a,b"}});  // CR/LF value dropped
  CHECK(sink.out.empty());
}

TEST_CASE("jwt_auth stage: token from cookie or query; scheme must match", "[middleware][jwt]") {
  auto keys = make_keys();
  auto cfg = make_config();
  auto p = rproxy::make_pipeline<http_protocol>(mw::jwt_auth{&cfg, &keys, nullptr});
  auto run = [&](const fake_request& r) {
    auto ctx = p.make_context();
    auto v = p.hello(ctx, r);
    return std::pair(v.is_next(), ctx.identity);
  };
  fake_request by_cookie;
  by_cookie.cookies["session"] = token(R"("sub":"bob")");
  CHECK(run(by_cookie) == std::pair(true, std::string("bob")));
  fake_request by_query;
  by_query.query_params["access_token"] = token(R"("sub":"carol")");
  CHECK(run(by_query) == std::pair(true, std::string("carol")));
  fake_request basic;  // wrong scheme: not a token source, so no credentials at all
  basic.headers["Authorization"] = "Basic " + token(R"("sub":"dave")");
  CHECK_FALSE(run(basic).first);
  fake_request bare;  // scheme required
  bare.headers["Authorization"] = token(R"("sub":"dave")");
  CHECK_FALSE(run(bare).first);
  fake_request spaced;
  spaced.headers["Authorization"] = "  Bearer   " + token(R"("sub":"erin")") + "  ";
  CHECK(run(spaced) == std::pair(true, std::string("erin")));
}

TEST_CASE("jwt_auth stage: its state is made only for a verified token (a flow without one holds a pointer)",
          "[middleware][jwt]") {
  auto keys = make_keys();
  auto cfg = make_config();
  cfg.optional = true;
  using jwt_stage = mw::jwt_auth;
  auto p = rproxy::make_pipeline<http_protocol>(jwt_stage{&cfg, &keys, nullptr});
  STATIC_REQUIRE(sizeof(decltype(p.make_context())) == sizeof(rproxy::flow_info) + sizeof(void*));
  auto anon = p.make_context();
  REQUIRE(p.hello(anon, fake_request{}).is_next());  // optional, and none sent
  CHECK(anon.find_state<jwt_stage>() == nullptr);
  CHECK(mw::find_principal(anon) == nullptr);
  fake_request bad;
  bad.headers["Authorization"] = "Bearer " + token(R"("sub":"eve")", -3600);  // expired
  auto refused = p.make_context();
  REQUIRE(p.hello(refused, bad).is_reject());
  CHECK(refused.find_state<jwt_stage>() == nullptr);
  fake_request good;
  good.headers["Authorization"] = "Bearer " + token(R"("sub":"bob","role":"admin")");
  auto ctx = p.make_context();
  REQUIRE(p.hello(ctx, good).is_next());
  REQUIRE(ctx.find_state<jwt_stage>() != nullptr);
  REQUIRE(mw::find_principal(ctx) == &ctx.find_state<jwt_stage>()->auth);
  CHECK(mw::find_principal(ctx)->claim("role") == "admin");
}

TEST_CASE("jwt_auth stage: failures reject as unauthorized and are audited without the token",
          "[middleware][jwt]") {
  auto keys = make_keys();
  auto cfg = make_config();
  lines sink;
  auto log = mw::audit_log::to(sink);
  auto p = rproxy::make_pipeline<http_protocol>(mw::jwt_auth{&cfg, &keys, &log});
  auto expired = token(R"("sub":"alice")", -3600);
  fake_request req;
  req.headers["Authorization"] = "Bearer " + expired;
  auto ctx = p.make_context();
  ctx.client = {asio::ip::make_address("192.0.2.44"), 1};
  auto v = p.hello(ctx, req);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::unauthorized);
  CHECK(v.reason().message == "invalid or missing token");
  CHECK(ctx.identity.empty());
  CHECK(mw::find_principal(ctx) == nullptr);
  REQUIRE(sink.out.size() == 1);
  CHECK(sink.out[0].find("token expired") != std::string::npos);
  CHECK(sink.out[0].find("client=192.0.2.44") != std::string::npos);
  auto dot = expired.find('.');
  CHECK(sink.out[0].find(expired.substr(0, dot)) == std::string::npos);
  CHECK(sink.out[0].find(expired.substr(expired.rfind('.') + 1)) == std::string::npos);

  auto c2 = p.make_context();
  CHECK(p.hello(c2, fake_request{}).is_reject());  // missing
  cfg.optional = true;
  auto c3 = p.make_context();
  CHECK(p.hello(c3, fake_request{}).is_next());    // anonymous allowed
  auto c4 = p.make_context();
  CHECK(p.hello(c4, req).is_reject());             // but a bad token never passes
}

TEST_CASE("jwt_auth stage: reloaded keys take effect for new flows", "[middleware][jwt]") {
  auto keys = make_keys();
  auto cfg = make_config();
  auto p = rproxy::make_pipeline<http_protocol>(mw::jwt_auth{&cfg, &keys, nullptr});
  fake_request req;
  req.headers["Authorization"] = "Bearer " + token(R"("sub":"alice")");
  auto c1 = p.make_context();
  CHECK(p.hello(c1, req).is_next());
  mw::key_set other;
  REQUIRE(other.add_jwks(test_jwt::jwk(test_jwt::keys::get().ed.get(), "ed1")));
  keys.replace(std::move(other));
  auto c2 = p.make_context();
  CHECK(p.hello(c2, req).is_reject());
}

TEST_CASE("jwt_auth then rate_limit: the verified tier and subject key the limit", "[middleware][jwt]") {
  auto keys = make_keys();
  auto cfg = make_config();
  mw::rate_limit_config rl;
  rl.key = {{mw::rate_key_part::source::claim, "org"}};
  rl.tiers = {{"default", {{"request", {mw::rate_algorithm::token_bucket, 1, std::chrono::minutes(1)}}}},
              {"premium", {{"request", {mw::rate_algorithm::token_bucket, 3, std::chrono::minutes(1)}}}}};
  mw::local_counter_store store;
  auto p = rproxy::make_pipeline<http_protocol>(mw::jwt_auth{&cfg, &keys, nullptr}, mw::rate_limit{&rl, &store, nullptr});
  auto count = [&](const std::string& body) {
    fake_request req;
    req.headers["Authorization"] = "Bearer " + token(body);
    int n = 0;
    for (int i = 0; i < 5; ++i) {
      auto ctx = p.make_context();
      n += p.hello(ctx, req).is_next();
    }
    return n;
  };
  CHECK(count(R"("sub":"a","tier":"premium","org":"acme")") == 3);
  CHECK(count(R"("sub":"b","tier":"premium","org":"acme")") == 0);  // same org bucket
  CHECK(count(R"("sub":"c","org":"acme")") == 1);                   // default tier: its own bucket
  CHECK(count(R"("sub":"d","tier":"premium","org":"globex")") == 3);
}
