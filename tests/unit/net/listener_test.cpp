#include <rproxy/net/listener.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"
#include "skip.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace net = rproxy::net;

using rproxy::test::run_until;

/// Waits (bounded) for a condition that other threads make true.
template <class Pred>
bool wait_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
  return done();
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool under_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool under_sanitizer = true;
#else
constexpr bool under_sanitizer = false;
#endif
#else
constexpr bool under_sanitizer = false;
#endif

const tcp::endpoint any_v4{asio::ip::address_v4::loopback(), 0};

/// Keeps accepted sockets (single-threaded use).
struct keep {
  std::vector<tcp::socket>* sockets;
  void operator()(tcp::socket s) const { sockets->push_back(std::move(s)); }
};

std::error_code try_connect(asio::io_context& ioc, const tcp::endpoint& ep) {
  tcp::socket s(ioc);
  std::error_code ec;
  s.connect(ep, ec);
  return ec;
}

/// Restores RLIMIT_NOFILE when the test leaves, whatever happens.
struct nofile_guard {
  rlimit saved{};
  nofile_guard() { ::getrlimit(RLIMIT_NOFILE, &saved); }
  ~nofile_guard() { restore(); }
  void restore() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

}  // namespace

TEST_CASE("listener: two workers with SO_REUSEPORT both accept on one port", "[net][listener]") {
  net::io_pool pool{2};
  struct counters {
    std::atomic<int> total{0}, off_thread{0}, no_nodelay{0};
  } c;
  auto l = net::listen(pool, any_v4, [&c](tcp::socket s) {
    const auto exec = s.get_executor();
    const auto* ex = exec.target<asio::io_context::executor_type>();
    if (!ex || !ex->running_in_this_thread()) ++c.off_thread;  // on its worker's thread
    tcp::no_delay nd;
    s.get_option(nd);
    if (!nd.value()) ++c.no_nodelay;
    ++c.total;
  });
  REQUIRE(l);
  REQUIRE(l->local_endpoint().port() != 0);
  pool.start();

  // The kernel hashes connections over the two acceptors; connect until both got some.
  asio::io_context client;
  int sent = 0;
  while (sent < 512 && (l->accepted(0) == 0 || l->accepted(1) == 0)) {
    for (int i = 0; i < 16; ++i, ++sent) REQUIRE_FALSE(try_connect(client, l->local_endpoint()));
    REQUIRE(wait_until([&] { return c.total == sent; }));
  }
  REQUIRE(l->accepted(0) > 0);
  REQUIRE(l->accepted(1) > 0);
  REQUIRE(l->stats().accepted == static_cast<std::uint64_t>(sent));
  REQUIRE(c.off_thread == 0);
  REQUIRE(c.no_nodelay == 0);
  pool.stop();
  pool.join();
}

TEST_CASE("listener: \"::\" listens IPv6-only", "[net][listener]") {
  asio::io_context ioc;
  std::vector<tcp::socket> accepted;
  auto l = net::listen(ioc, {asio::ip::address_v6::any(), 0}, keep{&accepted});
  if (!l) RPROXY_SKIP_MISSING("no IPv6 here: " << l.error().message());
  const auto port = l->local_endpoint().port();
  REQUIRE_FALSE(try_connect(ioc, {asio::ip::address_v6::loopback(), port}));
  REQUIRE(run_until(ioc, [&] { return accepted.size() == 1; }));
  // v6only: the IPv4 side of the port is not ours.
  REQUIRE(try_connect(ioc, {asio::ip::address_v4::loopback(), port}) ==
          asio::error::connection_refused);
}

TEST_CASE("listener: a bind failure is reported, not thrown", "[net][listener]") {
  asio::io_context ioc;
  tcp::acceptor taken(ioc, any_v4);  // no SO_REUSEPORT: the port is not shared
  std::vector<tcp::socket> accepted;
  auto l = net::listen(ioc, taken.local_endpoint(), keep{&accepted});
  REQUIRE_FALSE(l);
  REQUIRE(l.error() == asio::error::address_in_use);
}

TEST_CASE("listener: close() stops accepting, accepted flows go on", "[net][listener]") {
  asio::io_context ioc;
  std::vector<tcp::socket> accepted;
  net::listener_options o;
  o.backlog = 16;
  auto l = net::listen(ioc, any_v4, keep{&accepted}, o);
  REQUIRE(l);
  const auto ep = l->local_endpoint();
  tcp::socket client(ioc);
  client.connect(ep);
  REQUIRE(run_until(ioc, [&] { return accepted.size() == 1; }));

  l->close();
  REQUIRE_FALSE(l->is_open());
  ioc.restart();
  ioc.poll();  // the close runs on the worker
  REQUIRE(try_connect(ioc, ep) == asio::error::connection_refused);

  asio::write(accepted[0], asio::buffer("still here", 10));
  char buf[10];
  asio::read(client, asio::buffer(buf));
  REQUIRE(std::string(buf, 10) == "still here");
  REQUIRE(l->stats().accepted == 1);
}

TEST_CASE("listener: out of descriptors, accept backs off and recovers", "[net][listener]") {
  if (under_sanitizer) {
    // The sanitizer runtimes need descriptors of their own (a pipe to probe memory) and report
    // false errors when there are none; the plain build runs this test.
    WARN("skipped under a sanitizer: the runtime cannot work without free descriptors");
    SUCCEED("the plain build runs this test");
    return;
  }
  asio::io_context ioc;
  std::vector<tcp::socket> accepted;
  net::listener_options o;
  o.backoff_min = 2ms;
  o.backoff_max = 20ms;
  auto l = net::listen(ioc, any_v4, keep{&accepted}, o);
  REQUIRE(l);
  ioc.poll();  // the accept is pending
  tcp::socket client(ioc, tcp::v4());  // its descriptor exists before the limit drops
  const auto exhausted_before = net::fd_exhaustion::global().count();

  {
    nofile_guard guard;
    // Allow no new descriptor: every number below the lowest free one is taken.
    const int lowest_free = ::dup(0);
    REQUIRE(lowest_free >= 0);
    ::close(lowest_free);
    rlimit low = guard.saved;
    low.rlim_cur = static_cast<rlim_t>(lowest_free);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);

    client.connect(l->local_endpoint());  // completes in the kernel's accept queue
    const bool backed_off = run_until(ioc, [&] { return l->stats().exhausted >= 3; });
    const auto accepted_while_low = accepted.size();
    guard.restore();
    REQUIRE(backed_off);  // it hit EMFILE and retried, several times, without dying
    REQUIRE(accepted_while_low == 0);
    // Counted process-wide too (what /metrics shows as rproxy_accept_exhausted_total).
    REQUIRE(net::fd_exhaustion::global().count() - exhausted_before >= 3);
  }

  // Descriptors are back: the pending connection is accepted on a later retry.
  REQUIRE(run_until(ioc, [&] { return accepted.size() == 1; }));
  REQUIRE(accepted[0].remote_endpoint() == client.local_endpoint());
  REQUIRE(l->is_open());
  // And the loop goes on as usual afterwards.
  REQUIRE_FALSE(try_connect(ioc, l->local_endpoint()));
  REQUIRE(run_until(ioc, [&] { return accepted.size() == 2; }));
  REQUIRE(l->stats().accepted == 2);
}

TEST_CASE("listener: a handler may take the accepted endpoints, from accept and the bind", "[net][listener]") {
  asio::io_context ioc;
  struct got {
    std::vector<tcp::socket> sockets;
    std::vector<net::accepted_endpoints> eps;
  } g;
  auto handler = [&g](tcp::socket s, const net::accepted_endpoints& e) {
    g.sockets.push_back(std::move(s));
    g.eps.push_back(e);
  };
  for (const char* addr : {"127.0.0.1", "0.0.0.0"}) {  // a wildcard bind asks the socket
    g = {};
    auto l = net::listen(ioc, tcp::endpoint(asio::ip::make_address(addr), 0), handler);
    REQUIRE(l);
    tcp::socket client(ioc);
    client.connect({asio::ip::address_v4::loopback(), l->local_endpoint().port()});
    REQUIRE(run_until(ioc, [&] { return g.eps.size() == 1; }));
    CHECK(g.eps[0].remote == client.local_endpoint());
    CHECK(g.eps[0].local == client.remote_endpoint());
    CHECK(g.eps[0].remote == g.sockets[0].remote_endpoint());
    CHECK(g.eps[0].local == g.sockets[0].local_endpoint());
  }
}
