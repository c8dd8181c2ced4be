// cluster::shared_bans: a ban made through one instance's link reaches another's list by
// pub/sub, an instance that starts later reads it from the hash, unban lifts it everywhere, and
// invalid bans are refused.
#include <rproxy/cluster/shared_bans.hpp>

#include <asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <chrono>

#include "redis_server.hpp"
#include "redis_test_options.hpp"
#include "run_until.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;
namespace mw = rproxy::middleware;

namespace {
bool banned(const cl::shared_bans& b, const char* ip) {
  return b.list().find_address(asio::ip::make_address(ip), mw::ban_clock::now()).has_value();
}
}  // namespace

TEST_CASE("shared bans reach the other instances, later ones too, and unban lifts them", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_client c1(io.get_executor(), rproxy::test::redis_options_for(rs)), c2(io.get_executor(), rproxy::test::redis_options_for(rs));
  cl::shared_bans b1(&c1), b2(&c2);
  c1.start();
  c2.start();
  b1.start();
  b2.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c1.ready() && c2.ready() && c2.channel_count() == 1; }));

  CHECK(!b1.ban("addr", "not-an-address", {}));
  CHECK(!b1.ban("nonsense", "x", {}));
  REQUIRE(b1.ban("addr", "203.0.113.7", mw::ban_clock::now() + 1h, "scraping here"));
  REQUIRE(b1.ban("identity", "grief er", {}, "griefing"));
  REQUIRE(rproxy::test::run_until(io, [&] { return banned(b2, "203.0.113.7"); }));
  CHECK(banned(b1, "203.0.113.7"));
  CHECK(!banned(b2, "203.0.113.8"));
  REQUIRE(rproxy::test::run_until(io, [&] { return b2.list().find_identity("grief er", mw::ban_clock::now()).has_value(); }));
  CHECK(b2.list().find_identity("grief er", mw::ban_clock::now())->entry.reason == "griefing");

  // a ban file's list, published
  mw::ban_list file;
  REQUIRE(file.parse("# rproxy bans v1\naddr 198.51.100.0/24 0 from%20a%20file\n"));
  b2.publish(file);
  REQUIRE(rproxy::test::run_until(io, [&] { return banned(b1, "198.51.100.200"); }));

  // an instance that starts now reads every ban from the hash
  cl::redis_client c3(io.get_executor(), rproxy::test::redis_options_for(rs));
  cl::shared_bans b3(&c3);
  c3.start();
  b3.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return banned(b3, "203.0.113.7") && banned(b3, "198.51.100.1"); }));
  CHECK(b3.size() == 3);

  // lifted through one, lifted everywhere
  REQUIRE(b3.unban("addr", "203.0.113.7"));
  REQUIRE(rproxy::test::run_until(io, [&] { return !banned(b1, "203.0.113.7") && !banned(b2, "203.0.113.7"); }));
  CHECK(banned(b1, "198.51.100.1"));
  CHECK(rs.command({"HEXISTS", "t:bans{bans}", "addr 203.0.113.7/32"}) == "0");
  CHECK(rs.command({"HEXISTS", "t:bans{bans}", "addr 198.51.100.0/24"}) == "1");
}

TEST_CASE("shared bans without Redis: ban and unban act here alone, a ban file is not copied", "[cluster]") {
  cl::shared_bans none(nullptr);
  none.start();
  CHECK_FALSE(none.shared());
  CHECK(none.ban("addr", "203.0.113.7", {}));
  CHECK(none.list().size() == 1);
  CHECK(banned(none, "203.0.113.7"));
  mw::ban_list file;
  REQUIRE(file.parse("# rproxy bans v1\naddr 198.51.100.0/24 0 x\n"));
  none.publish(file);  // the file's list is checked beside list(): nothing to copy
  CHECK(none.list().size() == 1);
  CHECK(none.unban("addr", "203.0.113.7/32"));
  CHECK(none.list().size() == 0);
}

TEST_CASE("shared bans: ban() and unban() apply to list() before they return, with a client too", "[cluster]") {
  asio::io_context io;  // never run: Redis is not reached, the ban is here at once
  cl::redis_options o;
  o.port = 1;
  cl::redis_client c(io.get_executor(), o);
  cl::shared_bans b(&c);
  CHECK(b.shared());
  REQUIRE(b.ban("identity", "Griefer", mw::ban_clock::now() + 1h, "r"));
  CHECK(b.list().find_identity("Griefer", mw::ban_clock::now()).has_value());
  REQUIRE(b.unban("identity", "Griefer"));
  CHECK_FALSE(b.list().find_identity("Griefer", mw::ban_clock::now()).has_value());
}

TEST_CASE("shared bans: one ban however its subject is spelled (found by fuzz_shared_bans)", "[cluster]") {
  cl::shared_bans bans(nullptr);
  bans.receive("ban\naddr 198.51.100.7/32 0 a\naddr 198.51.100.7 0 b\nidentity a%62 0 c\nidentity ab 0 d\n");
  CHECK(bans.size() == 2);
  CHECK(bans.list().size() == 2);
  CHECK(banned(bans, "198.51.100.7"));
  bans.receive("unban\naddr 198.51.100.7\nidentity a%62\n");
  CHECK(bans.size() == 0);
  CHECK(bans.list().size() == 0);
  CHECK_FALSE(banned(bans, "198.51.100.7"));
}

TEST_CASE("shared bans with names folded (mc-proxy): one ban per name whatever its case, unban in any case", "[cluster]") {
  cl::shared_bans b(nullptr, nullptr, {.fold_identity_case = true});
  b.receive("ban\nidentity Notch 0 x\nidentity notch 0 y\nidentity NOTCH 0 z\n");
  CHECK(b.size() == 1);
  CHECK(b.list().size() == 1);
  CHECK(b.list().find_identity("nOtCh", mw::ban_clock::now()).has_value());
  b.receive("unban\nidentity NoTcH\n");
  CHECK(b.size() == 0);
  CHECK_FALSE(b.list().find_identity("notch", mw::ban_clock::now()).has_value());

  cl::shared_bans plain(nullptr);  // as written: two names
  plain.receive("ban\nidentity Notch 0 x\nidentity notch 0 y\n");
  CHECK(plain.size() == 2);
  CHECK(plain.list().size() == 2);
}
