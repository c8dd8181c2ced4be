// The cors stage on HTTP/1.1 requests, as the Fetch standard's CORS protocol expects: preflights
// answered, simple requests marked, origins matched exactly or by subdomain pattern.
#include <rproxy/config/decode.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/middleware/cors.hpp>
#include <rproxy/middleware/cors_block.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace {
namespace mw = rproxy::middleware;
namespace http1 = rproxy::codec::http1;
namespace flow = rproxy::flow;

struct outcome {
  rproxy::verdict v = rproxy::next;
  std::string reply;     ///< a preflight's answer
  http1::fields fields;  ///< what the response to the client gets (a backend's Vary kept)
};

outcome run(const mw::cors_config& cfg, std::string_view request) {
  auto p = rproxy::make_pipeline<flow::http1_protocol>(mw::cors{&cfg});
  http1::request_parser parser;
  auto r = parser.parse(request);
  REQUIRE(r.what == http1::event::head);
  auto ctx = p.make_context();
  outcome out;
  out.v = p.hello(ctx, http1::request_view(parser.head()));
  out.reply = ctx.reply;
  out.fields.add("Vary", "Accept-Encoding");  // as a backend's response would have it
  ctx.response_fields.apply(out.fields);
  return out;
}

std::string get(std::string_view origin) {
  return "GET /api HTTP/1.1\r\nHost: api.example.com\r\nOrigin: " + std::string(origin) + "\r\n\r\n";
}
std::string preflight(std::string_view origin, std::string_view method, std::string_view headers = {}) {
  std::string r = "OPTIONS /api HTTP/1.1\r\nHost: api.example.com\r\nOrigin: " + std::string(origin) +
                  "\r\nAccess-Control-Request-Method: " + std::string(method) + "\r\n";
  if (!headers.empty()) r += "Access-Control-Request-Headers: " + std::string(headers) + "\r\n";
  return r + "\r\n";
}

mw::cors_config app_config() {
  mw::cors_config c;
  c.allow_origins = {"https://app.example.com", "https://*.example.org"};
  c.allow_methods = {"GET", "POST", "PUT"};
  c.allow_headers = {"Authorization", "Content-Type"};
  c.expose_headers = {"X-Request-Id"};
  c.allow_credentials = true;
  return c;
}

}  // namespace

TEST_CASE("cors: origins match exactly (any case) or by subdomain pattern", "[middleware][cors]") {
  const auto c = app_config();
  CHECK(mw::origin_allowed(c, "https://app.example.com"));
  CHECK(mw::origin_allowed(c, "HTTPS://APP.EXAMPLE.COM"));
  CHECK(mw::origin_allowed(c, "https://a.example.org"));
  CHECK(mw::origin_allowed(c, "https://a.b.example.org"));
  CHECK_FALSE(mw::origin_allowed(c, "https://example.org"));             // not a subdomain
  CHECK_FALSE(mw::origin_allowed(c, "https://evilexample.org"));         // not a subdomain either
  CHECK_FALSE(mw::origin_allowed(c, "http://a.example.org"));            // another scheme
  CHECK_FALSE(mw::origin_allowed(c, "https://a.example.org:8443"));      // another port
  CHECK_FALSE(mw::origin_allowed(c, "https://x@a.example.org"));
  CHECK_FALSE(mw::origin_allowed(c, "https://a example.org"));
  CHECK_FALSE(mw::origin_allowed(c, "https://app.example.com.evil.net"));
  CHECK_FALSE(mw::origin_allowed(c, "null"));
}

TEST_CASE("cors: a request from an allowed origin gets the fields; others get none, or 403 when enforced", "[middleware][cors]") {
  auto c = app_config();
  auto ok = run(c, get("https://app.example.com"));
  CHECK(ok.v.is_next());
  CHECK(ok.fields.find("Access-Control-Allow-Origin") == "https://app.example.com");
  CHECK(ok.fields.find("Access-Control-Allow-Credentials") == "true");
  CHECK(ok.fields.find("Access-Control-Expose-Headers") == "X-Request-Id");
  CHECK(ok.fields.has_token("Vary", "Origin"));
  CHECK(ok.fields.has_token("Vary", "Accept-Encoding"));  // the backend's Vary is kept

  auto other = run(c, get("https://evil.example.net"));
  CHECK(other.v.is_next());
  CHECK_FALSE(other.fields.contains("Access-Control-Allow-Origin"));
  c.enforce = true;
  auto refused = run(c, get("https://evil.example.net"));
  REQUIRE(refused.v.is_reject());
  CHECK(refused.v.reason().code == rproxy::reject_code::forbidden);

  auto no_origin = run(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // not a CORS request: untouched
  CHECK(no_origin.v.is_next());
  CHECK(no_origin.fields.count("Vary") == 1);
  CHECK_FALSE(no_origin.fields.contains("Access-Control-Allow-Origin"));
}

TEST_CASE("cors: \"*\" without credentials answers \"*\" and needs no Vary", "[middleware][cors]") {
  mw::cors_config c;
  c.allow_origins = {"*"};
  auto r = run(c, get("https://anyone.example"));
  CHECK(r.fields.find("Access-Control-Allow-Origin") == "*");
  CHECK_FALSE(r.fields.has_token("Vary", "Origin"));
  CHECK_FALSE(r.fields.contains("Access-Control-Allow-Credentials"));
}

TEST_CASE("cors: preflights are answered here, allowed or refused", "[middleware][cors]") {
  const auto c = app_config();
  auto ok = run(c, preflight("https://a.example.org", "PUT", "content-type, authorization"));
  REQUIRE(ok.v.is_replied());
  CHECK(ok.reply.rfind("HTTP/1.1 204 No Content\r\n", 0) == 0);
  http1::response_parser rp;
  auto pr = rp.parse(ok.reply);
  REQUIRE(pr.what == http1::event::head);  // a well-formed response
  const auto& f = rp.head().fields;
  CHECK(f.find("Access-Control-Allow-Origin") == "https://a.example.org");
  CHECK(f.find("Access-Control-Allow-Methods") == "GET, POST, PUT");
  CHECK(f.find("Access-Control-Allow-Headers") == "content-type, authorization");
  CHECK(f.find("Access-Control-Allow-Credentials") == "true");
  CHECK(f.find("Access-Control-Max-Age") == "600");
  CHECK(f.has_token("Vary", "Origin"));

  CHECK(run(c, preflight("https://evil.example.net", "GET")).v.is_reject());
  CHECK(run(c, preflight("https://app.example.com", "DELETE")).v.is_reject());
  CHECK(run(c, preflight("https://app.example.com", "put")).v.is_reject());  // methods are case-sensitive
  CHECK(run(c, preflight("https://app.example.com", "GET", "X-Admin")).v.is_reject());
  CHECK(run(c, preflight("https://app.example.com", "GET", "Content-Type, X(y)")).v.is_reject());
  // OPTIONS without Access-Control-Request-Method is not a preflight: it goes on
  CHECK(run(c, "OPTIONS /api HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\n\r\n").v.is_next());
}

TEST_CASE("cors block: YAML to the stage, with its checks at the line", "[middleware][cors][config]") {
  struct app {
    std::optional<mw::cors_block> cors;
    static constexpr auto describe() { return rproxy::config::fields(rproxy::config::doc<&app::cors>("cors")); }
  };
  auto ok = rproxy::config::load_string<app>(
      "cors:\n  allow_origins: [ \"https://app.example.com\" ]\n  allow_credentials: true\n  max_age: 1h\n", "a.yaml");
  REQUIRE(ok);
  REQUIRE(ok->cors);
  const auto c = ok->cors->config();
  CHECK(c.allow_origins == std::vector<std::string>{"https://app.example.com"});
  CHECK(c.max_age == std::chrono::hours(1));
  CHECK(c.allow_credentials);

  auto error_of = [](const std::string& yaml) {
    auto r = rproxy::config::load_string<app>(yaml, "a.yaml");
    REQUIRE_FALSE(r);
    REQUIRE(r.error().begin() != r.error().end());
    return r.error().begin()->to_string();
  };
  CHECK(error_of("cors:\n  allow_credentials: true\n  allow_origins: [ \"*\" ]\n").find("a.yaml:3") != std::string::npos);
  CHECK(error_of("cors:\n  allow_origins:\n    - https://app.example.com/\n").find("a.yaml:3") != std::string::npos);
  CHECK(error_of("cors:\n  allow_origins: [ \"https://a*.example.com\" ]\n").find("wildcard") != std::string::npos);
  CHECK(error_of("cors:\n  allow_origins: [ \"h*://x\" ]\n").find("wildcard") != std::string::npos);
  CHECK(error_of("cors: {}\n").find("allow_origins") != std::string::npos);
}
