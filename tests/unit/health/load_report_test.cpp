#include <rproxy/health/load_report.hpp>

#include <rproxy/balance/pool.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace health = rproxy::health;
namespace bal = rproxy::balance;
using asio::experimental::as_tuple;
using kind = health::load_report::kind;

using rproxy::test::run_until;

/// Answers every request with `status` and `body` (both changeable), counting requests.
struct report_server {
  asio::io_context& ioc;
  tcp::acceptor acceptor{ioc, {asio::ip::address_v4::loopback(), 0}};
  unsigned status = 200;
  std::string body;
  int requests = 0;
  std::string last_target;

  report_server(asio::io_context& c, std::string b) : ioc(c), body(std::move(b)) {
    asio::co_spawn(ioc, serve(), asio::detached);
  }
  tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }

  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, s] = co_await acceptor.async_accept(as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(ioc, session(std::make_shared<tcp::socket>(std::move(s))), asio::detached);
    }
  }
  asio::awaitable<void> session(std::shared_ptr<tcp::socket> s) {
    std::string buf;
    auto [ec, n] = co_await asio::async_read_until(*s, asio::dynamic_buffer(buf), "\r\n\r\n",
                                                   as_tuple(asio::use_awaitable));
    if (ec) co_return;
    ++requests;
    last_target = buf.substr(4, buf.find(' ', 4) - 4);
    std::string reply = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
    co_await asio::async_write(*s, asio::buffer(reply), as_tuple(asio::use_awaitable));
    std::error_code ignored;
    s->close(ignored);
  }
};

struct event {
  std::string id;
  std::error_code ec;
  std::uint32_t weight;
};

}  // namespace

TEST_CASE("parse_load_report: a number, {weight}, {load}; anything else is malformed", "[health][load_report]") {
  auto ok = [](std::string_view body, kind k, double v) {
    auto r = health::parse_load_report(body);
    REQUIRE(r);
    CHECK(r->what == k);
    CHECK(r->value == Approx(v));
  };
  ok("5", kind::weight, 5);
  ok(" 7.6\n", kind::weight, 7.6);
  ok("0", kind::weight, 0);
  ok(R"({"weight": 3})", kind::weight, 3);
  ok(R"({"load": 0.7})", kind::load, 0.7);
  ok(R"({"load": 1.5})", kind::load, 1.0);  // overloaded counts as full
  ok(R"({"load": 0.25, "version": "1.2", "extra": [1, 2]})", kind::load, 0.25);

  for (std::string_view bad : {"", "abc", "-1", "20000", "1e400", "[5]", "\"5\"", "{}", "null", "5 6",
                               R"({"weight": "5"})", R"({"weight": 1, "load": 0.5})", R"({"load": -0.1})",
                               R"({"weight": 5)", R"({"weight": 1, "weight": 2})"}) {
    INFO(bad);
    auto r = health::parse_load_report(bad);
    REQUIRE_FALSE(r);
    REQUIRE(r.error() == health::error::bad_load_report);
  }
  REQUIRE_FALSE(health::parse_load_report("150", 100));  // over a custom max weight
}

TEST_CASE("weight_for: the weight form is the weight; load scales the base by 100 x (1 - load)",
          "[health][load_report]") {
  REQUIRE(health::weight_for({kind::weight, 7.6}, 3) == 8);
  REQUIRE(health::weight_for({kind::weight, 0}, 3) == 0);
  REQUIRE(health::weight_for({kind::load, 0.7}, 2) == 60);
  REQUIRE(health::weight_for({kind::load, 0.0}, 1) == 100);
  REQUIRE(health::weight_for({kind::load, 1.0}, 5) == 1);  // never standby from load alone
  REQUIRE(health::weight_for({kind::load, 0.0}, 0) == 0);  // but a configured standby stays
}

TEST_CASE("load_report_poller: good reports set the weight; bad and unreachable ones leave it",
          "[health][load_report]") {
  asio::io_context ioc;
  report_server a(ioc, R"({"weight": 5})"), b(ioc, "not a number"), e(ioc, "5");
  e.status = 503;
  std::uint16_t dead;
  {
    tcp::acceptor tmp(ioc, {asio::ip::address_v4::loopback(), 0});
    dead = tmp.local_endpoint().port();
  }
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", a.endpoint(), 2},
                        {"b", b.endpoint(), 2},
                        {"e", e.endpoint(), 2},
                        {"dead", {asio::ip::address_v4::loopback(), dead}, 2}}));
  health::load_report_poller<> poller(ioc.get_executor(), pool,
                                      {.path = "/load?fmt=json", .interval = 10ms, .timeout = 1s, .jitter = 0.1});
  std::vector<event> events;
  poller.on_report([&](std::string_view id, const std::error_code& ec, std::uint32_t w) {
    events.push_back({std::string(id), ec, w});
  });
  poller.start();
  REQUIRE(run_until(ioc, [&] { return a.requests >= 3 && b.requests >= 3 && poller.stats().unreachable >= 3; }));
  REQUIRE(a.last_target == "/load?fmt=json");
  REQUIRE(pool->find("a")->weight() == 5);
  REQUIRE(pool->find("b")->weight() == 2);
  REQUIRE(pool->find("e")->weight() == 2);
  REQUIRE(pool->find("dead")->weight() == 2);
  REQUIRE(poller.reported_weight("a") == 5u);
  REQUIRE_FALSE(poller.reported_weight("b"));
  auto st = poller.stats();
  REQUIRE(st.ok >= 2);  // (the third may still be on its way)
  REQUIRE(st.bad >= 4);  // b and e, each round
  REQUIRE(st.unreachable >= 3);
  // One event per backend: the first outcome; repeats are not reported again.
  REQUIRE(events.size() == 4);
  for (const auto& ev : events) {
    if (ev.id == "a") REQUIRE((!ev.ec && ev.weight == 5));
    if (ev.id == "b") REQUIRE(ev.ec == health::error::bad_load_report);
    if (ev.id == "e") REQUIRE(ev.ec == health::error::bad_status);
    if (ev.id == "dead") REQUIRE(ev.ec == rproxy::net::error::connect_refused);
  }

  // The load form scales the configured weight; a change is reported once.
  a.body = R"({"load": 0.75})";
  REQUIRE(run_until(ioc, [&] { return pool->find("a")->weight() == 50; }));
  // Recovery is reported.
  b.body = "3";
  REQUIRE(run_until(ioc, [&] { return pool->find("b")->weight() == 3; }));
  const auto n = events.size();
  const auto before = a.requests;
  REQUIRE(run_until(ioc, [&] { return a.requests >= before + 3; }));
  REQUIRE(events.size() == n);

  // A reload that sets another weight becomes the new base.
  REQUIRE(pool->update({{"a", a.endpoint(), 4}, {"b", b.endpoint(), 2}}));
  REQUIRE(run_until(ioc, [&] { return pool->find("a")->weight() == 100; }));
  poller.stop();
}

TEST_CASE("load_report_poller: reports on another port; bounded body; stop leaves no work",
          "[health][load_report]") {
  asio::io_context ioc;
  report_server metrics(ioc, "9");
  report_server big(ioc, std::string(5000, ' ') + "3");
  auto pool = std::make_shared<bal::pool>();
  // The backend's own port does not matter: reports come from `port`.
  REQUIRE(pool->update({{"a", {asio::ip::address_v4::loopback(), 1}, 1}}));
  auto poller = std::make_unique<health::load_report_poller<>>(
      ioc.get_executor(), pool, health::load_report_options{.port = metrics.endpoint().port(), .interval = 10ms});
  poller->start();
  REQUIRE(run_until(ioc, [&] { return pool->find("a")->weight() == 9; }));

  auto pool2 = std::make_shared<bal::pool>();
  REQUIRE(pool2->update({{"big", big.endpoint(), 1}}));
  health::load_report_poller<> p2(ioc.get_executor(), pool2, {.interval = 10ms});
  p2.start();
  REQUIRE(run_until(ioc, [&] { return p2.stats().bad >= 2; }));
  REQUIRE(pool2->find("big")->weight() == 1);
  p2.stop();

  poller->stop();
  poller.reset();
  metrics.acceptor.close();
  big.acceptor.close();
  ioc.restart();
  const auto t0 = std::chrono::steady_clock::now();
  ioc.run_for(20s);
  REQUIRE(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("load_report_poller: base_weight gives the base of the load form", "[health][load_report]") {
  asio::io_context ioc;
  report_server a(ioc, R"({"load": 0.5})");
  auto pool = std::make_shared<bal::pool>();
  REQUIRE(pool->update({{"a", a.endpoint(), 1}}));
  std::uint32_t configured = 3;
  health::load_report_options o;
  o.interval = 10ms;
  o.base_weight = [&](std::string_view id) -> std::optional<std::uint32_t> {
    if (id == "a") return configured;
    return std::nullopt;
  };
  health::load_report_poller<> poller(ioc.get_executor(), pool, o);
  poller.start();
  REQUIRE(run_until(ioc, [&] { return pool->find("a")->weight() == 150; }));
  configured = 1;  // a reload changed the configured weight and kept the reported one
  REQUIRE(run_until(ioc, [&] { return pool->find("a")->weight() == 50; }));
  poller.stop();
}
