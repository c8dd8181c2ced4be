// rproxy/flow/ws.hpp: the WebSocket adapter driven by flow::serve over loopback with raw bytes
// from the client side: the RFC 6455 §1.3 accept key, 426 and 400 answers, the page, a refusal
// at the upgrade, messages through on_message, ping/pong, the close handshake, frames sent with
// the upgrade request, and an oversized message (1009); the same through flow::spawn (the
// session takes the flow over), with an asynchronous on_message hook, and the idle deadlines
// (a ping, then close 1001, then the close timeout) on the io_context's sweep.
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/ws.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "run_until.hpp"

namespace {

using asio::ip::tcp;
namespace ws = rproxy::codec::ws;
namespace flow = rproxy::flow;
using proto = flow::ws_protocol<flow::ws_message>;

struct record {
  std::vector<std::string> messages;
  int closes = 0;
  int hellos_with_part = 0;      ///< on_hello saw ctx.hello
  int messages_with_part = 0;    ///< on_message saw ctx.hello (it must not: it is the upgrade's only)
};

/// Echoes each message upper-cased; refuses an upgrade whose target has "deny"; answers one
/// whose target has "teapot" itself (ctx.hello->reply).
struct echo_stage {
  record* r;
  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    if (ctx.hello != nullptr) ++r->hellos_with_part;
    if (req.target().find("deny") != std::string_view::npos) return rproxy::reject(rproxy::reject_code::unauthorized, "no");
    if (req.target().find("teapot") != std::string_view::npos) {
      ctx.hello->reply = "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      return rproxy::replied;
    }
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_message(Ctx& ctx, const flow::ws_message& m) {
    if (ctx.hello != nullptr) ++r->messages_with_part;
    r->messages.emplace_back(m.data);
    std::string up(m.data);
    for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    ctx.ws->send_text(std::move(up));
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    ++r->closes;
  }
};

/// The same echo from an asynchronous hook: each message waits on a timer first.
struct async_echo_stage {
  record* r;
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_message(Ctx& ctx, const flow::ws_message& m) {
    std::string text(m.data);  // (m views the connection's buffer: copied before the wait)
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
    r->messages.push_back(text);
    ctx.ws->send_text(text + "!");
    co_return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    ++r->closes;
  }
};

std::string client_frame(ws::opcode op, std::string_view payload) {
  std::string out;
  ws::append_frame(out, op, payload, {.fin = true, .rsv1 = false, .mask = ws::mask_key{1, 2, 3, 4}});
  return out;
}

std::string upgrade(std::string_view target = "/chat", std::string_view version = "13") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " + std::string(version) + "\r\n\r\n";
}

template <class Stage = echo_stage>
struct basic_fixture {
  asio::io_context ioc;
  flow::ws_hub hub{{ioc.get_executor()}};
  record rec;
  decltype(rproxy::make_pipeline<proto>(Stage{nullptr})) p = rproxy::make_pipeline<proto>(Stage{&rec});
  bool spawned = false;  ///< flow::spawn (the session takes the flow over) instead of flow::serve
  flow::options opt;
  flow::ws_adapter<> a{.hub = &hub};
  std::optional<std::error_code> result;
  std::string got;  ///< everything the client received

  basic_fixture() {
    opt.hello_timeout = std::chrono::seconds(5);
    a.frames.max_message_size = a.frames.max_frame_size = 1000;
    a.page = "<p>hi</p>";
  }

  /// Serves one connection; the client writes `bytes` and reads until the server closes.
  void exchange(const std::string& bytes, const std::vector<std::string>& later = {}) {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    tcp::socket server = front.accept();
    if (spawned) {
      flow::spawn(p, a, std::move(server), opt, std::nullopt, [this](std::error_code ec) {
        REQUIRE_FALSE(result.has_value());  // once
        result = ec;
      });
    } else {
      asio::co_spawn(ioc, flow::serve(p, a, std::move(server), opt), [this](std::exception_ptr e, std::error_code ec) {
        REQUIRE_FALSE(e);
        result = ec;
      });
    }
    asio::write(client, asio::buffer(bytes));
    std::array<char, 4096> buf;
    std::size_t next = 0;
    bool eof = false;
    std::function<void()> read = [&] {
      client.async_read_some(asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
        if (ec) {
          eof = true;
          return;
        }
        got.append(buf.data(), n);
        // Each later write goes once the 101 (and the answers so far) came.
        if (next < later.size() && got.find("\r\n\r\n") != std::string::npos) asio::write(client, asio::buffer(later[next++]));
        read();
      });
    };
    read();
    REQUIRE(rproxy::test::run_until(ioc, [&] { return eof && result.has_value(); }));
  }

  /// The frames after the 101 head, as a client parses them.
  std::vector<ws::received_item> frames() const {
    ws::collector c({.side = ws::role::client});
    c.feed(got.substr(got.find("\r\n\r\n") + 4));
    return c.received;
  }
};

using fixture = basic_fixture<>;

}  // namespace

TEST_CASE("upgrade: 101 with the RFC 6455 accept key; messages, ping and close", "[flow][ws]") {
  fixture f;
  // The frames come right behind the upgrade request, in the same write.
  f.exchange(upgrade() + client_frame(ws::opcode::text, "hello") + client_frame(ws::opcode::ping, "p1") +
             client_frame(ws::opcode::text, "again") + client_frame(ws::opcode::close, std::string("\x03\xe8", 2)));
  REQUIRE(f.got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
  REQUIRE(f.got.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);  // RFC 6455 §1.3
  auto fr = f.frames();
  REQUIRE(fr.size() == 4);
  CHECK((fr[0].what == ws::event::data && fr[0].data == "HELLO"));
  CHECK((fr[1].what == ws::event::pong && fr[1].data == "p1"));
  CHECK((fr[2].what == ws::event::data && fr[2].data == "AGAIN"));
  CHECK((fr[3].what == ws::event::close && fr[3].code == 1000));  // the close echoed
  REQUIRE(f.rec.messages == std::vector<std::string>{"hello", "again"});
  REQUIRE(f.rec.closes == 1);
}

TEST_CASE("a hub whose executor for the worker is not the socket's io_context: the flow ends before the upgrade", "[flow][ws]") {
  // The session's deadlines run on the hub's sweep for its worker: on another io_context they
  // would run on another thread.
  for (const bool spawned : {false, true}) {
    fixture f;
    f.spawned = spawned;
    asio::io_context other;
    flow::ws_hub wrong{{other.get_executor()}};
    f.a.hub = &wrong;
    f.exchange(upgrade());
    REQUIRE(*f.result == make_error_code(rproxy::net::error::flow_aborted));
    REQUIRE(f.got.find("101 Switching Protocols") == std::string::npos);
  }
}

TEST_CASE("upgrade: version 8 gets 426, a bad key 400; a plain GET / the page; others 426", "[flow][ws]") {
  {
    fixture f;
    f.exchange(upgrade("/chat", "8"));
    REQUIRE(f.got.starts_with("HTTP/1.1 426 "));
    REQUIRE(f.got.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
    REQUIRE(f.rec.closes == 1);
  }
  {
    fixture f;
    std::string bad = upgrade();
    bad.replace(bad.find("dGhlIHNhbXBsZSBub25jZQ=="), 24, "short");
    f.exchange(bad);
    REQUIRE(f.got.starts_with("HTTP/1.1 400 "));
  }
  {
    fixture f;
    f.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(f.got.starts_with("HTTP/1.1 200 OK\r\n"));
    REQUIRE(f.got.ends_with("<p>hi</p>"));
  }
  {
    fixture f;
    f.exchange("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(f.got.starts_with("HTTP/1.1 426 "));
  }
}

TEST_CASE("upgrade: a request bigger than the reader's first buffer upgrades; one past the limits gets 431", "[flow][ws]") {
  // The reader starts small (1 KiB) and grows up to the request limits (4 KiB start line + 8 KiB
  // of header here): a 6 KB cookie, with frames right behind it, and a 9 KB one.
  const auto with_cookie = [](std::size_t n) {
    std::string r = upgrade();
    r.insert(r.size() - 2, "Cookie: c=" + std::string(n, 'x') + "\r\n");
    return r;
  };
  {
    fixture f;
    f.exchange(with_cookie(6000) + client_frame(ws::opcode::text, "hello") + client_frame(ws::opcode::close, std::string("\x03\xe8", 2)));
    REQUIRE(f.got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    REQUIRE(f.got.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    REQUIRE(f.rec.messages == std::vector<std::string>{"hello"});
  }
  {
    fixture f;
    f.exchange(with_cookie(9000));
    REQUIRE(f.got.starts_with("HTTP/1.1 431 "));
    REQUIRE(f.rec.messages.empty());
  }
}

TEST_CASE("a refusal at the upgrade is an HTTP status; nothing reaches on_message", "[flow][ws]") {
  fixture f;
  f.exchange(upgrade("/deny") + client_frame(ws::opcode::text, "x"));
  REQUIRE(f.got.starts_with("HTTP/1.1 401 "));
  REQUIRE(f.rec.messages.empty());
  REQUIRE(f.rec.closes == 1);
}

TEST_CASE("a stage answers the upgrade itself: `replied` with ctx.hello->reply", "[flow][ws]") {
  for (const bool spawned : {false, true}) {
    fixture f;
    f.spawned = spawned;
    f.exchange(upgrade("/teapot") + client_frame(ws::opcode::text, "x"));
    REQUIRE(f.got == "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    CHECK(f.rec.hellos_with_part == 1);
    CHECK(f.rec.messages.empty());
    CHECK(f.rec.closes == 1);
  }
}

TEST_CASE("protocol errors close with the codec's code: 1009 oversized, 1002 unmasked", "[flow][ws]") {
  {
    fixture f;
    f.exchange(upgrade() + client_frame(ws::opcode::text, std::string(1001, 'x')));
    auto fr = f.frames();
    REQUIRE(fr.size() == 1);
    REQUIRE((fr[0].what == ws::event::close && fr[0].code == 1009));
    REQUIRE(f.rec.messages.empty());
  }
  {
    fixture f;
    f.exchange(upgrade() + std::string("\x81\x02hi", 4));
    auto fr = f.frames();
    REQUIRE(fr.size() == 1);
    REQUIRE((fr[0].what == ws::event::close && fr[0].code == 1002));
  }
}

TEST_CASE("a fragmented message with a ping between its fragments is one message", "[flow][ws]") {
  fixture f;
  std::string frag;
  ws::append_frame(frag, ws::opcode::text, "frag", {.fin = false, .rsv1 = false, .mask = ws::mask_key{9, 8, 7, 6}});
  frag += client_frame(ws::opcode::ping, "");
  ws::append_frame(frag, ws::opcode::continuation, "ment", {.fin = true, .rsv1 = false, .mask = ws::mask_key{5, 4, 3, 2}});
  f.exchange(upgrade() + frag + client_frame(ws::opcode::close, std::string("\x03\xe8", 2)));
  REQUIRE(f.rec.messages == std::vector<std::string>{"fragment"});
  auto fr = f.frames();
  REQUIRE(fr.size() == 3);
  CHECK(fr[0].what == ws::event::pong);
  CHECK(fr[1].data == "FRAGMENT");
}

TEST_CASE("a spawned flow: the session takes the flow over; on_close and done run once", "[flow][ws]") {
  fixture f;
  f.spawned = true;
  f.exchange(upgrade() + client_frame(ws::opcode::text, "one") + client_frame(ws::opcode::ping, "p") +
             client_frame(ws::opcode::text, "two") + client_frame(ws::opcode::close, std::string("\x03\xe8", 2)));
  REQUIRE(f.got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
  auto fr = f.frames();
  REQUIRE(fr.size() == 4);
  CHECK((fr[0].what == ws::event::data && fr[0].data == "ONE"));
  CHECK((fr[1].what == ws::event::pong && fr[1].data == "p"));
  CHECK((fr[2].what == ws::event::data && fr[2].data == "TWO"));
  CHECK((fr[3].what == ws::event::close && fr[3].code == 1000));
  REQUIRE(f.rec.closes == 1);
  REQUIRE(f.hub.connections(0) == 0);  // detached
  CHECK(f.rec.hellos_with_part == 1);
  CHECK(f.rec.messages_with_part == 0);  // the upgrade's part is gone with the upgrade
}

TEST_CASE("an idle spawned session when its io_context goes: freed with its flow, no on_close", "[flow][ws]") {
  // The session waits in the worker's poller (net/poller.hpp), which holds no asio operation:
  // the poller lets it go when the io_context shuts down. Its `done` handler, which holds
  // `token`, is freed with it (under ASan a leak would also be reported).
  record rec;
  auto token = std::make_shared<int>(0);
  {
    asio::io_context ioc;
    flow::ws_hub hub{{ioc.get_executor()}};
    auto p = rproxy::make_pipeline<proto>(echo_stage{&rec});
    flow::options opt;
    opt.hello_timeout = std::chrono::seconds(5);
    flow::ws_adapter<> a{.hub = &hub};
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    flow::spawn(p, a, front.accept(), opt, std::nullopt, [t = token](std::error_code) { ++*t; });
    asio::write(client, asio::buffer(upgrade() + client_frame(ws::opcode::text, "one")));
    REQUIRE(rproxy::test::run_until(ioc, [&] { return rec.messages.size() == 1 && hub.connections(0) == 1; }));
    ioc.poll();  // (the reply written; the session waits for more)
    CHECK(token.use_count() == 2);  // held by the session
  }
  CHECK(token.use_count() == 1);
  CHECK(*token == 0);  // done did not run
  CHECK(rec.closes == 0);
}

TEST_CASE("an asynchronous on_message hook: messages in order, reading resumes after each", "[flow][ws]") {
  for (bool spawned : {false, true}) {
    basic_fixture<async_echo_stage> f;
    f.spawned = spawned;
    // A message split across two writes (the rest goes once the 101 has come back).
    const std::string third = client_frame(ws::opcode::text, "three");
    f.exchange(upgrade() + client_frame(ws::opcode::text, "one") + client_frame(ws::opcode::text, "two") + third.substr(0, 3),
               {third.substr(3) + client_frame(ws::opcode::close, std::string("\x03\xe8", 2))});
    REQUIRE(f.rec.messages == std::vector<std::string>{"one", "two", "three"});
    auto fr = f.frames();
    REQUIRE(fr.size() == 4);
    CHECK(fr[0].data == "one!");
    CHECK(fr[1].data == "two!");
    CHECK(fr[2].data == "three!");
    CHECK((fr[3].what == ws::event::close && fr[3].code == 1000));
    REQUIRE(f.rec.closes == 1);
  }
}

TEST_CASE("idle: a ping after idle_timeout, close 1001 after another, then the close timeout ends it", "[flow][ws]") {
  for (bool spawned : {false, true}) {
    fixture f;
    f.spawned = spawned;
    f.a.idle_timeout = std::chrono::milliseconds(40);
    f.a.send.close_timeout = std::chrono::milliseconds(40);
    f.exchange(upgrade());  // then silence: no pong, no close
    auto fr = f.frames();
    REQUIRE(fr.size() == 2);
    CHECK(fr[0].what == ws::event::ping);
    CHECK((fr[1].what == ws::event::close && fr[1].code == 1001));
    REQUIRE(f.rec.closes == 1);
  }
}

TEST_CASE("stats: a connection that sends nothing is silent, not a handshake failure", "[flow][ws]") {
  // (bytes the client sends before it ends its side, silent, handshake failures)
  const auto [bytes, silent, failed] = GENERATE(table<std::string, std::uint64_t, std::uint64_t>({
      {"", 1, 0},                                // a port probe: connect, then EOF
      {"GET /chat HT", 0, 1},                    // a cut upgrade request
      {upgrade("/chat", "8"), 0, 1},             // a refused one (426)
  }));
  fixture f;
  flow::ws_stats st;
  f.a.stats = &st;
  tcp::acceptor front(f.ioc, {asio::ip::address_v4::loopback(), 0});
  tcp::socket client(f.ioc);
  client.connect(front.local_endpoint());
  tcp::socket server = front.accept();
  asio::co_spawn(f.ioc, flow::serve(f.p, f.a, std::move(server), f.opt), [&](std::exception_ptr e, std::error_code ec) {
    REQUIRE_FALSE(e);
    f.result = ec;
  });
  if (!bytes.empty()) asio::write(client, asio::buffer(bytes));
  client.shutdown(tcp::socket::shutdown_send);
  REQUIRE(rproxy::test::run_until(f.ioc, [&] { return f.result.has_value(); }));
  CHECK(st.silent.load() == silent);
  CHECK(st.handshake_failures.load() == failed);
  CHECK(st.upgrades.load() == 0);
}
