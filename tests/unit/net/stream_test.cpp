#include <rproxy/net/test/stream.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace {

using rproxy::net::test::fail_count;
using rproxy::net::test::make_stream_pair;
using rproxy::net::test::stream;

/// Runs handlers until `done()` or a generous bound (so a bug fails the test, never hangs it).
template <class Pred>
bool run_until(asio::io_context& ioc, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(std::chrono::milliseconds(50));
  }
  return done();
}

}  // namespace

TEST_CASE("test stream moves bytes both ways, asynchronously", "[net][stream]") {
  asio::io_context ioc;
  auto pair = make_stream_pair(ioc.get_executor());
  auto& a = pair.first;
  auto& b = pair.second;
  std::string got(5, '\0');
  bool wrote = false, read = false;
  asio::async_write(a, asio::buffer(std::string_view("hello")), [&](std::error_code ec, std::size_t n) {
    CHECK_FALSE(ec);
    CHECK(n == 5);
    wrote = true;
  });
  asio::async_read(b, asio::buffer(got), [&](std::error_code ec, std::size_t n) {
    CHECK_FALSE(ec);
    CHECK(n == 5);
    read = true;
  });
  REQUIRE_FALSE(wrote);  // never completes inside the initiating call
  REQUIRE(run_until(ioc, [&] { return wrote && read; }));
  REQUIRE(got == "hello");
  REQUIRE(a.bytes_written() == 5);
  REQUIRE(b.bytes_read() == 5);
}

TEST_CASE("test stream: a pending read completes when the peer writes", "[net][stream]") {
  asio::io_context ioc;
  auto pair = make_stream_pair(ioc.get_executor());
  auto& a = pair.first;
  auto& b = pair.second;
  char buf[16];
  std::size_t got = 0;
  b.async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
    CHECK_FALSE(ec);
    got = n;
  });
  ioc.poll();
  REQUIRE(got == 0);
  a.append("x");  // into a's own input: nobody waits there
  b.append("xyz");
  REQUIRE(run_until(ioc, [&] { return got != 0; }));
  REQUIRE(got == 3);
  REQUIRE(a.pending_input() == "x");
}

TEST_CASE("test stream: read_size and write_size split operations", "[net][stream]") {
  asio::io_context ioc;
  auto pair = make_stream_pair(ioc.get_executor());
  auto& a = pair.first;
  auto& b = pair.second;
  a.write_size(3);
  b.read_size(2);
  std::string sent = "0123456789", got;
  bool wrote = false, read = false;
  asio::async_write(a, asio::buffer(sent), [&](std::error_code ec, std::size_t n) {
    CHECK_FALSE(ec);
    CHECK(n == sent.size());
    wrote = true;
  });
  std::size_t reads = 0;
  char buf[8];
  std::function<void()> next = [&] {
    b.async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
      REQUIRE_FALSE(ec);
      CHECK(n <= 2);
      ++reads;
      got.append(buf, n);
      if (got.size() < sent.size()) next();
      else read = true;
    });
  };
  next();
  REQUIRE(run_until(ioc, [&] { return wrote && read; }));
  REQUIRE(got == sent);
  REQUIRE(reads == 5);
}

TEST_CASE("test stream: shutdown, close and reset reach the peer", "[net][stream]") {
  asio::io_context ioc;
  auto pair = make_stream_pair(ioc.get_executor());
  auto& a = pair.first;
  auto& b = pair.second;
  std::error_code ec_read, ec_write;
  std::string got;
  bool done = false;

  SECTION("shutdown(send): the peer reads the data, then eof; our writes fail") {
    bool wrote = false;
    asio::async_write(a, asio::buffer(std::string_view("bye")), [&](std::error_code ec, std::size_t) {
      CHECK_FALSE(ec);
      wrote = true;
    });
    REQUIRE(run_until(ioc, [&] { return wrote; }));
    std::error_code ec;
    a.shutdown(asio::socket_base::shutdown_send, ec);
    REQUIRE_FALSE(ec);
    asio::async_read(b, asio::dynamic_buffer(got), [&](std::error_code ec, std::size_t) {
      ec_read = ec;
      done = true;
    });
    REQUIRE(run_until(ioc, [&] { return done; }));
    REQUIRE(got == "bye");
    REQUIRE(ec_read == asio::error::eof);
    done = false;
    a.async_write_some(asio::buffer("x", 1), [&](std::error_code ec, std::size_t) {
      ec_write = ec;
      done = true;
    });
    REQUIRE(run_until(ioc, [&] { return done; }));
    REQUIRE(ec_write == asio::error::broken_pipe);
  }

  SECTION("close: our pending read aborts, the peer reads eof, its writes fail") {
    bool a_done = false;
    char buf[4];
    a.async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t) {
      ec_read = ec;
      a_done = true;
    });
    asio::async_read(b, asio::dynamic_buffer(got), [&](std::error_code ec, std::size_t) {
      CHECK(ec == asio::error::eof);
      done = true;
    });
    ioc.poll();
    a.close();
    REQUIRE(run_until(ioc, [&] { return done && a_done; }));
    REQUIRE(ec_read == asio::error::operation_aborted);
    done = false;
    b.async_write_some(asio::buffer("x", 1), [&](std::error_code ec, std::size_t) {
      ec_write = ec;
      done = true;
    });
    REQUIRE(run_until(ioc, [&] { return done; }));
    REQUIRE(ec_write == asio::error::connection_reset);
  }

  SECTION("reset: the peer's read fails with connection_reset") {
    asio::async_read(b, asio::dynamic_buffer(got), [&](std::error_code ec, std::size_t) {
      ec_read = ec;
      done = true;
    });
    ioc.poll();
    a.reset();
    REQUIRE(run_until(ioc, [&] { return done; }));
    REQUIRE(ec_read == asio::error::connection_reset);
  }
}

// The pattern of Beast's test/beast/http/read.cpp: fail the n-th operation, for n = 0, 1, ...
// until the whole exchange succeeds. Every failure must surface as the injected error, and the
// exchange needs exactly as many operations as the loop ran.
TEST_CASE("test stream: fail_count fails the n-th operation, loop until success", "[net][stream]") {
  const std::string request = "GET / HTTP/1.1\r\n\r\n";
  std::size_t n = 0;
  for (; n < 100; ++n) {
    asio::io_context ioc;
    fail_count fc{n};
    stream a(ioc.get_executor(), &fc), b(ioc.get_executor(), &fc);
    a.connect(b);
    a.write_size(4);  // several writes, so failures land in the middle too
    std::string got;
    std::error_code ec_w, ec_r;
    bool wrote = false, read = false;
    asio::async_write(a, asio::buffer(request), [&](std::error_code ec, std::size_t) {
      ec_w = ec;
      if (!ec) {
        std::error_code ignored;
        a.shutdown(asio::socket_base::shutdown_send, ignored);
      } else {
        a.close();
      }
      wrote = true;
    });
    asio::async_read(b, asio::dynamic_buffer(got), [&](std::error_code ec, std::size_t) {
      ec_r = ec;
      read = true;
    });
    REQUIRE(run_until(ioc, [&] { return wrote && read; }));
    if (!fc.triggered()) {
      REQUIRE_FALSE(ec_w);
      REQUIRE(ec_r == asio::error::eof);
      REQUIRE(got == request);
      break;
    }
    // One operation failed with the injected error; the other side saw eof (a closed) or the
    // same injected error.
    const auto injected = make_error_code(rproxy::net::test::error::test_failure);
    REQUIRE((ec_w == injected || ec_r == injected));
    REQUIRE(ec_r != std::error_code{});
    REQUIRE(injected == rproxy::condition::internal);
  }
  REQUIRE(n > 0);
  REQUIRE(n < 100);
}
