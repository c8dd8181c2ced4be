// admin::mount_bans_api over a real admin server (HTTP on loopback): POST /bans bans at once,
// GET /bans lists, DELETE lifts, a bad body is 400 with its reason, and every /bans request
// needs the token. Sharing through Redis is cluster/shared_bans_test.cpp's and the mc-proxy e2e's.
#include <rproxy/admin/bans_api.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "raw_exchange.hpp"

#include <string>
#include <thread>

#include <rproxy/core/json.hpp>

namespace mw = rproxy::middleware;

namespace {
using test_support::raw_exchange;

struct fixture {
  asio::io_context io;
  rproxy::cluster::shared_bans bans{nullptr, nullptr, {.fold_identity_case = true}};
  rproxy::admin::server admin{io, {asio::ip::make_address("127.0.0.1"), 0},
                              rproxy::admin::server_options{8, 1 << 20, std::chrono::seconds(5), "s3cret", {"x"}}};
  std::thread runner;
  fixture() {
    rproxy::admin::mount_bans_api(admin, bans);
    admin.start();
    runner = std::thread([this] { io.run(); });
  }
  ~fixture() {
    asio::post(io, [this] { admin.stop(); io.stop(); });
    runner.join();
  }
  std::string call(const std::string& method, const std::string& path, const std::string& body = {}, bool token = true) {
    return raw_exchange(admin.local_endpoint(), method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                                                (token ? "Authorization: Bearer s3cret\r\n" : "") +
                                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  bool addr_banned(const char* ip) const { return bans.list().find_address(asio::ip::make_address(ip), mw::ban_clock::now()).has_value(); }
};

std::string body_of(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }
}  // namespace

TEST_CASE("bans API: POST bans at once, GET lists, DELETE lifts", "[admin]") {
  fixture f;
  auto r = f.call("POST", "/bans", "addr 203.0.113.0/24 10m scraping\nidentity Griefer\n");
  REQUIRE(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body_of(r) == "{\"banned\":2}\n");
  CHECK(f.addr_banned("203.0.113.99"));
  CHECK(f.bans.list().find_identity("griefer", mw::ban_clock::now()).has_value());  // names folded, as mc-proxy does

  r = f.call("POST", "/bans", R"({"kind":"identity","subject":"two words","reason":"100% sure"})");
  REQUIRE(r.rfind("HTTP/1.1 200", 0) == 0);

  r = f.call("GET", "/bans");
  REQUIRE(r.rfind("HTTP/1.1 200", 0) == 0);
  auto doc = rproxy::json::parse(body_of(r));
  REQUIRE(doc);
  CHECK(doc->root().find("shared")->as_bool() == false);
  auto list = *doc->root().find("bans");
  REQUIRE(list.size() == 3);
  std::map<std::string, std::pair<std::string, std::int64_t>> seen;  // subject -> reason, until
  for (auto b : list.children())
    seen[std::string(b.find("kind")->as_string()) + " " + std::string(b.find("subject")->as_string())] = {
        std::string(b.find("reason")->as_string()), *b.find("until")->as_int()};
  REQUIRE(seen.count("addr 203.0.113.0/24"));
  CHECK(seen["addr 203.0.113.0/24"].first == "scraping");
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(mw::ban_clock::now().time_since_epoch()).count();
  CHECK(seen["addr 203.0.113.0/24"].second > now_s + 500);
  CHECK(seen["addr 203.0.113.0/24"].second <= now_s + 600);
  CHECK(seen["identity griefer"] == std::pair<std::string, std::int64_t>{"", 0});
  CHECK(seen["identity two words"].first == "100% sure");

  r = f.call("DELETE", "/bans/addr/203.0.113.0/24");
  REQUIRE(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK_FALSE(f.addr_banned("203.0.113.99"));
  r = f.call("DELETE", "/bans/identity/Two%20Words");
  REQUIRE(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(f.bans.list().size() == 1);
}

TEST_CASE("bans API: a bad body is 400 with its reason and bans nothing; the token is needed", "[admin]") {
  fixture f;
  auto r = f.call("POST", "/bans", "addr 203.0.113.7\naddr 999.1.1.1\n");
  REQUIRE(r.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(body_of(r) == "{\"error\":\"bad_request\",\"message\":\"line 2: bad address or CIDR block '999.1.1.1'\"}\n");
  CHECK(f.bans.list().size() == 0);
  r = f.call("DELETE", "/bans/user/bob");
  CHECK(r.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(body_of(r).find("kind must be addr or identity") != std::string::npos);
  r = f.call("DELETE", "/bans/addr");
  CHECK(r.rfind("HTTP/1.1 400", 0) == 0);

  CHECK(f.call("POST", "/bans", "addr 203.0.113.7\n", false).rfind("HTTP/1.1 401", 0) == 0);
  CHECK(f.call("GET", "/bans", {}, false).rfind("HTTP/1.1 401", 0) == 0);  // the list names addresses and players
  CHECK(f.call("DELETE", "/bans/addr/203.0.113.7", {}, false).rfind("HTTP/1.1 401", 0) == 0);
  CHECK(f.bans.list().size() == 0);
}

TEST_CASE("bans API: the query form, under another mount path (h3-gateway's /api/bans)", "[admin]") {
  fixture f;  // (its bans; its own server, on /bans, is not called here)
  asio::io_context io;
  rproxy::admin::server admin{io, {asio::ip::make_address("127.0.0.1"), 0},
                              rproxy::admin::server_options{8, 1 << 20, std::chrono::seconds(5), "s3cret", {"x"}}};
  rproxy::admin::mount_bans_api(admin, f.bans, "/api/bans");
  admin.start();
  std::thread runner([&] { io.run(); });
  auto call = [&](const std::string& method, const std::string& target, bool token = true) {
    return raw_exchange(admin.local_endpoint(), method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                                                    (token ? "Authorization: Bearer s3cret\r\n" : "") + "Content-Length: 0\r\n\r\n");
  };
  auto r = call("POST", "/api/bans?kind=addr&subject=198.51.100.7&ttl=600&reason=from%20a%20query");
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body_of(r) == "{\"banned\":1}\n");
  REQUIRE(f.addr_banned("198.51.100.7"));
  auto hit = f.bans.list().find_address(asio::ip::make_address("198.51.100.7"), mw::ban_clock::now());
  CHECK(hit->entry.reason == "from a query");
  CHECK(!hit->entry.permanent());
  r = call("POST", "/api/bans?kind=identity&subject=Griefer");  // no ttl: permanent
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(f.bans.list().find_identity("griefer", mw::ban_clock::now())->entry.permanent());
  CHECK(call("POST", "/api/bans?kind=addr&subject=1.2.3", true).rfind("HTTP/1.1 400", 0) == 0);
  CHECK(body_of(call("POST", "/api/bans?kind=addr&subject=1.2.3.4&ttl=soon")).find("ttl 'soon'") != std::string::npos);
  CHECK(body_of(call("POST", "/api/bans?kind=addr&subject=1.2.3.4&color=red")).find("unknown query parameter 'color'") != std::string::npos);
  CHECK(call("POST", "/api/bans?kind=addr&subject=1.2.3.4", false).rfind("HTTP/1.1 401", 0) == 0);
  CHECK(call("GET", "/api/bans", false).rfind("HTTP/1.1 401", 0) == 0);
  CHECK(body_of(call("GET", "/api/bans")).find("198.51.100.7") != std::string::npos);
  r = call("DELETE", "/api/bans?kind=addr&subject=198.51.100.7");
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(!f.addr_banned("198.51.100.7"));
  CHECK(call("DELETE", "/api/bans/identity/griefer").rfind("HTTP/1.1 200", 0) == 0);  // the path form too
  CHECK(!f.bans.list().find_identity("griefer", mw::ban_clock::now()));
  asio::post(io, [&] { admin.stop(); io.stop(); });
  runner.join();
}
