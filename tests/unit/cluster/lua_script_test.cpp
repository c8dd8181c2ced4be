// cluster/lua_script.hpp against a redis-server of the test's own: load_on_connect puts the
// scripts in Redis' cache on each connect (a restarted Redis too), async_eval runs them by SHA1
// and, when Redis lacks one (SCRIPT FLUSH), falls back to EVAL once. Redis' own counters
// (INFO commandstats) say which command carried the script.
#include <rproxy/cluster/lua_script.hpp>

#include <asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "redis_server.hpp"
#include "redis_test_options.hpp"
#include "run_until.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;

namespace {

const cl::lua_script& add_script() {
  static const cl::lua_script s{"return redis.call('INCRBY', KEYS[1], ARGV[1])"};
  return s;
}

/// calls=N of one command in INFO commandstats (0 when Redis has not run it).
long calls(const rproxy::test::redis_server& rs, std::string_view cmd) {
  const std::string info = rs.command({"INFO", "commandstats"});
  const std::string head = "cmdstat_" + std::string(cmd) + ":calls=";
  const auto at = info.find(head);
  return at == std::string::npos ? 0 : std::stol(info.substr(at + head.size()));
}

/// Whether Redis has the script cached (EVALSHA on a connection of the test's own).
bool cached(const rproxy::test::redis_server& rs, const cl::lua_script& s) {
  return !rs.command({"EVALSHA", s.sha, "1", "probe", "0"}).starts_with("NOSCRIPT");
}

}  // namespace

TEST_CASE("lua_script: the SHA1 is Redis' name for the script", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  CHECK(rs.command({"SCRIPT", "LOAD", std::string(add_script().body)}) == add_script().sha);
}

TEST_CASE("lua_script: loaded on connect and reconnect, run by SHA1, EVAL once after a flush", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  auto o = rproxy::test::redis_options_for(rs);
  o.command_timeout = o.connect_timeout = 1s;
  cl::redis_client c(io.get_executor(), o);
  cl::load_on_connect(c, {&add_script()});
  c.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c.ready(); }));

  auto add = [&](std::string_view by) {
    const std::string_view keys[] = {"n"}, args[] = {by};
    std::error_code got_ec;
    cl::reply got;
    bool done = false;
    cl::async_eval(c, add_script(), keys, args, [&](std::error_code ec, cl::reply r) {
      got_ec = ec;
      got = std::move(r);
      done = true;
    });
    REQUIRE(rproxy::test::run_until(io, [&] { return done; }));
    REQUIRE_FALSE(got_ec);
    REQUIRE(got.type == cl::reply::kind::integer);
    return got.integer;
  };

  // the load is queued before any command sent after the client came up
  CHECK(add("2") == 2);
  CHECK(cached(rs, add_script()));
  CHECK(calls(rs, "script|load") == 1);
  CHECK(calls(rs, "eval") == 0);

  // Redis forgets it: the next run gets NOSCRIPT and sends the body once, which caches it
  rs.command({"SCRIPT", "FLUSH"});
  CHECK_FALSE(cached(rs, add_script()));
  CHECK(add("3") == 5);
  CHECK(calls(rs, "eval") == 1);
  CHECK(add("4") == 9);
  CHECK(calls(rs, "eval") == 1);

  // a restarted Redis starts empty: the client loads the script again when it reconnects
  REQUIRE(rs.restart());
  REQUIRE(rproxy::test::run_until(io, [&] { return !c.ready(); }, 10s));
  REQUIRE(rproxy::test::run_until(io, [&] { return c.ready() && calls(rs, "script|load") == 1; }, 10s));
  CHECK(cached(rs, add_script()));
  CHECK(add("1") == 1);
  CHECK(calls(rs, "eval") == 0);
}
