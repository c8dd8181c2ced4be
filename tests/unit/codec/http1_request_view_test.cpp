#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/middleware/request_view.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace http1 = rproxy::codec::http1;
namespace mw = rproxy::middleware;

TEST_CASE("append_cookies_without: the named pairs left out, the others as sent", "[http1]") {
  auto without = [](std::string_view h, std::string_view n, std::size_t dropped) {
    std::string out;
    CHECK(http1::append_cookies_without(out, h, n) == dropped);
    return out;
  };
  CHECK(without("a=1; tok=x; b=\"2\"", "tok", 1) == "a=1; b=\"2\"");
  CHECK(without("tok=x", "tok", 1) == "");
  CHECK(without("tok=x;tok=y; a=1", "tok", 2) == "a=1");
  CHECK(without(" a = 1 ;; tok = x ;b=2 ", "tok", 1) == "a = 1; b=2");  // pieces trimmed, empty ones dropped
  CHECK(without("Tok=x; tokx=y; flag", "tok", 0) == "Tok=x; tokx=y; flag");  // names exact, a bare piece kept
  CHECK(without("a=1", "", 0) == "a=1");
  std::string joined = "a=1";  // appends after what is there
  CHECK(http1::append_cookies_without(joined, "tok=x; b=2", "tok") == 1);
  CHECK(joined == "a=1; b=2");
}

TEST_CASE("find_cookie: pairs, spaces, quotes, exact names", "[http1]") {
  CHECK(http1::find_cookie("a=1; b=2", "b") == "2");
  CHECK(http1::find_cookie("a=1;b=2", "a") == "1");
  CHECK(http1::find_cookie("  a = 1 ;  session=\"x y\"", "session") == "x y");
  CHECK(http1::find_cookie("a=1; a=2", "a") == "1");
  CHECK(http1::find_cookie("a=", "a") == "");
  CHECK_FALSE(http1::find_cookie("A=1", "a"));  // cookie names are case-sensitive
  CHECK_FALSE(http1::find_cookie("ab=1; flag", "flag"));
  CHECK_FALSE(http1::find_cookie("", "a"));
  CHECK_FALSE(http1::find_cookie("a=1", ""));
  CHECK(http1::find_cookie("x=\"", "x") == "\"");  // a lone quote is kept
  STATIC_REQUIRE(http1::find_cookie("k=v", "k") == "v");
}

TEST_CASE("percent_decode: escapes, plus, malformed input", "[http1]") {
  std::string out;
  CHECK(http1::percent_decode("a%20b%2Bc+d", out));
  CHECK(out == "a b+c d");
  CHECK(http1::percent_decode("a+b", out, false));
  CHECK(out == "a+b");
  CHECK(http1::percent_decode("%e2%82%AC", out));
  CHECK(out == "\xe2\x82\xac");
  CHECK_FALSE(http1::percent_decode("%", out));
  CHECK_FALSE(http1::percent_decode("ab%2", out));
  CHECK_FALSE(http1::percent_decode("%zz", out));
  CHECK(http1::percent_decode("", out));
  CHECK(out.empty());
}

TEST_CASE("find_query_raw: names decoded, values left encoded", "[http1]") {
  CHECK(http1::query_of_target("/p?a=1&b=2") == "a=1&b=2");
  CHECK(http1::query_of_target("/p") == "");
  CHECK(http1::path_of_target("/p/q?x") == "/p/q");
  CHECK(http1::find_query_raw("a=1&b=x%20y", "b") == "x%20y");
  CHECK(http1::find_query_raw("flag&a=1", "flag") == "");
  CHECK(http1::find_query_raw("api%5Fkey=k", "api_key") == "k");
  CHECK(http1::find_query_raw("a=1&a=2", "a") == "1");
  CHECK_FALSE(http1::find_query_raw("ab=1", "a"));
  CHECK_FALSE(http1::find_query_raw("", "a"));
  CHECK_FALSE(http1::find_query_raw("%zz=1", "%zz"));
}

TEST_CASE("without_query_param: every parameter of the decoded name, the rest as sent", "[http1]") {
  CHECK(http1::without_query_param("/p?a=1&api_key=k&b=x%20y", "api_key") == "/p?a=1&b=x%20y");
  CHECK(http1::without_query_param("/p?api%5Fkey=k&a=1&api_key=2", "api_key") == "/p?a=1");
  CHECK(http1::without_query_param("/p?api_key=k", "api_key") == "/p");
  CHECK(http1::without_query_param("/p?api_key", "api_key") == "/p");
  CHECK(http1::without_query_param("/p?api_keys=1&x=api_key", "api_key") == "/p?api_keys=1&x=api_key");
  CHECK(http1::without_query_param("/p?a=1&&b=2&", "a") == "/p?&b=2&");  // empty pairs kept as sent
  CHECK(http1::without_query_param("/p?%zz=1&a=2", "%zz") == "/p?%zz=1&a=2");  // a malformed name is no match
  CHECK(http1::without_query_param("/p", "a") == "/p");
  CHECK(http1::without_query_param("/p?a=1", "") == "/p?a=1");
}

TEST_CASE("request_view: a parsed head as the middleware request view", "[http1]") {
  STATIC_REQUIRE(mw::has_headers<http1::request_view>);
  STATIC_REQUIRE(mw::has_cookies<http1::request_view>);
  STATIC_REQUIRE(mw::has_query<http1::request_view>);
  STATIC_REQUIRE(mw::request_view<http1::request_view>);

  const std::string in =
      "GET /api/items?token=a%2Eb&x=1+2&bad=%4 HTTP/1.1\r\nHost: h\r\n"
      "Authorization: Bearer abc.def\r\nCookie: theme=dark\r\nCookie: session=\"s1\"\r\n\r\n";
  http1::request_parser p;
  REQUIRE(p.parse(in).what == rproxy::codec::http1::event::head);
  http1::request_view req{p.head()};
  CHECK(req.method() == "GET");
  CHECK(req.path() == "/api/items");
  CHECK(req.header("authorization") == "Bearer abc.def");
  CHECK_FALSE(req.header("x-api-key"));
  CHECK(req.cookie("theme") == "dark");
  CHECK(req.cookie("session") == "s1");
  CHECK_FALSE(req.cookie("none"));
  const auto token = req.query("token");
  const auto x = req.query("x");
  CHECK(token == "a.b");  // both decoded views stay valid
  CHECK(x == "1 2");
  CHECK_FALSE(req.query("bad"));  // malformed escape: absent
  CHECK_FALSE(req.query("missing"));

  const std::vector<mw::credential_source> sources{
      {mw::credential_source::place::header, "X-API-Key", ""},
      {mw::credential_source::place::cookie, "session", ""},
      {mw::credential_source::place::header, "Authorization", "Bearer"}};
  CHECK(mw::find_credential(req, std::span<const mw::credential_source>(sources)) == "s1");
  const std::vector<mw::credential_source> q{{mw::credential_source::place::query, "token", ""}};
  CHECK(mw::find_credential(req, std::span<const mw::credential_source>(q)) == "a.b");
}
