// rproxy/flow/ws_connection.hpp and ws_hub.hpp: the bounded send queue under each slow-consumer
// policy, gathered writes read back by the codec's client-side parser, shared payloads, and
// delivery across workers through the hub.
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/config/decode.hpp>
#include <rproxy/flow/ws_block.hpp>
#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/flow/ws_hub.hpp>

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "run_until.hpp"

namespace {

using asio::ip::tcp;
namespace ws = rproxy::codec::ws;
using rproxy::flow::ws_connection;
using rproxy::flow::ws_send_limits;
using rproxy::flow::slow_consumer;

/// A connected loopback pair: `server` (the connection's side) and `client`.
struct socket_pair {
  explicit socket_pair(asio::io_context& ioc) : server(ioc), client(ioc) {
    tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
    client.connect(acc.local_endpoint());
    acc.accept(server);
  }
  tcp::socket server, client;
};

/// Reads what the client got until the server side closes, parsed as a client would.
std::vector<ws::received_item> drain_client(asio::io_context& ioc, tcp::socket& client, std::size_t want_items) {
  ws::collector c({.side = ws::role::client});
  std::array<char, 65536> buf;
  bool done = false;
  std::function<void()> read = [&] {
    client.async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
      if (ec) {
        done = true;
        return;
      }
      c.feed(std::string_view(buf.data(), n));
      if (c.received.size() >= want_items) done = true;
      else read();
    });
  };
  read();
  REQUIRE(rproxy::test::run_until(ioc, [&] { return done; }));
  return c.received;
}

std::vector<std::string> texts(const std::vector<ws::received_item>& items) {
  std::vector<std::string> out;
  for (const auto& i : items)
    if (i.what == ws::event::data) out.push_back(i.data);
  return out;
}

void start_writer(asio::io_context& ioc, ws_connection& c, asio::ip::tcp::socket& s) {
  asio::co_spawn(ioc, [&c, &s]() -> asio::awaitable<void> { (void)co_await c.run_writer(s); }, asio::detached);
}

}  // namespace

TEST_CASE("queued frames go out in order, read back as text messages", "[flow][ws]") {
  asio::io_context ioc;
  socket_pair sp(ioc);
  ws_send_limits lim;
  ws_connection c(lim);
  REQUIRE(c.send_text("one"));
  REQUIRE(c.send_text(std::string(300, 'x')));  // a 16-bit length
  REQUIRE(c.send_text(std::string(70000, 'y')));  // a 64-bit length
  start_writer(ioc, c, sp.server);
  auto got = texts(drain_client(ioc, sp.client, 3));
  REQUIRE(got == std::vector<std::string>{"one", std::string(300, 'x'), std::string(70000, 'y')});
  c.stop();
}

TEST_CASE("drop_newest keeps what was queued and refuses the new frame", "[flow][ws]") {
  asio::io_context ioc;
  socket_pair sp(ioc);
  std::atomic<std::uint64_t> dropped{0};
  ws_send_limits lim{.max_queue_messages = 2, .policy = slow_consumer::drop_newest};
  const rproxy::flow::ws_send_stats st{.dropped_newest = &dropped};
  ws_connection c(lim, &st);
  REQUIRE(c.send_text("a"));
  REQUIRE(c.send_text("b"));
  REQUIRE_FALSE(c.send_text("c"));
  REQUIRE(dropped == 1);
  REQUIRE(c.queued() == 2);
  c.pong("p");  // control frames are not answered while the data queue is full
  REQUIRE(c.queued() == 2);
  start_writer(ioc, c, sp.server);
  REQUIRE(texts(drain_client(ioc, sp.client, 2)) == std::vector<std::string>{"a", "b"});
  c.stop();
}

TEST_CASE("drop_oldest drops the oldest queued frames to make room, by count and by bytes", "[flow][ws]") {
  asio::io_context ioc;
  socket_pair sp(ioc);
  std::atomic<std::uint64_t> dropped{0};
  ws_send_limits lim{.max_queue_messages = 3, .max_queue_bytes = 10, .policy = slow_consumer::drop_oldest};
  const rproxy::flow::ws_send_stats st{.dropped_oldest = &dropped};
  ws_connection c(lim, &st);
  REQUIRE(c.send_text("aa"));
  REQUIRE(c.send_text("bb"));
  REQUIRE(c.send_text("cc"));
  REQUIRE(c.send_text("dd"));  // over the count: "aa" goes
  REQUIRE(dropped == 1);
  REQUIRE(c.send_text("eeeeee"));  // 6 bytes: with "bb" gone, cc + dd + eeeeee = 10 fit
  REQUIRE(dropped == 2);
  REQUIRE(c.queued_bytes() == 10);
  REQUIRE_FALSE(c.send_text(std::string(11, 'z')));  // larger than the whole bound: only it is dropped
  REQUIRE(dropped == 3);
  REQUIRE(c.queued() == 3);
  start_writer(ioc, c, sp.server);
  REQUIRE(texts(drain_client(ioc, sp.client, 3)) == std::vector<std::string>{"cc", "dd", "eeeeee"});
  c.stop();
}

TEST_CASE("close policy: the queue is dropped and the client gets close 1013", "[flow][ws]") {
  asio::io_context ioc;
  socket_pair sp(ioc);
  std::atomic<std::uint64_t> closed{0};
  ws_send_limits lim{.max_queue_messages = 2, .policy = slow_consumer::close, .close_timeout = std::chrono::milliseconds(50)};
  const rproxy::flow::ws_send_stats st{.closed_slow = &closed};
  ws_connection c(lim, &st);
  REQUIRE(c.send_text("a"));
  REQUIRE(c.send_text("b"));
  REQUIRE_FALSE(c.send_text("c"));
  REQUIRE(closed == 1);
  REQUIRE(c.closing());
  REQUIRE(c.close_code() == ws::close_code::try_again_later);
  REQUIRE_FALSE(c.send_text("d"));  // nothing more after the close
  start_writer(ioc, c, sp.server);
  // The peer never answers: the close timeout ends the connection, the client sees its EOF.
  auto got = drain_client(ioc, sp.client, 99);
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].what == ws::event::close);
  REQUIRE(got[0].code == 1013);
}

TEST_CASE("the queue holds memory only while frames wait", "[flow][ws]") {
  asio::io_context ioc;
  socket_pair sp(ioc);
  ws_send_limits lim;
  ws_connection c(lim);
  REQUIRE_FALSE(c.holds_memory());
  REQUIRE(c.send_text("one"));
  REQUIRE(c.send_text("two"));
  REQUIRE(c.holds_memory());
  std::error_code ec;
  REQUIRE(c.flush(sp.server, ec) == ws_connection::write_state::idle);  // a few bytes: the socket takes them at once
  REQUIRE_FALSE(ec);
  REQUIRE(c.queued() == 0);
  REQUIRE_FALSE(c.holds_memory());  // written: the block is given back
  REQUIRE(texts(drain_client(ioc, sp.client, 2)) == std::vector<std::string>{"one", "two"});
  REQUIRE(c.send_text("three"));  // a new block for the next frames
  REQUIRE(c.flush(sp.server, ec) == ws_connection::write_state::idle);
  REQUIRE_FALSE(c.holds_memory());
  REQUIRE(texts(drain_client(ioc, sp.client, 1)) == std::vector<std::string>{"three"});
}

TEST_CASE("drop_oldest with a bound of no messages refuses every frame, with nothing queued to drop", "[flow][ws]") {
  std::atomic<std::uint64_t> dropped{0};
  ws_send_limits lim{.max_queue_messages = 0, .policy = slow_consumer::drop_oldest};
  const rproxy::flow::ws_send_stats st{.dropped_oldest = &dropped};
  ws_connection c(lim, &st);
  REQUIRE_FALSE(c.send_text("a"));
  REQUIRE(dropped == 1);
  REQUIRE(c.queued() == 0);
  REQUIRE_FALSE(c.holds_memory());
}

TEST_CASE("a shared payload is queued by reference, not copied", "[flow][ws]") {
  ws_send_limits lim;
  ws_connection ca(lim), cb(lim);
  auto p = rproxy::flow::make_ws_payload("{\"type\":\"message\"}");
  REQUIRE(ca.send(p));
  REQUIRE(cb.send(p));
  REQUIRE(p.use_count() == 3);
}

TEST_CASE("the hub delivers on the caller's worker at once and posts to the others", "[flow][ws]") {
  asio::io_context w0, w1;
  rproxy::flow::ws_hub hub({w0.get_executor(), w1.get_executor()});
  ws_send_limits lim;
  ws_connection c0(lim), c1(lim), c2(lim);
  const auto id0 = hub.attach(0, c0), id1 = hub.attach(1, c1), id2 = hub.attach(0, c2);
  REQUIRE(rproxy::flow::ws_hub::worker_of(id1) == 1);
  REQUIRE(id0 != id2);
  hub.detach(id2);  // gone before the delivery: skipped
  auto frame = rproxy::flow::make_ws_payload("hi");
  auto to = std::make_shared<const std::vector<std::uint64_t>>(std::vector<std::uint64_t>{id0, id1, id2});
  hub.deliver(0, frame, to);
  REQUIRE(c0.queued() == 1);
  REQUIRE(c1.queued() == 0);  // posted to worker 1
  REQUIRE(c2.queued() == 0);
  REQUIRE(rproxy::test::run_until(w1, [&] { return c1.queued() == 1; }));
  hub.close_all(1001, "bye");
  REQUIRE(rproxy::test::run_until(w0, [&] { return c0.closing(); }));
  REQUIRE(rproxy::test::run_until(w1, [&] { return c1.closing(); }));
  REQUIRE(c0.close_code() == 1001);
  // A connection attached after close_all (an upgrade racing the shutdown) is closed at once.
  ws_connection c3(lim);
  hub.attach(0, c3);
  REQUIRE(c3.closing());
  REQUIRE(c3.close_code() == 1001);
}

TEST_CASE("the hub reuses a gone connection's slot; its old id finds nothing", "[flow][ws]") {
  asio::io_context w0;
  rproxy::flow::ws_hub hub({w0.get_executor()});
  ws_send_limits lim;
  ws_connection c0(lim), c1(lim), c2(lim);
  const auto id0 = hub.attach(0, c0), id1 = hub.attach(0, c1);
  REQUIRE(hub.connections(0) == 2);
  REQUIRE(hub.find(0, id0) == &c0);
  REQUIRE(hub.find(0, id1) == &c1);
  hub.detach(id0);
  REQUIRE(hub.connections(0) == 1);
  REQUIRE(hub.find(0, id0) == nullptr);
  const auto id2 = hub.attach(0, c2);  // takes c0's slot
  REQUIRE((id2 & rproxy::flow::ws_hub::max_per_worker) == (id0 & rproxy::flow::ws_hub::max_per_worker));
  REQUIRE(id2 != id0);
  REQUIRE(hub.find(0, id0) == nullptr);  // a stale id (a room member gone) reaches no one
  REQUIRE(hub.find(0, id2) == &c2);
  hub.detach(id0);  // detaching a stale id changes nothing
  REQUIRE(hub.connections(0) == 2);
  REQUIRE(hub.find(0, id2) == &c2);
  auto to = std::make_shared<const std::vector<std::uint64_t>>(std::vector<std::uint64_t>{id0, id1, id2});
  hub.deliver(0, rproxy::flow::make_ws_payload("hi"), to);
  REQUIRE(c0.queued() == 0);
  REQUIRE(c1.queued() == 1);
  REQUIRE(c2.queued() == 1);
  hub.detach(id1);
  hub.detach(id2);
  REQUIRE(hub.connections(0) == 0);
}

TEST_CASE("ws send queue block: max_bytes is at most 1 GiB (the queue counts bytes in 32 bits)", "[flow][ws][config]") {
  auto ok = rproxy::config::decode<rproxy::flow::ws_send_queue_block>(YAML::Load("max_bytes: 1GiB\n"), "inline");
  REQUIRE(ok);
  CHECK(ok->max_bytes.bytes == rproxy::flow::max_queue_bytes_limit);
  auto big = rproxy::config::decode<rproxy::flow::ws_send_queue_block>(YAML::Load("max_bytes: 2GiB\n"), "inline");
  REQUIRE_FALSE(big);
  REQUIRE(big.error().size() == 1);
  CHECK(big.error()[0].to_string().find("must be at most 1GiB") != std::string::npos);
}
