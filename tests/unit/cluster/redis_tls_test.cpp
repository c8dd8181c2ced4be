// The Redis client over TLS, against a redis-server of the test's own with --tls-port (the
// test CA's leaf, tests/support/test_certs.hpp): commands and pub/sub, a refused certificate
// (wrong CA, wrong name) keeps the client down and says why, a client certificate when Redis
// asks for one, re-subscribe after a restart; and the `redis: tls:` block's checks.
#include <rproxy/cluster/redis_block.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/config/decode.hpp>
#include <rproxy/observe/log.hpp>

#include <asio/io_context.hpp>

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "redis_server.hpp"
#include "redis_test_options.hpp"
#include "run_until.hpp"
#include "skip.hpp"
#include "test_certs.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;
namespace obs = rproxy::observe;

namespace {

/// A redis-server with a plain port (the fixture's, for its own checks) and a TLS port.
struct tls_redis {
  std::uint16_t tls_port = rproxy::test::free_loopback_port();
  rproxy::test::redis_server rs;
  explicit tls_redis(const std::string& auth_clients = "no")
      : rs({"--tls-port", std::to_string(tls_port), "--tls-cert-file", rproxy::test::certs().path("leaf.pem"), "--tls-key-file",
            rproxy::test::certs().path("leaf.key"), "--tls-ca-cert-file", rproxy::test::certs().path("ca.pem"),
            "--tls-auth-clients", auth_clients}) {}
};

cl::redis_tls_block tls_block(const std::string& ca, const std::string& sni = "backend.test") {
  cl::redis_tls_block t;
  t.ca = rproxy::test::certs().path(ca);
  t.sni = sni;
  return t;
}

cl::redis_options options_for(const tls_redis& r, const cl::redis_tls_block& t) {
  auto o = rproxy::test::redis_options_for(r.tls_port, "test:");
  o.command_timeout = 1000ms;  // (a TLS handshake on a loaded test machine)
  o.connect_timeout = 2000ms;
  auto ctx = t.context();
  REQUIRE(ctx);
  o.tls = *ctx;
  o.tls_name = t.sni;
  return o;
}

struct log_capture {
  std::ostringstream text;
  obs::logger log = obs::make_logger(obs::log_format::text, obs::log_level::info, std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
};

/// Lets the client try (and fail) several times: true once `n` attempts have failed.
bool failed_attempts(asio::io_context& io, const std::vector<std::string>& why, std::size_t n) {
  return rproxy::test::run_until(io, [&] { return why.size() >= n; });
}

struct with_redis {
  std::optional<cl::redis_block> redis;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&with_redis::redis>("redis"));
  }
};

}  // namespace

TEST_CASE("redis_client over TLS: pipelined commands and pub/sub, re-subscribed after the TLS Redis restarts", "[cluster][redis][tls]") {
  tls_redis r;
  if (!r.rs) RPROXY_SKIP_MISSING("redis-server (apt install redis-server)");
  asio::io_context io;
  log_capture cap;
  const auto o = options_for(r, tls_block("ca.pem"));
  cl::redis_client a(io.get_executor(), o, &cap.log), b(io.get_executor(), o);
  std::vector<bool> a_states;
  a.on_state([&](bool up) { a_states.push_back(up); });
  std::vector<std::string> got;
  b.subscribe("test:room{x}", [&](std::string_view ch, std::string_view p) {
    CHECK(ch == "test:room{x}");
    got.emplace_back(p);
  });
  a.start();
  b.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return a.ready() && b.ready(); }));

  std::vector<std::int64_t> order;
  for (int i = 0; i < 300; ++i)
    a.async_command({"INCR", "test:seq"}, [&](std::error_code ec, cl::reply rep) {
      CHECK(!ec);
      order.push_back(rep.integer);
    });
  REQUIRE(rproxy::test::run_until(io, [&] { return order.size() == 300; }));
  for (int i = 0; i < 300; ++i) CHECK(order[static_cast<std::size_t>(i)] == i + 1);
  CHECK(r.rs.command({"GET", "test:seq"}) == "300");  // (read back over the plain port)

  // a large value both ways (several TLS records)
  const std::string big(200'000, 'v');
  std::string back;
  a.async_command({"SET", "test:big", big}, [&](std::error_code ec, cl::reply) {
    CHECK(!ec);
    a.async_command({"GET", "test:big"}, [&](std::error_code, cl::reply rep) { back = rep.str; });
  });
  REQUIRE(rproxy::test::run_until(io, [&] { return !back.empty(); }));
  CHECK(back == big);

  auto publish_until_heard = [&](const std::string& msg) {
    std::int64_t receivers = 0;
    bool in_flight = false;
    REQUIRE(rproxy::test::run_until(io, [&] {
      if (receivers == 0 && !in_flight) {
        in_flight = true;
        a.async_command({"PUBLISH", "test:room{x}", msg}, [&](std::error_code ec, cl::reply rep) {
          in_flight = false;
          if (!ec) receivers = rep.integer;
        });
      }
      return receivers == 1;
    }));
    REQUIRE(rproxy::test::run_until(io, [&] { return !got.empty() && got.back() == msg; }));
  };
  publish_until_heard("hello");

  // Redis goes away and comes back on the same ports: both reconnect over TLS, b re-subscribes
  r.rs.kill();
  REQUIRE(rproxy::test::run_until(io, [&] { return !a.ready() && !b.ready(); }));
  REQUIRE(r.rs.restart());
  REQUIRE(rproxy::test::run_until(io, [&] { return a.ready() && b.ready(); }));
  publish_until_heard("again");
  CHECK(a_states == std::vector<bool>{true, false, true});
  CHECK(cap.text.str().find("redis unavailable") != std::string::npos);
  CHECK(cap.text.str().find("redis connected") != std::string::npos);
}

TEST_CASE("redis_client over TLS: a certificate from another CA or for another name is refused; the client stays down and says why", "[cluster][redis][tls]") {
  tls_redis r;
  if (!r.rs) RPROXY_SKIP_MISSING("redis-server (apt install redis-server)");
  asio::io_context io;
  auto run_refused = [&](const cl::redis_tls_block& t) {
    log_capture cap;
    auto o = options_for(r, t);
    o.password = "never-logged-secret";
    cl::redis_client c(io.get_executor(), o, &cap.log);
    std::vector<std::string> why;
    c.on_connect_failed([&](std::string_view w) { why.emplace_back(w); });
    c.start();
    REQUIRE(failed_attempts(io, why, 3));  // it retries, and never comes up
    CHECK(!c.ready());
    CHECK(c.stats().connects == 0);
    for (const auto& w : why) CHECK(w.find("TLS: server certificate refused") != std::string::npos);
    const std::string logged = cap.text.str();
    CHECK(logged.find("redis unavailable") != std::string::npos);
    CHECK(logged.find("TLS: server certificate refused") != std::string::npos);
    CHECK(logged.find("never-logged-secret") == std::string::npos);
    bool done = false;
    c.async_command({"PING"}, [&](std::error_code ec, cl::reply) {
      CHECK(ec == cl::error::not_connected);
      done = true;
    });
    REQUIRE(rproxy::test::run_until(io, [&] { return done; }));
    return why.front();
  };
  SECTION("another CA") { CHECK(run_refused(tls_block("other.pem")).find("certificate") != std::string::npos); }
  SECTION("another name") { CHECK(run_refused(tls_block("ca.pem", "wrong.test")).find("mismatch") != std::string::npos); }
  SECTION("no name: the address must be in the certificate, and 127.0.0.1 is") {
    cl::redis_client c(io.get_executor(), options_for(r, tls_block("ca.pem", "")));
    c.start();
    REQUIRE(rproxy::test::run_until(io, [&] { return c.ready(); }));
  }
}

TEST_CASE("redis_client over TLS: a client certificate when Redis asks for one; plain TCP to the TLS port stays down", "[cluster][redis][tls]") {
  tls_redis r("yes");
  if (!r.rs) RPROXY_SKIP_MISSING("redis-server (apt install redis-server)");
  asio::io_context io;
  {
    cl::redis_client without(io.get_executor(), options_for(r, tls_block("ca.pem")));
    std::vector<std::string> why;
    without.on_connect_failed([&](std::string_view w) { why.emplace_back(w); });
    without.start();
    REQUIRE(failed_attempts(io, why, 2));
    CHECK(!without.ready());
    for (const auto& w : why) CHECK(w.find("TLS") != std::string::npos);  // (an alert, or a failed handshake)
  }
  auto t = tls_block("ca.pem");
  t.cert = rproxy::test::certs().path("leaf.pem");  // (the test leaf serves as a client certificate too)
  t.key = rproxy::test::certs().path("leaf.key");
  cl::redis_client with(io.get_executor(), options_for(r, t));
  with.start();
  REQUIRE(rproxy::test::run_until(io, [&] { return with.ready(); }));
  std::string pong;
  with.async_command({"PING"}, [&](std::error_code, cl::reply rep) { pong = rep.str; });
  REQUIRE(rproxy::test::run_until(io, [&] { return !pong.empty(); }));
  CHECK(pong == "PONG");

  auto plain = options_for(r, tls_block("ca.pem"));
  plain.tls = nullptr;
  cl::redis_client p(io.get_executor(), plain);
  std::vector<std::string> why;
  p.on_connect_failed([&](std::string_view w) { why.emplace_back(w); });
  p.start();
  REQUIRE(failed_attempts(io, why, 2));
  CHECK(!p.ready());
}

TEST_CASE("redis block: tls builds a verifying context; bad files and settings are reported at their line", "[cluster][tls][config]") {
  const auto& certs = rproxy::test::certs();
  auto ok = rproxy::config::load_string<with_redis>("redis:\n  address: 127.0.0.1:6380\n  tls:\n    ca: " + certs.path("ca.pem") +
                                                    "\n    sni: redis.internal\n", "test.yaml");
  REQUIRE(ok);
  auto o = ok->redis->options();
  REQUIRE(o);
  REQUIRE(o->tls != nullptr);
  CHECK(o->tls->verify());
  CHECK(o->tls_name == "redis.internal");
  // no tls block: plain TCP; a tls block without ca: the system's store, still verifying
  const cl::redis_block plain_block;
  const auto plain = plain_block.options();
  REQUIRE(plain);
  CHECK(plain->tls == nullptr);
  auto sys = rproxy::config::load_string<with_redis>("redis:\n  tls: {}\n", "test.yaml");
  REQUIRE(sys);
  REQUIRE(sys->redis->options()->tls != nullptr);
  CHECK(sys->redis->options()->tls->verify());

  auto error_of = [](const std::string& yaml) {
    auto r = rproxy::config::load_string<with_redis>(yaml, "test.yaml");
    REQUIRE(!r);
    REQUIRE(r.error().size() == 1);
    return r.error()[0].to_string();
  };
  const std::string missing = error_of("redis:\n  tls:\n    ca: /nonexistent/ca.pem\n");
  CHECK(missing.rfind("test.yaml:3:", 0) == 0);
  CHECK(missing.find("/nonexistent/ca.pem") != std::string::npos);
  const std::string garbage = error_of("redis:\n  tls:\n    ca: " + certs.path("garbage.pem") + "\n");
  CHECK(garbage.rfind("test.yaml:3:", 0) == 0);
  const std::string half = error_of("redis:\n  tls:\n    ca: " + certs.path("ca.pem") + "\n    cert: " + certs.path("leaf.pem") + "\n");
  CHECK(half.find("give both cert and key") != std::string::npos);
  const std::string wrong_key = error_of("redis:\n  tls:\n    cert: " + certs.path("leaf.pem") + "\n    key: " + certs.path("ca.key") + "\n");
  CHECK(wrong_key.rfind("test.yaml:4:", 0) == 0);
  INFO(wrong_key);
  CHECK(wrong_key.find(certs.path("ca.key")) != std::string::npos);
  const std::string sni = error_of("redis:\n  tls:\n    sni: \"bad name\"\n");
  CHECK(sni.rfind("test.yaml:3:", 0) == 0);
}
