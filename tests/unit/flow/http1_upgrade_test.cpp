// HTTP/1.1 upgrades through the HTTP/1.1 adapter (flow/http1_upgrade.hpp), with real loopback
// sockets: a scripted backend that switches, refuses or switches to the wrong protocol.
#include <rproxy/flow/http1_upgrade.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <cctype>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
using rproxy::test::run_until;
namespace flow = rproxy::flow;
namespace http1 = rproxy::codec::http1;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

struct record {
  std::vector<unsigned> statuses;  // ctx.status of each flow, at on_close
  int hellos = 0;
  int responses = 0;
};

/// Routes to the backend; refuses /deny in on_hello; records what the flows did.
struct stage {
  record* r;
  tcp::endpoint backend;
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const http1::request_view& req) {
    ++r->hellos;
    ctx.response_fields.set("X-Stage", "seen");
    return req.path() == "/deny" ? rproxy::reject(rproxy::reject_code::unauthorized, "no") : rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    ctx.backend = backend;
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_response(Ctx&, const http1::response_head_view&) {
    ++r->responses;
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    r->statuses.push_back(ctx.status);
  }
};

/// The connection pipeline's one stage (it counts nothing the tests need).
struct conn_stage {
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {}
};

/// Reads heads; /ws switches (101, then its first bytes, then echoes upper-cased until EOF),
/// /wrong switches to h2c, /refuse answers 426, anything else 200.
struct backend {
  explicit backend(asio::io_context& ioc) : acc(ioc, {asio::ip::address_v4::loopback(), 0}) {}
  tcp::acceptor acc;
  std::vector<std::string> heads;
  bool saw_eof = false;

  asio::awaitable<void> serve() {
    for (;;) {
      auto [aec, s] = co_await acc.async_accept(tuple_awaitable);
      if (aec) co_return;
      asio::co_spawn(acc.get_executor(), one(std::move(s)), asio::detached);
    }
  }
  asio::awaitable<void> one(tcp::socket s) {
    std::string in;
    char buf[4096];
    for (;;) {
      std::size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
        if (ec) co_return;
        in.append(buf, n);
      }
      const std::string head = in.substr(0, end + 4);
      in.erase(0, end + 4);
      heads.push_back(head);
      const auto sp = head.find(' ');
      const auto target = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
      std::string out;
      if (target == "/ws") {
        out = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-B: 1\r\n\r\nBACKEND-FIRST;";
        co_await asio::async_write(s, asio::buffer(out), tuple_awaitable);
        for (;;) {  // the new protocol: an upper-casing echo
          for (auto& c : in) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          if (!in.empty()) co_await asio::async_write(s, asio::buffer(in), tuple_awaitable);
          in.clear();
          auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
          if (ec) {
            saw_eof = ec == asio::error::eof;
            co_return;
          }
          in.append(buf, n);
        }
      }
      if (target == "/wrong") out = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
      else if (target == "/refuse") out = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno";
      else out = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain";
      co_await asio::async_write(s, asio::buffer(out), tuple_awaitable);
    }
  }
};

struct harness {
  asio::io_context ioc;
  backend be{ioc};
  record rec;
  flow::options opt;
  flow::http1_adapter adapter;
  std::optional<std::error_code> result;

  harness() {
    opt.hello_timeout = 2s;
    opt.connect_timeout = 1s;
    adapter.idle_timeout = 2s;
    adapter.upgrades = {"websocket"};
  }

  tcp::socket start() {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    tcp::socket server = front.accept();
    asio::co_spawn(ioc, be.serve(), asio::detached);
    asio::co_spawn(
        ioc,
        [this, server = std::move(server)]() mutable -> asio::awaitable<std::error_code> {
          auto conn = rproxy::make_pipeline<flow::http1_protocol>(conn_stage{});
          auto reqs = rproxy::make_pipeline<flow::http1_protocol>(stage{&rec, be.acc.local_endpoint()});
          co_return co_await flow::serve(conn, reqs, adapter, std::move(server), opt);
        },
        [this](std::exception_ptr e, std::error_code ec) {
          REQUIRE_FALSE(e);
          result = ec;
        });
    return client;
  }

  /// What the client gets until `done(got)` holds or the connection closes.
  template <class Done>
  std::string read(tcp::socket& s, Done done) {
    std::string got;
    bool over = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          char buf[4096];
          while (!done(got)) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
            if (ec) break;
            got.append(buf, n);
          }
          over = true;
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return over; }));
    return got;
  }
  std::string read_until(tcp::socket& s, std::string_view what) {
    return read(s, [&](const std::string& g) { return g.find(what) != std::string::npos; });
  }
  void finish() { REQUIRE(run_until(ioc, [&] { return result.has_value(); })); }
};

const std::string ws_head = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n";

}  // namespace

TEST_CASE("http1 upgrade: the 101 is relayed, then bytes both ways; the client's early bytes go first", "[flow][http1]") {
  harness h;
  auto client = h.start();
  asio::write(client, asio::buffer(ws_head + "early;"));
  auto got = h.read_until(client, "EARLY;");
  const auto head_end = got.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  const auto head = got.substr(0, head_end + 4);
  CHECK(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK(head.find("Connection: upgrade\r\n") != std::string::npos);
  CHECK(head.find("Upgrade: websocket\r\n") != std::string::npos);
  CHECK(head.find("X-B: 1\r\n") != std::string::npos);
  CHECK(head.find("X-Stage: seen\r\n") != std::string::npos);  // the stages' response fields
  CHECK(got.substr(head_end + 4) == "BACKEND-FIRST;EARLY;");
  asio::write(client, asio::buffer(std::string("later")));
  got = h.read_until(client, "LATER");
  CHECK(got == "LATER");
  client.shutdown(tcp::socket::shutdown_send);  // the client ends: the backend sees EOF, closes too
  CHECK(h.read(client, [](const std::string&) { return false; }).empty());
  h.finish();
  CHECK(!*h.result);
  CHECK(h.be.saw_eof);
  REQUIRE(h.be.heads.size() == 1);
  CHECK(h.be.heads[0].find("Connection: upgrade\r\nUpgrade: websocket\r\n") != std::string::npos);
  CHECK(h.be.heads[0].find("keep-alive") == std::string::npos);
  CHECK(h.be.heads[0].find("Sec-WebSocket-Key: k\r\n") != std::string::npos);
  CHECK(h.rec.responses == 1);
  CHECK(h.rec.statuses == std::vector<unsigned>{101});
}

TEST_CASE("http1 upgrade: a refusal by the backend is a response; the connection carries on", "[flow][http1]") {
  harness h;
  auto client = h.start();
  asio::write(client, asio::buffer(std::string("GET /refuse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")));
  auto got = h.read_until(client, "\r\n\r\nno");
  CHECK(got.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
  asio::write(client, asio::buffer(std::string("GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  got = h.read(client, [](const std::string&) { return false; });
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("plain") != std::string::npos);
  h.finish();
  CHECK(h.rec.statuses == std::vector<unsigned>{426, 200});
}

TEST_CASE("http1 upgrade: a 101 to a protocol not offered is a 502; a stage's refusal never reaches the backend", "[flow][http1]") {
  {
    harness h;
    auto client = h.start();
    asio::write(client, asio::buffer(std::string("GET /wrong HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")));
    auto got = h.read(client, [](const std::string&) { return false; });
    CHECK(got.rfind("HTTP/1.1 502 ", 0) == 0);
    h.finish();
    CHECK(h.rec.statuses == std::vector<unsigned>{502});
  }
  {
    harness h;
    auto client = h.start();
    asio::write(client, asio::buffer(std::string("GET /deny HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")));
    auto got = h.read(client, [](const std::string&) { return false; });
    CHECK(got.rfind("HTTP/1.1 401 ", 0) == 0);
    h.finish();
    CHECK(h.be.heads.empty());
  }
}

TEST_CASE("http1 upgrade: protocols not listed, and upgrades with a body, get 501", "[flow][http1]") {
  for (const auto& [upgrades, req] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, ws_head},
           {{"websocket"}, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"},
           {{"websocket"}, "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 1\r\n\r\nx"},
       }) {
    harness h;
    h.adapter.upgrades = upgrades;
    auto client = h.start();
    asio::write(client, asio::buffer(req));
    auto got = h.read(client, [](const std::string&) { return false; });
    CHECK(got.rfind("HTTP/1.1 501 ", 0) == 0);
    h.finish();
    CHECK(h.be.heads.empty());
    CHECK(h.rec.hellos == 0);
  }
}

TEST_CASE("http1 upgrade: offered_upgrades keeps the listed protocols' tokens, as sent", "[flow][http1]") {
  flow::http1_adapter a;
  a.upgrades = {"websocket", "foo"};
  auto offered = [&](std::string_view fields) -> std::optional<std::string> {
    const std::string head = "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n" + std::string(fields) + "\r\n";
    http1::request_parser p;
    REQUIRE(p.parse(head).what == http1::event::head);
    std::string out;
    if (!a.offered_upgrades(p.head(), p.info(), out)) return std::nullopt;
    return out;
  };
  CHECK(offered("Upgrade: websocket\r\n") == "websocket");
  CHECK(offered("Upgrade: WebSocket\r\n") == "WebSocket");
  CHECK(offered("Upgrade: h2c, foo/2, websocket\r\nUpgrade: irc\r\n") == "foo/2, websocket");
  CHECK(offered("Upgrade: h2c\r\n") == std::nullopt);
  CHECK(offered("Upgrade: foo/\r\n") == std::nullopt);
  CHECK(offered("Upgrade: web socket, /websocket\r\n") == std::nullopt);
  CHECK(offered("Upgrade: websocket\r\nContent-Length: 0\r\n") == "websocket");
  CHECK(offered("Upgrade: websocket\r\nContent-Length: 3\r\n") == std::nullopt);
  CHECK(offered("Upgrade: websocket\r\nTransfer-Encoding: chunked\r\n") == std::nullopt);
  // Not an upgrade: no Connection: upgrade, HTTP/1.0, a CONNECT (which the parser calls one).
  for (std::string_view head : {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
                                "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                                "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"}) {
    http1::request_parser p;
    REQUIRE(p.parse(head).what == http1::event::head);
    std::string out = "x";
    CHECK_FALSE(a.offered_upgrades(p.head(), p.info(), out));
    CHECK(out.empty());
  }
}
