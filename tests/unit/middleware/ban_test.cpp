#include <rproxy/middleware/ban.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace mw = rproxy::middleware;
using namespace std::chrono_literals;

namespace {
asio::ip::address addr(const char* s) { return asio::ip::make_address(s); }
mw::cidr block(const char* s) { return *mw::cidr::parse(s); }

struct fake_clock {
  using duration = std::chrono::system_clock::duration;
  using time_point = std::chrono::system_clock::time_point;
  static inline time_point t = time_point(std::chrono::seconds(1'700'000'000));
  static time_point now() { return t; }
};

struct login {  // a Minecraft-style hello: a user name, no headers
  std::string name;
  std::optional<std::string_view> username() const { return name; }
};
struct mc_protocol {
  using flow = rproxy::flow_info;
  using hello = login;
  using message = int;
  using response = int;
};
}  // namespace

TEST_CASE("bans by address, block and identity expire", "[middleware][ban]") {
  mw::ban_list bans;
  auto now = fake_clock::now();
  bans.ban_address(block("203.0.113.7"), now + 1h, "spam");
  bans.ban_address(block("2001:db8:bad::/48"), {}, "abuse");
  bans.ban_identity("griefer", now + 10min, "griefing");

  CHECK(bans.find_address(addr("203.0.113.7"), now)->entry.reason == "spam");
  CHECK(bans.find_address(addr("::ffff:203.0.113.7"), now));
  CHECK_FALSE(bans.find_address(addr("203.0.113.8"), now));
  CHECK_FALSE(bans.find_address(addr("203.0.113.7"), now + 1h));  // expired
  CHECK(bans.find_address(addr("2001:db8:bad:1::5"), now + 1000h)->subject == "2001:db8:bad::/48");
  CHECK(bans.find_identity("griefer", now + 9min));
  CHECK_FALSE(bans.find_identity("griefer", now + 10min));
  CHECK_FALSE(bans.find_identity("Griefer", now));
  CHECK_FALSE(bans.find_identity("", now));

  // an expired specific ban does not hide an active wider one
  bans.ban_address(block("198.51.100.0/24"), {}, "range");
  bans.ban_address(block("198.51.100.9"), now - 1s, "old");
  CHECK(bans.find_address(addr("198.51.100.9"), now)->subject == "198.51.100.0/24");

  CHECK(bans.size() == 5);
  CHECK(bans.purge_expired(now + 2h) == 3);
  CHECK(bans.size() == 2);
  CHECK(bans.unban_address(block("2001:db8:bad::/48")));
  CHECK_FALSE(bans.unban_identity("griefer"));
  CHECK(bans.size() == 1);
}

TEST_CASE("ban file round trip and errors", "[middleware][ban]") {
  auto now = fake_clock::now();
  mw::ban_list bans;
  bans.ban_address(block("203.0.113.0/24"), now + 1h, "scraping");
  bans.ban_address(block("2001:db8::/48"), {}, "abuse report 42%");
  bans.ban_identity("bad guy\n", {}, "");  // hostile name: encoded, cannot break the format
  bans.ban_identity("expired", now - 1s, "gone");
  auto path = "/tmp/rproxy_mw_" + std::to_string(::getpid()) + "_bans.txt";
  REQUIRE(bans.save(path, now));

  mw::ban_list back;
  REQUIRE(back.load(path));
  CHECK(back.size() == 3);  // the expired ban is not written
  auto hit = back.find_address(addr("203.0.113.99"), now);
  REQUIRE(hit);
  CHECK(hit->entry.reason == "scraping");
  CHECK(hit->entry.until == std::chrono::time_point_cast<std::chrono::seconds>(now + 1h));
  CHECK_FALSE(back.find_address(addr("203.0.113.99"), now + 1h));
  CHECK(back.find_address(addr("2001:db8::1"), now + 10000h)->entry.reason == "abuse report 42%");
  CHECK(back.find_identity("bad guy\n", now));
  CHECK(back.serialize(now) == bans.serialize(now));

  std::string text = back.serialize(now);
  CHECK(text.find("identity bad%20guy%0A 0 ") != std::string::npos);
  CHECK(text.find("addr 2001:db8::/48 0 abuse%20report%2042%25") != std::string::npos);

  // errors leave the list untouched and name the line
  std::size_t line = 0;
  CHECK(back.parse("# ok\naddr 10.0.0.0/8 0 x\naddr 10.0.0.1/8 0 x\n", &line).error() == mw::error::bad_ban_file);
  CHECK(line == 3);
  CHECK(back.parse("identity a -5 x\n", &line).error() == mw::error::bad_ban_file);
  CHECK(back.parse("identity a 0\n", &line).error() == mw::error::bad_ban_file);
  CHECK(back.parse("user a 0 x\n", &line).error() == mw::error::bad_ban_file);
  CHECK(back.parse("identity a 0 bad%zz\n", &line).error() == mw::error::bad_ban_file);
  CHECK(back.parse("identity a 0 bad%4\n", &line).error() == mw::error::bad_ban_file);
  CHECK(back.size() == 3);
  REQUIRE(back.parse("identity a 0 \r\n\n# c\n"));
  CHECK(back.size() == 1);
  CHECK(back.load("/nonexistent/rproxy/bans").error() == mw::error::file_unreadable);
  std::remove(path.c_str());
}

TEST_CASE("ban file: an `until` beyond the clock's range is clamped, not overflowed", "[middleware][ban]") {
  const auto now = std::chrono::system_clock::now();
  const auto far = now + std::chrono::hours(24 * 365 * 200);  // year 2200 and more
  for (const char* until : {"9300000000", "99999999999", "9223372036854775807", "99999999999999999999999"}) {
    CAPTURE(until);
    mw::ban_list bans;
    REQUIRE(bans.parse("addr 192.0.2.0/24 " + std::string(until) + " far\n"));
    const auto hit = bans.find_address(addr("192.0.2.1"), now);
    REQUIRE(hit);
    CHECK(hit->entry.until > far);
    CHECK(bans.find_address(addr("192.0.2.1"), far));
  }
  mw::ban_list bans;
  CHECK(bans.parse("addr 192.0.2.0/24 -99999999999999999999999 x\n").error() == mw::error::bad_ban_file);
  CHECK(bans.parse("addr 192.0.2.0/24 12x x\n").error() == mw::error::bad_ban_file);
}

TEST_CASE("ban_check stage: address on accept, user name and identity later", "[middleware][ban]") {
  mw::ban_list bans;
  auto now = fake_clock::now();
  bans.ban_address(block("203.0.113.0/24"), now + 90s, "flood");
  bans.ban_identity("griefer", {}, "griefing");
  bans.ban_identity("jwt-sub-1", now + 1h, "");
  mw::ban_check_config cfg;
  using check = mw::basic_ban_check<fake_clock>;
  auto p = rproxy::make_pipeline<mc_protocol>(check{&bans, nullptr, &cfg});

  auto ctx = p.make_context();
  ctx.client = {addr("203.0.113.5"), 1};
  auto v = p.accept(ctx);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::banned);
  CHECK(v.reason().retry_after_s == 90);

  auto c2 = p.make_context();
  c2.client = {addr("192.0.2.1"), 1};
  CHECK(p.accept(c2).is_next());
  CHECK(p.hello(c2, login{"steve"}).is_next());
  auto vh = p.hello(c2, login{"griefer"});
  REQUIRE(vh.is_reject());
  CHECK(vh.reason().retry_after_s == 0);  // permanent: no hint

  auto c3 = p.make_context();
  c3.client = {addr("192.0.2.1"), 1};
  CHECK(p.route(c3).is_next());
  c3.identity = "jwt-sub-1";  // set by an auth stage
  CHECK(p.route(c3).is_reject());
  fake_clock::t += 2h;
  CHECK(p.route(c3).is_next());
  fake_clock::t -= 2h;
}

TEST_CASE("ban_list with fold_identity_case matches names ignoring ASCII case", "[middleware][ban]") {
  mw::ban_list bans({.fold_identity_case = true});
  auto now = fake_clock::now();
  bans.ban_identity("Mallory", {}, "griefing");
  CHECK(bans.find_identity("mallory", now));
  CHECK(bans.find_identity("MALLORY", now));
  REQUIRE(bans.parse("# rproxy bans v1\nidentity NoTcH 0 x\n"));
  CHECK(bans.find_identity("notch", now)->subject == "notch");
  CHECK_FALSE(bans.find_identity("mallory", now));  // parse replaced the list
  CHECK(bans.unban_identity("NOTCH"));
}
