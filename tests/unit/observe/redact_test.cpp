#include <rproxy/observe/redact.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace obs = rproxy::observe;

TEST_CASE("redact: known secret names, any case and separator", "[observe][redact]") {
  for (const char* name : {"Authorization", "proxy-authorization", "PROXY_AUTHORIZATION", "Cookie", "set-cookie",
                           "token", "access_token", "refresh-token", "X-Auth-Token", "id_token", "secret",
                           "client_secret", "password", "db.password", "passwd", "x-api-key", "api_key", "ApiKey",
                           "key", "private_key", "aws_access_key_id", "session", "session_id", "jwt", "credentials",
                           "signature", "pin", "otp"}) {
    INFO(name);
    CHECK(obs::default_redaction().is_secret_name(name));
    CHECK(obs::redact(name, "value") == obs::redacted_text);
  }
}

TEST_CASE("redact: ordinary names pass through", "[observe][redact]") {
  for (const char* name : {"route", "backend", "client", "status", "method", "path", "host", "user_agent",
                           "bytes_in", "duration_ms", "monkey", "keyboard", "log_key", "cache_key", "author"}) {
    INFO(name);
    CHECK_FALSE(obs::default_redaction().is_secret_name(name));
    CHECK(obs::redact(name, "value") == "value");
  }
}

TEST_CASE("redact: credential-shaped values are redacted whatever the name", "[observe][redact]") {
  CHECK(obs::redact("note", "Bearer abc.def") == obs::redacted_text);
  CHECK(obs::redact("note", "bearer abc") == obs::redacted_text);
  CHECK(obs::redact("note", "Basic dXNlcjpwYXNz") == obs::redacted_text);
  CHECK(obs::redact("note", "Digest username=x") == obs::redacted_text);
  CHECK(obs::redact("note", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig") == obs::redacted_text);
  CHECK(obs::redact("note", "eyJ-not-a-jwt") == "eyJ-not-a-jwt");
  CHECK(obs::redact("note", "Bearerless") == "Bearerless");
  CHECK(obs::redact("note", "") == "");
}

TEST_CASE("redact: a policy can be extended; long names work", "[observe][redact]") {
  obs::redaction_policy p;
  CHECK_FALSE(p.is_secret_name("X-Tenant-Code"));
  p.add_name("x_tenant_code").add_substring("-pii-");
  CHECK(p.is_secret_name("X-Tenant-Code"));
  CHECK(p.is_secret_name("user-pii-email"));
  CHECK_FALSE(p.is_secret_name("x_tenant_code_length"));  // exact names are exact
  CHECK(p.apply("X-TENANT-CODE", "t1") == obs::redacted_text);
  CHECK(p.apply("route", "r") == "r");
  const std::string long_name = std::string(100, 'a') + "_password";
  CHECK(p.is_secret_name(long_name));
  CHECK_FALSE(p.is_secret_name(std::string(100, 'a')));
}

TEST_CASE("redact_query: secret query parameters' values, the rest as sent", "[observe][redact]") {
  using rproxy::observe::redact_query;
  CHECK(redact_query("/a/b") == "/a/b");
  CHECK(redact_query("/q?a=1&api_key=k-123&b=two+words") == "/q?a=1&api_key=[REDACTED]&b=two+words");
  CHECK(redact_query("/q?access_token=eyJ.x.y") == "/q?access_token=[REDACTED]");
  CHECK(redact_query("/q?api%5Fkey=k&x") == "/q?api%5Fkey=[REDACTED]&x");  // names decoded first
  CHECK(redact_query("/q?page=2&&sort=asc") == "/q?page=2&&sort=asc");
  CHECK(redact_query("/q?") == "/q?");
  CHECK(redact_query("/q?token") == "/q?token");  // no value: nothing to hide
  CHECK(redact_query("/q?%zz=1&%4") == "/q?%zz=1&%4");
}
