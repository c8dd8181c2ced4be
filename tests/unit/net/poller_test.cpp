#include <rproxy/net/poller.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"
#include "tcp_pair.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace net = rproxy::net;
using rproxy::test::run_until;

/// A watched connection that records what it was told and reads what it is sent.
struct conn : net::poller::watcher {
  net::polled_stream s;
  std::vector<std::uint32_t> events;
  std::string got;
  std::error_code read_error;
  int abandoned = 0;

  static void on_event(net::poller&, net::poller::watcher& w, std::uint32_t ev) {
    auto& c = static_cast<conn&>(w);
    if (ev == net::poller::abandoned) {
      ++c.abandoned;
      return;
    }
    c.events.push_back(ev);
    if (!(ev & net::poller::readable)) return;
    std::array<char, 64> buf;
    for (;;) {  // edge-triggered: until EAGAIN
      std::error_code ec;
      const std::size_t n = c.s.read_some(asio::buffer(buf), ec);
      c.got.append(buf.data(), n);
      if (ec) {
        if (ec != asio::error::would_block) c.read_error = ec;
        return;
      }
    }
  }
};

}  // namespace

TEST_CASE("poller: a polled stream leaves asio non-blocking, and its reads and writes say what asio's would", "[net][poller]") {
  asio::io_context ioc;
  auto [a, b] = rproxy::test::tcp_pair(ioc);
  std::error_code ec;
  auto s = net::polled_stream::adopt(b, ioc, ec);
  REQUIRE_FALSE(ec);
  CHECK_FALSE(b.is_open());
  REQUIRE(s.is_open());
  CHECK((::fcntl(s.native_handle(), F_GETFL) & O_NONBLOCK) != 0);

  std::array<char, 16> buf;
  s.read_some(asio::buffer(buf), ec);
  CHECK(ec == asio::error::would_block);

  const std::array<asio::const_buffer, 2> out{asio::buffer("hel", 3), asio::buffer("lo", 2)};
  CHECK(s.write_some(out, ec) == 5);
  CHECK_FALSE(ec);
  std::string got(5, '\0');
  asio::read(a, asio::buffer(got));
  CHECK(got == "hello");

  a.close();
  while (!ec) s.read_some(asio::buffer(buf), ec);  // (EAGAIN until the FIN is in)
  CHECK(ec == asio::error::eof);
  s.close(ec);
  CHECK_FALSE(s.is_open());
  s.read_some(asio::buffer(buf), ec);
  CHECK(ec == asio::error::bad_descriptor);
}

TEST_CASE("poller: edges reach their watcher; the io_context runs out of work once none is watched", "[net][poller]") {
  asio::io_context ioc;
  auto& p = asio::use_service<net::poller>(ioc);
  auto [a, b] = rproxy::test::tcp_pair(ioc);
  conn c;
  std::error_code ec;
  c.s = net::polled_stream::adopt(b, ioc, ec);
  p.add(c.s.native_handle(), c, &conn::on_event, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(c.watched());

  asio::write(a, asio::buffer("ping", 4));
  REQUIRE(run_until(ioc, [&] { return c.got == "ping"; }, 5s));
  asio::write(a, asio::buffer("pong", 4));  // a second edge, after the set was drained
  REQUIRE(run_until(ioc, [&] { return c.got == "pingpong"; }, 5s));
  a.shutdown(tcp::socket::shutdown_send);
  REQUIRE(run_until(ioc, [&] { return c.read_error == asio::error::eof; }, 5s));
  for (auto ev : c.events) CHECK(ev != net::poller::abandoned);

  p.remove(c);
  CHECK_FALSE(c.watched());
  c.s.close(ec);
  ioc.restart();
  ioc.run_for(5s);  // returns at once: no wait is left
  CHECK(ioc.stopped());
}

TEST_CASE("poller: a watcher removed during a batch gets no event left in that batch", "[net][poller]") {
  asio::io_context ioc;
  auto& p = asio::use_service<net::poller>(ioc);
  auto [a1, b1] = rproxy::test::tcp_pair(ioc);
  auto [a2, b2] = rproxy::test::tcp_pair(ioc);
  struct killer : conn {
    conn* victim = nullptr;
    net::poller* p = nullptr;
  };
  killer k;  // whichever of the two hears first removes and closes the other
  killer v;
  std::error_code ec;
  k.s = net::polled_stream::adopt(b1, ioc, ec);
  v.s = net::polled_stream::adopt(b2, ioc, ec);
  k.victim = &v;
  v.victim = &k;
  k.p = v.p = &p;
  auto cb = [](net::poller&, net::poller::watcher& w, std::uint32_t ev) {
    auto& self = static_cast<killer&>(w);
    if (ev == net::poller::abandoned || !(ev & EPOLLIN)) return;
    self.events.push_back(ev);
    if (self.victim->watched()) {
      self.p->remove(*self.victim);
      std::error_code ignored;
      self.victim->s.close(ignored);
    }
  };
  p.add(k.s.native_handle(), k, cb, ec);
  p.add(v.s.native_handle(), v, cb, ec);
  asio::write(a1, asio::buffer("x", 1));
  asio::write(a2, asio::buffer("y", 1));
  // Both sockets are readable before the io_context runs: one batch carries both edges.
  REQUIRE(run_until(ioc, [&] { return !k.watched() || !v.watched(); }, 5s));
  ioc.poll();
  const auto fired = k.events.size() + v.events.size();
  CHECK(fired == 1);
  CHECK((k.watched() != v.watched()));
  p.remove(k);
  p.remove(v);
}

TEST_CASE("poller: watchers still in the set when the io_context goes are told once", "[net][poller]") {
  auto [c1, c2] = std::pair{std::make_unique<conn>(), std::make_unique<conn>()};
  std::vector<std::unique_ptr<tcp::socket>> peers;
  {
    asio::io_context ioc;
    auto& p = asio::use_service<net::poller>(ioc);
    for (auto* c : {c1.get(), c2.get()}) {
      auto [a, b] = rproxy::test::tcp_pair(ioc);
      std::error_code ec;
      c->s = net::polled_stream::adopt(b, ioc, ec);
      p.add(c->s.native_handle(), *c, &conn::on_event, ec);
      REQUIRE_FALSE(ec);
      peers.push_back(std::make_unique<tcp::socket>(std::move(a)));
    }
    ioc.poll();
    peers.clear();
  }
  CHECK(c1->abandoned == 1);
  CHECK(c2->abandoned == 1);
  CHECK_FALSE(c1->watched());
  CHECK_FALSE(c2->watched());
}
