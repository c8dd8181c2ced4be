#include <rproxy/net/connector.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"
#include "skip.hpp"

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace net = rproxy::net;

using rproxy::test::run_until;

struct outcome {
  std::optional<std::error_code> ec;
  tcp::socket socket;
  explicit outcome(asio::io_context& ioc) : socket(ioc) {}
  auto handler() {
    return [this](std::error_code e, tcp::socket s) {
      ec = e;
      socket = std::move(s);
    };
  }
};

/// A port on `addr` where nothing listens (bound once, then released).
std::uint16_t closed_port(asio::io_context& ioc, const asio::ip::address& addr) {
  tcp::acceptor a(ioc, {addr, 0});
  return a.local_endpoint().port();
}

bool has_ipv6_loopback(asio::io_context& ioc) {
  std::error_code ec;
  tcp::acceptor a(ioc);
  a.open(tcp::v6(), ec);
  if (!ec) a.bind({asio::ip::address_v6::loopback(), 0}, ec);
  return !ec;
}

}  // namespace

TEST_CASE("connector: connects to an IPv4 address", "[net][connector]") {
  asio::io_context ioc;
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  outcome o(ioc);
  net::async_connect(ioc.get_executor(), "127.0.0.1", acc.local_endpoint().port(), 5s, o.handler());
  REQUIRE_FALSE(o.ec);  // never completes inside the initiating call
  REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
  REQUIRE_FALSE(*o.ec);
  REQUIRE(o.socket.is_open());
  REQUIRE(o.socket.remote_endpoint() == acc.local_endpoint());
  tcp::no_delay nd;
  o.socket.get_option(nd);
  REQUIRE(nd.value());
  auto peer = acc.accept();
  REQUIRE(peer.remote_endpoint() == o.socket.local_endpoint());
}

TEST_CASE("connector: connects to ::1", "[net][connector]") {
  asio::io_context ioc;
  if (!has_ipv6_loopback(ioc)) RPROXY_SKIP_MISSING("no IPv6 loopback here");
  tcp::acceptor acc(ioc, tcp::v6());
  acc.set_option(asio::ip::v6_only(true));
  acc.bind({asio::ip::address_v6::loopback(), 0});
  acc.listen();
  outcome o(ioc);
  net::async_connect(ioc.get_executor(), "::1", acc.local_endpoint().port(), 5s, o.handler());
  REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
  REQUIRE_FALSE(*o.ec);
  REQUIRE(o.socket.remote_endpoint().address().is_v6());
}

TEST_CASE("connector: a name resolves and each endpoint is tried in turn", "[net][connector]") {
  asio::io_context ioc;
  // "localhost" comes from /etc/hosts (no DNS); whatever families it maps to, the IPv4 one
  // listens, so the connect succeeds even if an IPv6 address is tried (and refused) first.
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  outcome o(ioc);
  net::async_connect(ioc.get_executor(), "localhost", acc.local_endpoint().port(), 5s, o.handler());
  REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
  REQUIRE_FALSE(*o.ec);
  REQUIRE(o.socket.remote_endpoint() == acc.local_endpoint());
}

TEST_CASE("connector: a refused port is an upstream, retry-safe error", "[net][connector]") {
  asio::io_context ioc;
  outcome o(ioc);
  const auto port = closed_port(ioc, asio::ip::address_v4::loopback());
  // (asserted inside each section: -w NoAssertions counts a section's own assertions)
  auto check_refused = [&] {
    REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
    REQUIRE(*o.ec == net::error::connect_refused);
    REQUIRE(*o.ec == rproxy::condition::upstream);
    REQUIRE(*o.ec == rproxy::condition::retry_safe);
    REQUIRE(*o.ec != rproxy::condition::downstream);
    REQUIRE_FALSE(o.socket.is_open());
  };
  SECTION("by address") {
    net::async_connect(ioc.get_executor(), "127.0.0.1", port, 5s, o.handler());
    check_refused();
  }
  SECTION("by endpoint") {
    net::async_connect(ioc.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), port), 5s,
                       o.handler());
    check_refused();
  }
}

TEST_CASE("connector: an endpoint that never answers times out", "[net][connector]") {
  asio::io_context ioc;
  // A listener with a full accept queue drops further SYNs: connects to it hang, on loopback.
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  acc.listen(0);
  const auto ep = acc.local_endpoint();
  std::vector<std::unique_ptr<tcp::socket>> fillers;
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<tcp::socket>(ioc, tcp::v4());
    s->async_connect(ep, [](std::error_code) {});
    fillers.push_back(std::move(s));
  }
  ioc.poll();
  outcome o(ioc);
  net::async_connect(ioc.get_executor(), ep, 200ms, o.handler());
  REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
  REQUIRE(*o.ec == net::error::connect_timeout);
  REQUIRE(*o.ec == rproxy::condition::upstream);
  REQUIRE(*o.ec == rproxy::condition::retry_safe);
  REQUIRE_FALSE(o.socket.is_open());
  for (auto& s : fillers) s->close();
  ioc.poll();
}

TEST_CASE("connector: a connect on a strand times out on its own timer", "[net][connector]") {
  asio::io_context ioc;
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  acc.listen(0);
  const auto ep = acc.local_endpoint();
  std::vector<std::unique_ptr<tcp::socket>> fillers;
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<tcp::socket>(ioc, tcp::v4());
    s->async_connect(ep, [](std::error_code) {});
    fillers.push_back(std::move(s));
  }
  ioc.poll();
  outcome o(ioc);
  net::async_connect(asio::make_strand(ioc), ep, 200ms, o.handler());
  REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
  REQUIRE(*o.ec == net::error::connect_timeout);
  REQUIRE_FALSE(o.socket.is_open());
  for (auto& s : fillers) s->close();
  ioc.poll();
}

TEST_CASE("connector: a connect that is done leaves no deadline behind", "[net][connector]") {
  // The deadline is an entry of the io_context's idle sweep: once the connect completes (either
  // way) the entry is gone, so the io_context runs out of work instead of waiting for it.
  asio::io_context ioc;
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  outcome ok(ioc), refused(ioc);
  net::async_connect(ioc.get_executor(), acc.local_endpoint(), 60s, ok.handler());
  tcp::acceptor closed(ioc, {asio::ip::address_v4::loopback(), 0});
  const auto gone = closed.local_endpoint();
  closed.close();
  net::async_connect(ioc.get_executor(), gone, 60s, refused.handler());
  ioc.run_for(20s);  // (returns as soon as nothing is left to do)
  REQUIRE(ioc.stopped());
  REQUIRE(ok.ec.has_value());
  REQUIRE_FALSE(*ok.ec);
  REQUIRE(refused.ec.has_value());
  REQUIRE(*refused.ec == net::error::connect_refused);
  REQUIRE(asio::use_service<net::idle_sweep>(ioc).size() == 0);
}

TEST_CASE("connector: works with coroutines and per-operation cancellation", "[net][connector]") {
  asio::io_context ioc;
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  const auto port = acc.local_endpoint().port();
  bool done = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto [ec, s] = co_await net::async_connect(ex, "127.0.0.1", port, 5s,
                                                   asio::experimental::as_tuple(asio::use_awaitable));
        CHECK_FALSE(ec);
        CHECK(s.is_open());
        done = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  REQUIRE(run_until(ioc, [&] { return done; }));

  // Cancelled while it waits on a connect that cannot complete.
  acc.listen(0);
  std::vector<std::unique_ptr<tcp::socket>> fillers;
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<tcp::socket>(ioc, tcp::v4());
    s->async_connect(acc.local_endpoint(), [](std::error_code) {});
    fillers.push_back(std::move(s));
  }
  asio::cancellation_signal sig;
  outcome o(ioc);
  net::async_connect(ioc.get_executor(), acc.local_endpoint(), 10s,
                     asio::bind_cancellation_slot(sig.slot(), o.handler()));
  ioc.restart();
  ioc.poll();  // the connect is in flight
  REQUIRE_FALSE(o.ec);
  sig.emit(asio::cancellation_type::terminal);
  REQUIRE(run_until(ioc, [&] { return o.ec.has_value(); }));
  REQUIRE(*o.ec == asio::error::operation_aborted);
  for (auto& s : fillers) s->close();
  ioc.poll();
}

TEST_CASE("connect: out of local descriptors or memory is internal, not the backend's failure", "[net][connect]") {
  for (int e : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) {
    const auto ec = rproxy::net::classify_connect(std::error_code(e, asio::error::get_system_category()));
    CHECK(ec == rproxy::net::error::connect_exhausted);
    CHECK(ec == rproxy::condition::internal);
    CHECK_FALSE(ec == rproxy::condition::upstream);  // a balancer does not eject the backend
    CHECK_FALSE(ec == rproxy::condition::retry_safe);
  }
  CHECK(rproxy::net::classify_connect(std::error_code(ECONNREFUSED, asio::error::get_system_category())) ==
        rproxy::condition::upstream);
}
