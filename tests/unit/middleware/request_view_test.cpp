#include <rproxy/middleware/request_view.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mw = rproxy::middleware;

namespace {
struct headers_only {
  std::string auth;
  std::optional<std::string_view> header(std::string_view n) const {
    if (n == "Authorization" && !auth.empty()) return auth;
    return std::nullopt;
  }
};
struct mc_login {
  std::optional<std::string_view> username() const { return "Steve"; }
  std::string_view operation() const { return "login"; }
};
struct nothing {};
}  // namespace

TEST_CASE("request view concepts and accessors", "[middleware][request_view]") {
  STATIC_REQUIRE(mw::request_view<headers_only>);
  STATIC_REQUIRE(mw::has_headers<headers_only>);
  STATIC_REQUIRE_FALSE(mw::has_cookies<headers_only>);
  STATIC_REQUIRE(mw::request_view<mc_login>);
  STATIC_REQUIRE(mw::has_operation<mc_login>);
  STATIC_REQUIRE_FALSE(mw::request_view<nothing>);
  CHECK(mw::username_of(mc_login{}) == "Steve");
  CHECK(mw::operation_of(mc_login{}) == "login");
  CHECK_FALSE(mw::header_of(mc_login{}, "Authorization"));
  CHECK_FALSE(mw::cookie_of(headers_only{}, "x"));
}

TEST_CASE("find_credential: schemes, order, trimming", "[middleware][request_view]") {
  std::vector<mw::credential_source> bearer{mw::credential_source{}};
  headers_only req;  // the credential is a view into the request: keep it alive
  auto find = [&](std::string v) {
    req.auth = std::move(v);
    return mw::find_credential(req, std::span(bearer));
  };
  CHECK(find("Bearer abc") == "abc");
  CHECK(find("BEARER\tabc ") == "abc");
  CHECK_FALSE(find("Bearer"));
  CHECK_FALSE(find("Bearer "));
  CHECK_FALSE(find("Bearerabc"));
  CHECK_FALSE(find("Basic abc"));
  CHECK_FALSE(find(""));
  std::vector<mw::credential_source> raw{{mw::credential_source::place::header, "Authorization", ""}};
  headers_only spaced{"  tok  "};
  CHECK(mw::find_credential(spaced, std::span(raw)) == "tok");
  CHECK_FALSE(mw::find_credential(mc_login{}, std::span(raw)));
}
