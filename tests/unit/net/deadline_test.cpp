#include <rproxy/net/deadline.hpp>

#include <rproxy/net/connector.hpp>
#include <rproxy/net/idle_sweep.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/buffer.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <asio/experimental/deferred.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace {

using namespace std::chrono_literals;
using asio::experimental::deferred;
using clock_type = std::chrono::steady_clock;
namespace net = rproxy::net;
using rproxy::test::run_until;
using stream = asio::local::stream_protocol::socket;

/// A connected pair of sockets: `a` is read with a deadline, the test writes into `b`.
struct pair {
  explicit pair(asio::io_context& ioc) : a(ioc), b(ioc) { asio::local::connect_pair(a, b); }
  void send(std::string_view s) { REQUIRE(asio::write(b, asio::buffer(s.data(), s.size())) == s.size()); }
  stream a, b;
};

/// The outcome of one read: set by the coroutine, observed by the test.
struct read_result {
  std::optional<std::error_code> ec;
  std::string data;
  bool done() const { return ec.has_value(); }
};

/// Reads once from `s` with a deadline at `at` into `out`.
asio::awaitable<void> read_with_deadline(stream& s, clock_type::time_point at, read_result& out) {
  std::array<char, 64> buf;
  auto [ec, n] = co_await net::with_deadline(s.async_read_some(asio::buffer(buf), deferred), at);
  out.data.assign(buf.data(), n);
  out.ec = ec;
}

/// After the deadline raced a read: reads once more, with a distant deadline, into `second`.
asio::awaitable<void> read_twice(stream& s, clock_type::time_point first_at, read_result& first, read_result& second) {
  co_await read_with_deadline(s, first_at, first);
  co_await read_with_deadline(s, clock_type::now() + 20s, second);
}

}  // namespace

TEST_CASE("deadline: an operation that completes first keeps its result", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  read_result r;
  asio::co_spawn(ioc, read_with_deadline(p.a, clock_type::now() + 20s, r), asio::detached);
  ioc.poll();  // the read is pending
  CHECK_FALSE(r.done());
  p.send("hello");
  REQUIRE(run_until(ioc, [&] { return r.done(); }));
  CHECK_FALSE(*r.ec);
  CHECK(r.data == "hello");
  // The timer was cancelled: its handler runs, and then nothing is left waiting.
  ioc.restart();
  ioc.run();
  CHECK(ioc.stopped());
}

TEST_CASE("deadline: the deadline cancels the operation, and only that one", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  read_result first, second;
  asio::co_spawn(ioc, read_twice(p.a, clock_type::now() + 10ms, first, second), asio::detached);
  REQUIRE(run_until(ioc, [&] { return first.done(); }));
  CHECK(*first.ec == net::error::idle_timeout);
  CHECK(first.data.empty());
  // The socket still works: the next read (no deadline near) gets what is sent now.
  ioc.poll();
  CHECK_FALSE(second.done());
  p.send("later");
  REQUIRE(run_until(ioc, [&] { return second.done(); }));
  CHECK_FALSE(*second.ec);
  CHECK(second.data == "later");
}

TEST_CASE("deadline: the caller names the timeout code", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  std::optional<std::error_code> got;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        std::array<char, 16> buf;
        auto [ec, n] = co_await net::with_deadline(p.a.async_read_some(asio::buffer(buf), deferred), 1ms,
                                                   make_error_code(net::error::connect_timeout));
        (void)n;
        got = ec;
      },
      asio::detached);
  REQUIRE(run_until(ioc, [&] { return got.has_value(); }));
  CHECK(*got == net::error::connect_timeout);
}

// The race of issue 9: the read completes and the deadline expires in the same loop pass. The
// bytes must not be lost, nothing may run after the call returns (ASan would see a write into a
// freed frame), and the next read on the same socket must not be cancelled.
TEST_CASE("deadline: read and deadline ready in the same pass", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  read_result first, second;

  SECTION("data already there and the deadline already passed when the read starts") {
    p.send("both");
    asio::co_spawn(ioc, read_twice(p.a, clock_type::now() - 1s, first, second), asio::detached);
  }
  SECTION("the read pending in the reactor, then data and deadline become ready together") {
    const auto at = clock_type::now() + 5ms;
    asio::co_spawn(ioc, read_twice(p.a, at, first, second), asio::detached);
    ioc.poll();  // the read waits for data, the timer for `at`
    REQUIRE_FALSE(first.done());
    p.send("both");
    while (clock_type::now() <= at) {
      // not running the loop: the next pass sees the readable socket and the expired timer together
    }
  }

  REQUIRE(run_until(ioc, [&] { return first.done(); }));
  if (*first.ec) {
    // The deadline won: the read was cancelled before it took anything; the bytes are still there.
    CHECK(*first.ec == net::error::idle_timeout);
    CHECK(first.data.empty());
    REQUIRE(run_until(ioc, [&] { return second.done(); }));
    CHECK_FALSE(*second.ec);
    CHECK(second.data == "both");
  } else {
    CHECK(first.data == "both");
    // The next read is pending, not cancelled by a late timer: it still waits, then gets data.
    for (int i = 0; i < 5; ++i) ioc.poll();
    CHECK_FALSE(second.done());
    p.send("next");
    REQUIRE(run_until(ioc, [&] { return second.done(); }));
    CHECK_FALSE(*second.ec);
    CHECK(second.data == "next");
  }
}

TEST_CASE("deadline: cancelling the caller cancels the operation", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  asio::cancellation_signal cancel;
  read_result r;
  asio::co_spawn(ioc, read_with_deadline(p.a, clock_type::now() + 20s, r),
                 asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  ioc.poll();
  REQUIRE_FALSE(r.done());
  cancel.emit(asio::cancellation_type::terminal);
  REQUIRE(run_until(ioc, [&] { return r.done(); }));
  CHECK(*r.ec == asio::error::operation_aborted);
}

TEST_CASE("deadline: works for write, wait and connect", "[net][deadline]") {
  asio::io_context ioc;
  std::optional<std::error_code> write_ec, wait_ec, connect_ec, slow_wait_ec;
  std::size_t written = 0;
  bool connected = false;
  pair p(ioc);
  asio::ip::tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        const std::string msg = "payload";
        auto [wec, n] = co_await net::with_deadline(asio::async_write(p.a, asio::buffer(msg), deferred), 20s);
        written = n;
        write_ec = wec;

        asio::steady_timer t(ioc, 1ms);
        auto [tec] = co_await net::with_deadline(t.async_wait(deferred), 20s);
        wait_ec = tec;

        asio::steady_timer slow(ioc, 20s);
        auto [sec] = co_await net::with_deadline(slow.async_wait(deferred), 1ms);
        slow_wait_ec = sec;

        auto ex = co_await asio::this_coro::executor;
        auto [cec, sock] = co_await net::with_deadline(net::async_connect(ex, acc.local_endpoint(), 20s, deferred), 20s);
        connect_ec = cec;
        connected = sock.is_open();
      },
      asio::detached);
  REQUIRE(run_until(ioc, [&] { return connect_ec.has_value(); }));
  CHECK_FALSE(*write_ec);
  CHECK(written == 7);
  CHECK_FALSE(*wait_ec);
  CHECK(*slow_wait_ec == net::error::idle_timeout);
  CHECK_FALSE(*connect_ec);
  CHECK(connected);
}

TEST_CASE("deadline: any completion token, with the timer on the given executor", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  std::array<char, 16> buf;
  std::optional<std::error_code> got;
  std::size_t got_n = 99;
  net::async_with_deadline(ioc.get_executor(), p.a.async_read_some(asio::buffer(buf), deferred),
                           clock_type::now() + 1ms, make_error_code(net::error::idle_timeout),
                           [&](std::error_code ec, std::size_t n) {
                             got = ec;
                             got_n = n;
                           });
  REQUIRE(run_until(ioc, [&] { return got.has_value(); }));
  CHECK(*got == net::error::idle_timeout);
  CHECK(got_n == 0);
}

TEST_CASE("deadline: an io_context destroyed while the call is pending frees it all", "[net][deadline]") {
  // LeakSanitizer (scripts/test --sanitize) reports the call's state or the coroutine frame if
  // either is left behind; ASan reports a handler that touches them after they are freed.
  read_result r;
  {
    asio::io_context ioc;
    pair p(ioc);
    asio::co_spawn(ioc, read_with_deadline(p.a, clock_type::now() + 20s, r), asio::detached);
    ioc.poll();
    REQUIRE_FALSE(r.done());
  }
  CHECK_FALSE(r.done());
}

TEST_CASE("deadline: back-to-back calls leave no timer behind", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  int reads = 0;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        std::array<char, 1> buf;
        for (int i = 0; i < 100; ++i) {
          auto [ec, n] = co_await net::with_deadline(p.a.async_read_some(asio::buffer(buf), deferred), 20s);
          if (ec || n != 1) co_return;
          ++reads;
        }
      },
      asio::detached);
  p.send(std::string(100, 'x'));
  REQUIRE(run_until(ioc, [&] { return reads == 100; }));
  ioc.restart();
  ioc.run();  // returns: every cancelled timer's handler has run, nothing else waits
  CHECK(ioc.stopped());
}

// A timeout (a duration) on an io_context's executor puts the deadline on the io_context's idle
// sweep (net/idle_sweep.hpp) instead of a timer per call: the same contract.
namespace {
asio::awaitable<void> read_for(stream& s, clock_type::duration d, read_result& out) {
  std::array<char, 64> buf;
  auto [ec, n] = co_await net::with_deadline(s.async_read_some(asio::buffer(buf), deferred), d);
  out.data.assign(buf.data(), n);
  out.ec = ec;
}
}  // namespace

TEST_CASE("deadline: a timeout on the idle sweep cancels the operation, and only that one", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  read_result first, second;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await read_for(p.a, 10ms, first);
        co_await read_for(p.a, 20s, second);
      },
      asio::detached);
  ioc.poll();
  CHECK(asio::use_service<net::idle_sweep>(ioc).size() == 1);  // the deadline is the sweep's entry
  REQUIRE(run_until(ioc, [&] { return first.done(); }));
  CHECK(*first.ec == net::error::idle_timeout);
  CHECK(first.data.empty());
  ioc.poll();
  CHECK_FALSE(second.done());
  p.send("later");
  REQUIRE(run_until(ioc, [&] { return second.done(); }));
  CHECK_FALSE(*second.ec);
  CHECK(second.data == "later");
  CHECK(asio::use_service<net::idle_sweep>(ioc).size() == 0);  // removed when the read completed
  ioc.restart();
  ioc.run();  // returns: no timer left armed
  CHECK(ioc.stopped());
}

TEST_CASE("deadline: a timeout on the idle sweep: data first, caller cancels, io_context destroyed", "[net][deadline]") {
  SECTION("the data is there first: the result stands") {
    asio::io_context ioc;
    pair p(ioc);
    read_result r;
    p.send("now");
    asio::co_spawn(ioc, read_for(p.a, 20s, r), asio::detached);
    REQUIRE(run_until(ioc, [&] { return r.done(); }));
    CHECK_FALSE(*r.ec);
    CHECK(r.data == "now");
  }
  SECTION("cancelling the caller cancels the operation and leaves the sweep") {
    asio::io_context ioc;
    pair p(ioc);
    asio::cancellation_signal cancel;
    read_result r;
    asio::co_spawn(ioc, read_for(p.a, 20s, r), asio::bind_cancellation_slot(cancel.slot(), asio::detached));
    ioc.poll();
    REQUIRE_FALSE(r.done());
    cancel.emit(asio::cancellation_type::terminal);
    REQUIRE(run_until(ioc, [&] { return r.done(); }));
    CHECK(*r.ec == asio::error::operation_aborted);
    CHECK(asio::use_service<net::idle_sweep>(ioc).size() == 0);
  }
  SECTION("an io_context destroyed while the call is pending frees it all") {  // (LeakSanitizer, ASan)
    read_result r;
    {
      asio::io_context ioc;
      pair p(ioc);
      asio::co_spawn(ioc, read_for(p.a, 20s, r), asio::detached);
      ioc.poll();
      REQUIRE_FALSE(r.done());
    }
    CHECK_FALSE(r.done());
  }
}

TEST_CASE("deadline: timeouts of many lengths (past the sweep's lanes) keep a timer each, same results", "[net][deadline]") {
  asio::io_context ioc;
  pair p(ioc);
  int reads = 0, timeouts = 0;
  bool done = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        std::array<char, 1> buf;
        for (int i = 0; i < 2 * static_cast<int>(net::idle_sweep::max_lanes); ++i) {  // a new length each time
          auto [ec, n] = co_await net::with_deadline(p.a.async_read_some(asio::buffer(buf), deferred), 20s + std::chrono::milliseconds(i));
          if (ec || n != 1) co_return;
          ++reads;
        }
        for (int i = 0; i < 3; ++i) {  // expiries, on the sweep or on a timer
          auto [ec, n] = co_await net::with_deadline(p.a.async_read_some(asio::buffer(buf), deferred), std::chrono::milliseconds(1 + i));
          (void)n;
          if (ec == net::error::idle_timeout) ++timeouts;
        }
        done = true;
      },
      asio::detached);
  p.send(std::string(2 * net::idle_sweep::max_lanes, 'x'));
  REQUIRE(run_until(ioc, [&] { return done; }));
  CHECK(reads == 2 * static_cast<int>(net::idle_sweep::max_lanes));
  CHECK(timeouts == 3);
  ioc.restart();
  ioc.run();
  CHECK(ioc.stopped());
}
