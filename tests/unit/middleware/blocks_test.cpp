// The security stages' YAML blocks (middleware/*_block.hpp): an app that lists a block gets its
// keys, its errors at file:line:col, and the stage's config built from it.
#include <catch2/catch.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/middleware/api_key_block.hpp>
#include <rproxy/middleware/audit_block.hpp>
#include <rproxy/middleware/ban_block.hpp>
#include <rproxy/middleware/conn_limit_block.hpp>
#include <rproxy/middleware/ip_filter_block.hpp>
#include <rproxy/middleware/jwt_block.hpp>
#include <rproxy/middleware/rate_limit_block.hpp>

#include <optional>
#include <string>
#include <vector>

namespace bt {
namespace mw = rproxy::middleware;
struct app_config {
  mw::ip_filter_block ip_filter{};
  mw::conn_limit_block conn_limit{};
  mw::ban_block bans{};
  std::optional<mw::jwt_block> jwt;
  std::optional<mw::api_key_block> api_keys;
  std::optional<mw::rate_limit_block> rate_limit;
  mw::audit_block audit{};
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&app_config::ip_filter>("ip"), cfg::doc<&app_config::conn_limit>("conns"),
                       cfg::doc<&app_config::bans>("bans"), cfg::doc<&app_config::jwt>("jwt"),
                       cfg::doc<&app_config::api_keys>("keys"), cfg::doc<&app_config::rate_limit>("rates"),
                       cfg::doc<&app_config::audit>("audit"));
  }
};
}  // namespace bt


namespace {
namespace cfg = rproxy::config;
namespace mw = rproxy::middleware;

std::vector<std::string> errors_of(const std::string& yaml) {
  auto r = cfg::load_string<bt::app_config>(yaml, "app.yaml");
  REQUIRE_FALSE(r);
  std::vector<std::string> out;
  for (const auto& d : r.error()) out.push_back(d.to_string());
  return out;
}
}  // namespace

TEST_CASE("blocks: a good file builds each stage's config", "[middleware][config]") {
  auto r = cfg::load_string<bt::app_config>(R"(ip_filter: { default_allow: false, allow: [10.0.0.0/8], deny: [10.6.6.0/24] }
conn_limit: { max_per_ip: 4, max_total: 100 }
bans: { file: bans.txt, message: go away }
jwt:
  keys: [ { type: hmac, file: jwt.secret, kid: demo, algorithm: HS256 } ]
  audiences: [ api ]
  cookie: session
  forward: [ { claim: sub, header: X-User } ]
api_keys: { file: keys.txt, header: X-Key }
rate_limit:
  key: [ identity, claim:org ]
  tiers: [ { name: default, algorithm: sliding_window, limit: 3, window: 2s } ]
  penalty: { after: 5 }
audit: { per_second: 2, burst: 3 }
)",
                                            "app.yaml");
  REQUIRE(r);
  const auto& c = *r;
  auto ip = c.ip_filter.build();
  CHECK_FALSE(ip.cfg.default_allow);
  CHECK(ip.cfg.deny == std::vector<std::string>{"10.6.6.0/24"});
  CHECK(c.conn_limit.config().max_per_ip == 4);
  CHECK(c.conn_limit.config().max_total == 100);
  CHECK(c.bans.config().reject_message == "go away");

  const auto ks = c.jwt->key_sources();
  REQUIRE(ks.size() == 1);
  CHECK(ks[0].type == mw::key_source::kind::hmac_secret_file);
  CHECK(ks[0].kid == "demo");
  const auto jc = c.jwt->config(c.rate_limit->claims());
  CHECK(jc.sources.size() == 2);  // the Bearer header and the cookie
  CHECK(jc.token.audiences == std::vector<std::string>{"api"});
  CHECK(jc.keep_claims == std::vector<std::string>{"org"});
  REQUIRE(jc.forward.size() == 1);
  CHECK(jc.forward[0].header == "X-User");

  CHECK(c.api_keys->config().sources.at(0).name == "X-Key");
  CHECK(c.api_keys->config().sources.at(0).scheme.empty());

  const auto rc = c.rate_limit->config("request");
  REQUIRE(rc.key.size() == 2);
  CHECK(rc.key[1].from == mw::rate_key_part::source::claim);
  CHECK(rc.hello_operation == "request");
  const auto* rule = rc.find_rule("default", "request");
  REQUIRE(rule != nullptr);
  CHECK(rule->limit == 3);
  CHECK(rule->algorithm == mw::rate_algorithm::sliding_window);
  CHECK(rule->window == std::chrono::seconds(2));
  CHECK(rc.penalty.after == 5);
  CHECK(c.audit.burst == 3);
}

TEST_CASE("blocks: each block's own checks report at the line of the bad value", "[middleware][config]") {
  const std::string yaml = R"(ip_filter:
  deny: [ 10.6.6.0/24, not-a-net ]
jwt:
  keys: [ { type: pem, file: k.pem, algorithm: XX256 } ]
  algorithms: [ RS256, nope ]
  forward: [ { claim: sub, header: "X User" } ]
api_keys: { file: keys.txt, header: "bad:name" }
rate_limit:
  key: [ ip, "claim:" ]
  tiers: [ { name: default, limit: 1 } ]
)";
  const auto errors = errors_of(yaml);
  const std::vector<std::string> expected = {
      "app.yaml:2:24: not a CIDR: 'not-a-net'",
      "app.yaml:4:48: unknown algorithm 'XX256'",
      "app.yaml:5:24: unknown algorithm 'nope'",
      "app.yaml:6:36: not a header name",
      "app.yaml:7:37: not a header name",
      "app.yaml:9:14: unknown key part 'claim:'",
  };
  CHECK(errors == expected);
}
