#include <rproxy/net/relay.hpp>
#include <rproxy/net/relay_pool.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace net = rproxy::net;
using rproxy::test::run_until;

std::pair<tcp::socket, tcp::socket> tcp_pair(asio::io_context& ioc) {
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  tcp::socket a(ioc);
  a.connect(acc.local_endpoint());
  tcp::socket b = acc.accept();
  return {std::move(a), std::move(b)};
}

/// user <-> proxy_client ~relay~ proxy_backend <-> backend, all on loopback.
struct tcp_flow {
  asio::io_context ioc;
  tcp::socket user{ioc}, proxy_client{ioc}, proxy_backend{ioc}, backend{ioc};
  std::optional<std::error_code> ended;
  net::relay_stats stats;
  tcp_flow() {
    std::tie(user, proxy_client) = tcp_pair(ioc);
    std::tie(proxy_backend, backend) = tcp_pair(ioc);
  }
  void start(bool splice, std::size_t buffer_size = 64 * 1024) {
    net::relay_options o;
    o.splice = splice;
    o.buffer_size = buffer_size;
    o.idle_timeout = 20s;  // a bound, not expected to fire
    net::async_relay(proxy_client, proxy_backend, std::move(o), [this](std::error_code ec, net::relay_stats st) {
      ended = ec;
      stats = st;
    });
  }
};

/// Sends `what` on `from` and reads it whole on `to`, driving the io_context.
void exchange(asio::io_context& ioc, tcp::socket& from, tcp::socket& to, const std::string& what) {
  asio::write(from, asio::buffer(what));
  std::string got(what.size(), '\0');
  bool done = false;
  asio::async_read(to, asio::buffer(got), [&](std::error_code ec, std::size_t) {
    REQUIRE_FALSE(ec);
    done = true;
  });
  REQUIRE(run_until(ioc, [&] { return done; }));
  REQUIRE(got == what);
}

net::relay_pool::stats pool_stats() { return net::relay_pool::local().get_stats(); }

}  // namespace

TEST_CASE("relay_pool: pipes given back are reused, and past max_idle_pipes closed", "[net][relay_pool]") {
  if (!net::splice_available) return;
  net::relay_pool pool;
  pool.set_limits({.max_idle_pipes = 2, .max_idle_buffers = 2});
  std::vector<net::splice_pipe> taken;
  for (int i = 0; i < 3; ++i) {
    auto p = pool.take_pipe(64 * 1024);
    REQUIRE(p);
    REQUIRE(p->is_open());
    REQUIRE(p->requested() == 64 * 1024);
    taken.push_back(std::move(*p));
  }
  auto s = pool.get_stats();
  REQUIRE(s.pipes_opened == 3);
  REQUIRE(s.pipes_in_use == 3);
  REQUIRE(s.idle_pipes == 0);

  const int fd_kept = taken[2].read_fd();
  for (auto& p : taken) pool.give_pipe(std::move(p));
  s = pool.get_stats();
  REQUIRE(s.pipes_in_use == 0);
  REQUIRE(s.idle_pipes == 2);   // bounded
  REQUIRE(s.pipes_closed == 1);  // the third was closed

  auto again = pool.take_pipe(64 * 1024);  // reused: no new pipe
  REQUIRE(again);
  s = pool.get_stats();
  REQUIRE(s.pipes_opened == 3);
  REQUIRE(s.idle_pipes == 1);
  REQUIRE(s.pipes_in_use == 1);
  (void)fd_kept;

  auto other = pool.take_pipe(4096);  // another capacity: never handed a 64 KiB pipe
  REQUIRE(other);
  REQUIRE(other->requested() == 4096);
  REQUIRE(pool.get_stats().pipes_opened == 4);

  pool.forget_pipe(std::move(*other));  // held bytes: its holder closes it
  REQUIRE_FALSE(other->is_open());
  pool.give_pipe(std::move(*again));
  s = pool.get_stats();
  REQUIRE(s.pipes_in_use == 0);
  REQUIRE(s.idle_pipes == 2);

  pool.set_limits({.max_idle_pipes = 0, .max_idle_buffers = 0});  // trims at once
  s = pool.get_stats();
  REQUIRE(s.idle_pipes == 0);
  REQUIRE(s.pipes_closed == 3);
}

TEST_CASE("relay_pool: buffers given back are reused, bounded, by size", "[net][relay_pool]") {
  net::relay_pool pool;
  pool.set_limits({.max_idle_pipes = 1, .max_idle_buffers = 1});
  auto a = pool.take_buffer(1024);
  auto b = pool.take_buffer(1024);
  REQUIRE(a.size == 1024);
  REQUIRE(pool.get_stats().buffers_allocated == 2);
  REQUIRE(pool.get_stats().buffers_in_use == 2);
  const char* first = a.data.get();
  pool.give_buffer(std::move(a));
  pool.give_buffer(std::move(b));  // past the limit: freed
  auto s = pool.get_stats();
  REQUIRE(s.idle_buffers == 1);
  REQUIRE(s.buffers_in_use == 0);
  auto c = pool.take_buffer(1024);
  REQUIRE(c.data.get() == first);  // the kept one
  REQUIRE(pool.get_stats().buffers_allocated == 2);
  auto d = pool.take_buffer(2048);  // another size: allocated
  REQUIRE(d.size == 2048);
  REQUIRE(pool.get_stats().buffers_allocated == 3);
}

/// Sends `what` on `from` while reading it whole on `to` (both asynchronous: more than the
/// socket buffers hold), driving the io_context.
void exchange_big(asio::io_context& ioc, tcp::socket& from, tcp::socket& to, const std::string& what) {
  std::string got(what.size(), '\0');
  bool written = false, read = false;
  asio::async_write(from, asio::buffer(what), [&](std::error_code ec, std::size_t) {
    REQUIRE_FALSE(ec);
    written = true;
  });
  asio::async_read(to, asio::buffer(got), [&](std::error_code ec, std::size_t) {
    REQUIRE_FALSE(ec);
    read = true;
  });
  REQUIRE(run_until(ioc, [&] { return written && read; }));
  REQUIRE(got == what);
}

TEST_CASE("relay: small messages between sockets are copied (no pipe), a big one is spliced through a pooled pipe",
          "[net][relay_pool]") {
  if (!net::splice_available) return;
  const auto before = pool_stats();
  tcp_flow f;
  f.start(true);
  for (int i = 0; i < 3; ++i) {
    exchange(f.ioc, f.user, f.backend, "ping " + std::to_string(i));
    exchange(f.ioc, f.backend, f.user, "pong " + std::to_string(i));
  }
  // Six small bursts: recv + send through the thread's scratch space, no pipe taken.
  REQUIRE(pool_stats().pipes_taken == before.pipes_taken);
  REQUIRE(pool_stats().buffers_in_use == before.buffers_in_use);

  // 1 MiB each way fills the scratch space: the rest of each burst goes through a pipe.
  std::string big(1u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  exchange_big(f.ioc, f.user, f.backend, big);
  exchange_big(f.ioc, f.backend, f.user, big);
  REQUIRE(pool_stats().pipes_taken > before.pipes_taken);
  // Both directions went back to waiting: their pipes are in the pool, not with the relay.
  REQUIRE(run_until(f.ioc, [&] { return pool_stats().pipes_in_use == before.pipes_in_use; }));
  REQUIRE_FALSE(f.ended);
  const auto idle = pool_stats();
  // Bursts one after the other needed at most one pipe at a time (the second direction reuses the first's).
  REQUIRE(idle.pipes_opened - before.pipes_opened <= 1);

  // A second relay on this thread reuses the idle pipe too.
  tcp_flow g;
  g.start(true);
  exchange_big(g.ioc, g.user, g.backend, big);
  REQUIRE(pool_stats().pipes_opened == idle.pipes_opened);
  REQUIRE(pool_stats().pipes_taken > idle.pipes_taken);

  f.user.shutdown(tcp::socket::shutdown_send);
  f.backend.shutdown(tcp::socket::shutdown_send);
  REQUIRE(run_until(f.ioc, [&] { return f.ended.has_value(); }));
  REQUIRE_FALSE(*f.ended);
  REQUIRE(f.stats.spliced);
  REQUIRE(f.stats.bytes_client_to_backend == 18 + big.size());
  REQUIRE(f.stats.bytes_backend_to_client == 18 + big.size());
}

TEST_CASE("relay: an idle buffered connection between sockets holds no buffer", "[net][relay_pool]") {
  const auto before = pool_stats();
  tcp_flow f;
  f.start(false);
  for (int i = 0; i < 3; ++i) {
    exchange(f.ioc, f.user, f.backend, "ping " + std::to_string(i));
    exchange(f.ioc, f.backend, f.user, "pong " + std::to_string(i));
  }
  REQUIRE(run_until(f.ioc, [&] { return pool_stats().buffers_in_use == before.buffers_in_use; }));
  REQUIRE_FALSE(f.ended);
  REQUIRE(pool_stats().pipes_opened == before.pipes_opened);  // no splice asked for
  f.user.shutdown(tcp::socket::shutdown_send);
  f.backend.shutdown(tcp::socket::shutdown_send);
  REQUIRE(run_until(f.ioc, [&] { return f.ended.has_value(); }));
  REQUIRE_FALSE(*f.ended);
  REQUIRE_FALSE(f.stats.spliced);
  REQUIRE(f.stats.bytes_backend_to_client == 18);
}

TEST_CASE("relay: a pipe with bytes in it stays with its connection until drained", "[net][relay_pool]") {
  if (!net::splice_available) return;
  const auto before = pool_stats();
  tcp_flow f;
  f.start(true);
  // The backend reads nothing: the socket buffers fill, then the pipe holds what it could not
  // pass on. 32 MiB is more than loopback's socket buffers and the pipe can take together.
  const std::string big(32u << 20, 'x');
  bool written = false;
  asio::async_write(f.user, asio::buffer(big), [&](std::error_code ec, std::size_t) {
    REQUIRE_FALSE(ec);
    written = true;
  });
  // Quiescent (nothing runnable, no event pending) with the user's write still stuck.
  REQUIRE(run_until(f.ioc, [&] { return f.ioc.poll() == 0 && !written; }));
  REQUIRE(pool_stats().pipes_in_use == before.pipes_in_use + 1);

  std::string got;
  got.reserve(big.size());
  bool read_all = false;
  std::vector<char> chunk(1 << 20);
  std::function<void()> read_more = [&] {
    f.backend.async_read_some(asio::buffer(chunk), [&](std::error_code ec, std::size_t n) {
      REQUIRE_FALSE(ec);
      got.append(chunk.data(), n);
      if (got.size() == big.size()) read_all = true;
      else read_more();
    });
  };
  read_more();
  REQUIRE(run_until(f.ioc, [&] { return read_all && written; }));
  REQUIRE(got == big);
  REQUIRE(run_until(f.ioc, [&] { return pool_stats().pipes_in_use == before.pipes_in_use; }));
  REQUIRE_FALSE(f.ended);
}
