#include <rproxy/route/host.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace route = rproxy::route;

TEST_CASE("host_table: exact names, case and one trailing dot ignored", "[route]") {
  route::host_table<int> t;
  REQUIRE(t.add("lobby.example.com", 1));
  REQUIRE(t.add("Survival.Example.com", 2));
  CHECK(*t.find("lobby.example.com") == 1);
  CHECK(*t.find("LOBBY.EXAMPLE.COM") == 1);
  CHECK(*t.find("lobby.example.com.") == 1);
  CHECK(*t.find("survival.example.com") == 2);
  CHECK(t.find("lobby.example.com..") == nullptr);
  CHECK(t.find("example.com") == nullptr);
  CHECK(t.find("") == nullptr);
}

TEST_CASE("host_table: wildcards match any depth below, not the name itself; longest wins", "[route]") {
  route::host_table<int> t;
  REQUIRE(t.add("*.example.com", 1));
  REQUIRE(t.add("*.games.example.com", 2));
  REQUIRE(t.add("games.example.com", 3));
  CHECK(*t.find("a.example.com") == 1);
  CHECK(*t.find("a.b.example.com") == 1);
  CHECK(*t.find("x.games.example.com") == 2);
  CHECK(*t.find("y.x.Games.example.com") == 2);
  CHECK(*t.find("games.example.com") == 3);  // exact beats wildcard
  CHECK(t.find("example.com") == nullptr);
  CHECK(t.find("notexample.com") == nullptr);
  CHECK(t.find(".example.com") == nullptr);  // an empty label is not a subdomain
}

TEST_CASE("host_table: the catch-all is tried last", "[route]") {
  route::host_table<std::string> t;
  REQUIRE(t.add("*", "default"));
  REQUIRE(t.add("lobby.example.com", "lobby"));
  CHECK(*t.find("lobby.example.com") == "lobby");
  CHECK(*t.find("anything") == "default");
  CHECK(*t.find("") == "default");
  CHECK(t.size() == 2);
}

TEST_CASE("host_table: duplicates and bad patterns are refused, first value kept", "[route]") {
  route::host_table<int> t;
  REQUIRE(t.add("a.example.com", 1));
  CHECK_FALSE(t.add("A.example.com.", 2));
  CHECK(*t.find("a.example.com") == 1);
  for (const char* bad : {"", "*.", "a.*.com", "**.com", "*example.com", "a..b", ".a.b", "a b", "host:25565", "a/b"}) {
    INFO(bad);
    CHECK_FALSE(route::is_valid_host_pattern(bad));
    CHECK_FALSE(t.add(bad, 9));
  }
  CHECK(route::is_valid_host_pattern("*"));
  CHECK(route::is_valid_host_pattern("*.mc.example.com"));
  CHECK(route::is_valid_host_pattern("localhost"));
  CHECK(route::is_valid_host_pattern("127.0.0.1"));
}

TEST_CASE("normalize_host lowercases ASCII only and drops one trailing dot", "[route]") {
  CHECK(route::normalize_host("MC.Example.COM.") == "mc.example.com");
  CHECK(route::normalize_host("a..") == "a.");
  CHECK(route::normalize_host("\xC3\x89t\xC3\xA9") == "\xC3\x89t\xC3\xA9");
}
