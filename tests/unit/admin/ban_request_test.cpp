// admin::parse_ban_request: the body of POST /bans, as lines or JSON; every error names the line
// or element and its reason, and a body with one bad ban gives none.
#include <rproxy/admin/ban_request.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace std::chrono_literals;
using rproxy::admin::ban_request;
using rproxy::admin::parse_ban_request;

TEST_CASE("ban request lines: kind, subject, then a duration and a reason if any", "[admin]") {
  auto r = parse_ban_request(
      "# a comment\n"
      "addr 203.0.113.7\n"
      "\n"
      "addr 198.51.100.0/24 1h30m scraping the store\r\n"
      "identity Griefer permanent spawn griefing\n"
      "identity Notch 0\n"
      "addr 2001:db8::/32 spam from 2001:db8::\n");
  REQUIRE(r);
  REQUIRE(r->size() == 5);
  CHECK((*r)[0] == ban_request{"addr", "203.0.113.7", 0s, ""});
  CHECK((*r)[1] == ban_request{"addr", "198.51.100.0/24", 5400s, "scraping the store"});
  CHECK((*r)[2] == ban_request{"identity", "Griefer", 0s, "spawn griefing"});
  CHECK((*r)[3] == ban_request{"identity", "Notch", 0s, ""});
  CHECK((*r)[4] == ban_request{"addr", "2001:db8::/32", 0s, "spam from 2001:db8::"});
}

TEST_CASE("ban request JSON: one object or an array of them", "[admin]") {
  auto one = parse_ban_request(R"({"kind":"addr","subject":"203.0.113.7","duration":"10m","reason":"scraping"})");
  REQUIRE(one);
  REQUIRE(one->size() == 1);
  CHECK(one->front() == ban_request{"addr", "203.0.113.7", 600s, "scraping"});
  auto many = parse_ban_request(R"( [{"kind":"identity","subject":"a b"},{"kind":"addr","subject":"::1","duration":90}])");
  REQUIRE(many);
  REQUIRE(many->size() == 2);
  CHECK((*many)[0] == ban_request{"identity", "a b", 0s, ""});
  CHECK((*many)[1] == ban_request{"addr", "::1", 90s, ""});
}

TEST_CASE("ban request errors say where and why", "[admin]") {
  auto why = [](std::string_view body) {
    auto r = parse_ban_request(body);
    REQUIRE_FALSE(r);
    return r.error();
  };
  CHECK(why("") .find("no ban in the body") != std::string::npos);
  CHECK(why("# only a comment\n").find("no ban") != std::string::npos);
  CHECK(why("addr 203.0.113.7\naddr 1.2.3\n") == "line 2: bad address or CIDR block '1.2.3'");
  CHECK(why("addr 10.0.0.1/8\n") == "line 1: bad address or CIDR block '10.0.0.1/8'");  // host bits set
  CHECK(why("user bob\n") == "line 1: kind must be addr or identity, not 'user'");
  CHECK(why("identity\n") == "line 1: identity needs a name");
  CHECK(why("addr 203.0.113.7 10x spam\n").find("line 1: ") == 0);
  CHECK(why("addr 203.0.113.7 99999d\n") == "line 1: duration '99999d' is longer than ten years");
  CHECK(why("identity " + std::string(300, 'n')).find("name longer than 256 bytes") != std::string::npos);
  CHECK(why("addr 203.0.113.7 1h " + std::string(600, 'r')).find("reason longer than 512 bytes") != std::string::npos);
  CHECK(why("identity caf\xC3\n") == "line 1: name is not UTF-8");
  CHECK(why("identity caf\xC3\xA9 1h \xFF\n") == "line 1: reason is not UTF-8");
  std::string many;
  for (int i = 0; i < 101; ++i) many += "addr 203.0.113." + std::to_string(i) + "\n";
  CHECK(why(many) == "line 101: more than 100 bans in one request");
  CHECK(why(std::string(17 * 1024, ' ')).find("body larger than") == 0);

  CHECK(why("{").find("bad JSON: ") == 0);
  CHECK(why(R"({"kind":"addr"})") == "bad address or CIDR block ''");
  CHECK(why(R"({"kind":"addr","subject":"203.0.113.7","ttl":5})") == "unknown member 'ttl' (kind, subject, duration, reason)");
  CHECK(why(R"({"kind":"addr","subject":7})") == "'subject' must be a string");
  CHECK(why(R"({"kind":"addr","subject":"::1","duration":-1})").find("whole number") != std::string::npos);
  CHECK(why(R"({"kind":"addr","subject":"::1","duration":true})").find("'duration' must be") == 0);
  CHECK(why(R"([{"kind":"addr","subject":"::1"},{"kind":"identity","subject":"a\u0001"}])") == "ban 1: name has a control character");
  CHECK(why("[]") == "no ban in the array");
  CHECK(why("[1]") == "ban 0: a ban is an object");
}
