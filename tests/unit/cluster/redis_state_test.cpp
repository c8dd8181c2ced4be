// The shared state on both models (one suite: local_state and redis_state must agree), the
// Redis client's pub/sub, AUTH, reconnect and timeouts, against a redis-server of the test's own.
#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/local_state.hpp>
#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/cluster/redis_state.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "redis_server.hpp"
#include "redis_test_options.hpp"
#include "run_until.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;

namespace {

template <class... T>
std::vector<std::string> strs(T... v) {
  std::vector<std::string> out;
  (out.emplace_back(v), ...);
  return out;
}

template <class F>
void run_coro(asio::io_context& io, F f) {
  bool done = false;
  std::exception_ptr err;
  asio::co_spawn(io, f(), [&](std::exception_ptr e) {
    err = e;
    done = true;
  });
  REQUIRE(rproxy::test::run_until(io, [&] { return done; }));
  if (err) std::rethrow_exception(err);
}

// Waits (on the io_context, bounded) until the model says it is up.
template <class S>
asio::awaitable<void> pause_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

template <class S>
asio::awaitable<void> semantics(S& st) {
  const auto c = st.key("t", "counter");
  auto v = co_await st.incr(c, 1, 60s);
  REQUIRE(v);
  CHECK(*v == 1);
  v = co_await st.incr(c, 5, 60s);
  CHECK(*v == 6);
  // a counter with a short ttl starts over once it expired
  const auto e = st.key("t", "expiring");
  auto r1 = co_await st.incr(e, 3, 50ms);
  CHECK(*r1 == 3);
  co_await pause_for<S>(120ms);
  auto r2 = co_await st.incr(e, 1, 50ms);
  CHECK(*r2 == 1);

  // sets: members expire on their own
  const auto s = st.key("t", "set");
  auto r3 = co_await st.set_add(s, "a", 0ms);
  REQUIRE(r3);
  auto r4 = co_await st.set_add(s, "b", 400ms);  // long enough to be seen below on a loaded machine
  REQUIRE(r4);
  auto r5 = co_await st.set_add(s, "c", 60s);
  REQUIRE(r5);
  auto m = co_await st.set_members(s);
  REQUIRE(m);
  std::sort(m->begin(), m->end());
  CHECK(*m == strs("a", "b", "c"));
  co_await pause_for<S>(500ms);
  m = co_await st.set_members(s);
  std::sort(m->begin(), m->end());
  CHECK(*m == strs("a", "c"));
  auto r6 = co_await st.set_remove(s, "a");
  REQUIRE(r6);
  m = co_await st.set_members(s);
  CHECK(*m == strs("c"));

  // maps
  const auto mp = st.key("t", "map");
  auto r7 = co_await st.map_set(mp, "f1", "v1", 60s);
  REQUIRE(r7);
  auto r8 = co_await st.map_set(mp, "f2", "v2", 60s);
  REQUIRE(r8);
  auto r9 = co_await st.map_get(mp, "f1");
  CHECK(*r9 == std::optional<std::string>("v1"));
  auto r10 = co_await st.map_get(mp, "nope");
  CHECK(!(*r10));
  auto r11 = co_await st.map_remove(mp, "f1");
  REQUIRE(r11);
  auto all = co_await st.map_all(mp);
  REQUIRE(all);
  CHECK(all->size() == 1);
  CHECK(all->at(0).first == "f2");
  CHECK(all->at(0).second == "v2");

  // streams: bounded, ids increasing, read after an id
  const auto x = st.key("t", "stream");
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    auto id = co_await st.stream_add(x, "m" + std::to_string(i), 5);
    REQUIRE(id);
    ids.push_back(*id);
  }
  auto rd = co_await st.stream_read(x, "", 100);
  REQUIRE(rd);
  REQUIRE(rd->size() == 5);
  CHECK(rd->front().payload == "m2");
  CHECK(rd->back().payload == "m6");
  CHECK(rd->back().id == ids.back());
  rd = co_await st.stream_read(x, ids[4], 100);
  REQUIRE(rd->size() == 2);
  CHECK(rd->at(0).payload == "m5");
  rd = co_await st.stream_read(x, ids[2], 1);
  REQUIRE(rd->size() == 1);
  CHECK(rd->at(0).payload == "m3");
}

}  // namespace

TEST_CASE("hash tags: key_of escapes the tag, slots follow the Redis Cluster specification", "[cluster]") {
  CHECK(cl::key_of("p:", "room", "lobby", "history") == "p:room{lobby}:history");
  CHECK(cl::key_of("p:", "room", "a}b{c%") == "p:room{a%7Db%7Bc%25}");
  CHECK(cl::hash_tag_of(cl::key_of("p:", "room", "a}b")) == "a%7Db");
  // The specification's test vector: CRC16 of "123456789" is 0x31C3.
  CHECK(cl::cluster_slot("123456789") == 0x31C3);
  CHECK(cl::cluster_slot("{user1000}.following") == cl::cluster_slot("{user1000}.followers"));
  CHECK(cl::cluster_slot("foo{}{bar}") == cl::cluster_slot("foo{}{bar}"));
  CHECK(cl::hash_tag_of("foo{}{bar}") == "foo{}{bar}");  // empty first tag: the whole key
  CHECK(cl::hash_tag_of("foo{{bar}}zap") == "{bar");
  CHECK(cl::key_of("p:", "room", "x") != cl::key_of("p:", "room", "y"));
  CHECK(cl::cluster_slot(cl::key_of("p:", "room", "lobby")) == cl::cluster_slot(cl::key_of("p:", "room", "lobby", "history")));
}

TEST_CASE("local_state: counters, sets, maps, streams", "[cluster]") {
  asio::io_context io;
  cl::local_state st;
  run_coro(io, [&]() -> asio::awaitable<void> { co_await semantics(st); });
}

TEST_CASE("local_state: pub/sub posts to each subscriber's executor", "[cluster]") {
  asio::io_context io;
  cl::local_state st;
  std::vector<std::string> got;
  auto id = st.subscribe(io.get_executor(), st.channel("room", "a"), [&](std::string_view, std::string_view p) { got.emplace_back(p); });
  CHECK(st.publish_now(st.channel("room", "a"), "one") == 1);
  CHECK(st.publish_now(st.channel("room", "b"), "other") == 0);
  CHECK(got.empty());  // posted, not inline
  REQUIRE(rproxy::test::run_until(io, [&] { return got.size() == 1; }));
  CHECK(got[0] == "one");
  st.unsubscribe(id);
  CHECK(st.publish_now(st.channel("room", "a"), "two") == 0);
}

TEST_CASE("redis_state: the same semantics on a real Redis", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server (apt install redis-server)");
  asio::io_context io;
  cl::redis_state st(io.get_executor(), rproxy::test::redis_options_for(rs, "test:"));
  CHECK(st.degraded());
  st.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return !st.degraded(); }));
  run_coro(io, [&]() -> asio::awaitable<void> { co_await semantics(st); });
  // the keys are where the prefix and tag say (checked on Redis' side)
  CHECK(rs.command({"GET", "test:t{counter}"}) == "6");
  CHECK(rs.command({"XLEN", "test:t{stream}"}) == "5");
}

TEST_CASE("redis_client: pipelined commands complete in order on one connection", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_client c(io.get_executor(), rproxy::test::redis_options_for(rs, "test:"));
  c.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return c.ready(); }));
  std::vector<std::int64_t> order;
  for (int i = 0; i < 500; ++i)
    c.async_command({"INCR", "test:seq"}, [&](std::error_code ec, cl::reply r) {
      REQUIRE(!ec);
      order.push_back(r.integer);
    });
  REQUIRE(rproxy::test::run_until(io, [&] { return order.size() == 500; }));
  for (int i = 0; i < 500; ++i) CHECK(order[static_cast<std::size_t>(i)] == i + 1);
  // an error reply says which
  std::error_code got;
  std::string text;
  c.async_command({"NOSUCHCOMMAND"}, [&](std::error_code ec, cl::reply r) {
    got = ec;
    text = r.str;
  });
  REQUIRE(rproxy::test::run_until(io, [&] { return bool(got); }));
  CHECK(got == cl::error::server_error);
  CHECK(text.find("unknown command") != std::string::npos);
}

TEST_CASE("redis_client: pub/sub between two clients, re-subscribed after Redis restarts", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_state a(io.get_executor(), rproxy::test::redis_options_for(rs, "test:")), b(io.get_executor(), rproxy::test::redis_options_for(rs, "test:"));
  std::vector<bool> a_states;
  a.client().on_state([&](bool up) { a_states.push_back(up); });
  std::vector<std::string> got;
  b.subscribe(b.channel("room", "x"), [&](std::string_view ch, std::string_view p) {
    CHECK(ch == "test:room{x}");
    got.emplace_back(p);
  });
  a.start();
  b.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return !a.degraded() && !b.degraded(); }));
  // PUBLISH until the subscription is in place (SUBSCRIBE went out with the handshake)
  std::int64_t receivers = 0;
  REQUIRE(rproxy::test::run_until(io, [&] {
    if (receivers == 0)
      run_coro(io, [&]() -> asio::awaitable<void> { receivers = (co_await a.publish(a.channel("room", "x"), "hello")).value_or(0); });
    return receivers == 1;
  }));
  REQUIRE(rproxy::test::run_until(io, [&] { return !got.empty(); }));
  CHECK(got.back() == "hello");

  // Redis goes away: both degrade, commands fail at once
  rs.kill();
  REQUIRE(rproxy::test::run_until(io, [&] { return a.degraded() && b.degraded(); }));
  run_coro(io, [&]() -> asio::awaitable<void> {
    auto r = co_await a.incr(a.key("t", "c"), 1, 0ms);
    CHECK(!r);
    CHECK(r.error() == cl::error::not_connected);
  });
  // and comes back on the same port: both reconnect, b re-subscribes by itself
  REQUIRE(rs.restart());
  REQUIRE(rproxy::test::run_until(io, [&] { return !a.degraded() && !b.degraded(); }));
  got.clear();
  receivers = 0;
  REQUIRE(rproxy::test::run_until(io, [&] {
    if (receivers == 0)
      run_coro(io, [&]() -> asio::awaitable<void> { receivers = (co_await a.publish(a.channel("room", "x"), "again")).value_or(0); });
    return receivers == 1;
  }));
  REQUIRE(rproxy::test::run_until(io, [&] { return !got.empty(); }));
  CHECK(got.back() == "again");
  CHECK(a_states == std::vector<bool>{true, false, true});
}

TEST_CASE("redis_client: a paused Redis fails commands within the timeout; resumed, it is used again", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  cl::redis_state st(io.get_executor(), rproxy::test::redis_options_for(rs, "test:"));
  st.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return !st.degraded(); }));
  rs.pause();
  std::error_code ec;
  bool done = false;
  st.client().async_command({"PING"}, [&](std::error_code e, cl::reply) {
    ec = e;
    done = true;
  });
  REQUIRE(rproxy::test::run_until(io, [&] { return done; }));
  CHECK(ec == cl::error::timeout);
  CHECK(st.degraded());
  CHECK(st.client().stats().timeouts == 1);
  rs.resume();
  REQUIRE(rproxy::test::run_until(io, [&] { return !st.degraded(); }));
  run_coro(io, [&]() -> asio::awaitable<void> {
    auto r = co_await st.incr(st.key("t", "after"), 2, 0ms);  // (never co_await inside CHECK: Catch evaluates it twice)
    CHECK(*r == 2);
  });
}

TEST_CASE("redis_client: AUTH with a password and with an ACL user; refused credentials stay degraded", "[cluster][redis]") {
  rproxy::test::redis_server rs({"--requirepass", "s3cret-pass"});
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  auto o = rproxy::test::redis_options_for(rs, "test:");
  o.password = "s3cret-pass";
  cl::redis_state ok(io.get_executor(), o);
  ok.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return !ok.degraded(); }));

  // an ACL user made on the server
  CHECK(rs.command({"ACL", "SETUSER", "proxy", "on", ">user-pass", "~test:*", "&*", "+@all"}, "s3cret-pass") == "OK");
  auto u = rproxy::test::redis_options_for(rs, "test:");
  u.user = "proxy";
  u.password = "user-pass";
  cl::redis_state user(io.get_executor(), u);
  user.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return !user.degraded(); }));
  run_coro(io, [&]() -> asio::awaitable<void> {
    auto r = co_await user.incr(user.key("t", "acl"), 1, 0ms);
    CHECK(*r == 1);
  });

  auto bad = rproxy::test::redis_options_for(rs, "test:");
  bad.password = "wrong";
  cl::redis_state refused(io.get_executor(), bad);
  refused.start();
  // several connection attempts pass; it never comes up
  asio::steady_timer t(io, 400ms);
  bool waited = false;
  t.async_wait([&](std::error_code) { waited = true; });
  REQUIRE(rproxy::test::run_until(io, [&] { return waited; }));
  CHECK(refused.degraded());
  CHECK(refused.client().stats().connects == 0);
}

TEST_CASE("redis block: the password comes from a file or a variable, and the errors do not show it", "[cluster]") {
  cl::redis_block b;
  b.password_env = "RPROXY_TEST_REDIS_PASS";
  ::setenv("RPROXY_TEST_REDIS_PASS", "from-env", 1);
  auto o = b.options();
  REQUIRE(o);
  CHECK(o->password == "from-env");
  ::unsetenv("RPROXY_TEST_REDIS_PASS");
  auto missing = b.options();
  REQUIRE(!missing);
  CHECK(missing.error().find("RPROXY_TEST_REDIS_PASS") != std::string::npos);
  b.password_env.clear();
  b.password_file = "/nonexistent/redis.pass";
  REQUIRE(!b.options());
}
