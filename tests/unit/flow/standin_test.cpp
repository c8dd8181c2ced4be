// The stand-ins' response writer (flow/standin.hpp): what the backend delivers while a write is
// under way (its last bytes, its end, a failure) must neither be lost nor wait for a wake-up
// that went to no one. The source below changes its state in credit(), which write_body calls
// after a write and before it looks again: the moment a backend's events land during a write.
#include <rproxy/flow/standin.hpp>

#include <catch2/catch.hpp>

#include "../../support/run_until.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using asio::ip::tcp;
using rproxy::flow::standin::body_end;

struct fake_source {
  std::string bytes;
  bool end = false, fail = false;
  std::vector<std::size_t> credits;
  std::function<void()> on_credit;  // what arrives during the write
  int waits = 0;
  bool wait_result = false;  // false: the wait timed out
  std::function<void()> on_wait;

  std::string& body() { return bytes; }
  bool ended() const { return end; }
  bool failed() const { return fail; }
  void credit(std::size_t n) {
    credits.push_back(n);
    if (auto f = std::exchange(on_credit, nullptr)) f();
  }
  void trailers(std::string& out) { out += "grpc-status: 0\r\n"; }
  asio::awaitable<bool> wait() {
    ++waits;
    if (auto f = std::exchange(on_wait, nullptr)) f();
    co_return wait_result;
  }
};

/// Runs write_body into one end of a loopback pair; returns how it ended and what the other end read.
std::pair<body_end, std::string> run(fake_source& src, bool chunked) {
  asio::io_context io;
  tcp::acceptor acc(io, {asio::ip::address_v4::loopback(), 0});
  tcp::socket writer(io), reader(io);
  writer.connect(acc.local_endpoint());
  reader = acc.accept();
  std::optional<body_end> end;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        end = co_await rproxy::flow::standin::write_body(writer, "HEAD\r\n\r\n", chunked, src);
        writer.close();
      },
      asio::detached);
  REQUIRE(rproxy::test::run_until(io, [&] { return end.has_value(); }));
  std::string got;
  std::error_code ec;
  asio::read(reader, asio::dynamic_buffer(got), ec);
  REQUIRE(ec == asio::error::eof);
  return {*end, got};
}

}  // namespace

TEST_CASE("an end that arrives during the write ends the response without waiting", "[flow][standin]") {
  fake_source src;
  src.bytes = "abc";
  src.on_credit = [&] { src.end = true; };
  auto [end, got] = run(src, true);
  CHECK(end == body_end::complete);
  CHECK(got == "HEAD\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n");
  CHECK(src.waits == 0);
  CHECK(src.credits == std::vector<std::size_t>{3});
}

TEST_CASE("bytes and the end that arrive during the write all go out, in order", "[flow][standin]") {
  fake_source src;
  src.bytes = "abc";
  src.on_credit = [&] {
    src.bytes += "defg";
    src.end = true;
  };
  auto [end, got] = run(src, true);
  CHECK(end == body_end::complete);
  CHECK(got == "HEAD\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\ngrpc-status: 0\r\n\r\n");
  CHECK(src.credits == std::vector<std::size_t>{3, 4});
}

TEST_CASE("with nothing new it waits; what the wait brings goes out", "[flow][standin]") {
  fake_source src;
  src.bytes = "abc";
  src.wait_result = true;
  src.on_wait = [&] {
    src.bytes = "xy";
    src.end = true;
  };
  auto [end, got] = run(src, false);  // content-length framing: the bytes as they are
  CHECK(end == body_end::complete);
  CHECK(got == "HEAD\r\n\r\nabcxy");
  CHECK(src.waits == 1);
}

TEST_CASE("a wait that times out, or a failure during the write, cuts the response", "[flow][standin]") {
  fake_source timed_out;
  timed_out.bytes = "abc";
  auto [end1, got1] = run(timed_out, true);
  CHECK(end1 == body_end::cut);
  CHECK(got1 == "HEAD\r\n\r\n3\r\nabc\r\n");  // no last chunk: the client sees a cut response
  CHECK(timed_out.waits == 1);

  fake_source failed;
  failed.bytes = "abc";
  failed.on_credit = [&] { failed.fail = true; };
  auto [end2, got2] = run(failed, true);
  CHECK(end2 == body_end::cut);
  CHECK(got2 == "HEAD\r\n\r\n3\r\nabc\r\n");
  CHECK(failed.waits == 0);
}
