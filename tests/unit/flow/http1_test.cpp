// The HTTP/1.1 adapter over the flow driver, with real loopback sockets: a scripted backend,
// a client that writes raw requests and reads raw responses.
#include <rproxy/flow/http1.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

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
  int closes = 0;
  std::error_code close_ec;
  int conn_closes = 0;
  std::size_t message_bytes = 0;
  int messages = 0;
  int responses = 0;
};

struct closer {
  record* r;
  template <class Ctx>
  void on_close(Ctx&, std::error_code ec) {
    ++r->closes;
    r->close_ec = ec;
  }
};
struct conn_closer {
  record* r;
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    ++r->conn_closes;
  }
};

/// An asynchronous check: waits on a timer, refuses /deny.
struct slow_check {
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_hello(Ctx&, const http1::request_view& req) {
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return req.path() == "/deny" ? rproxy::reject(rproxy::reject_code::forbidden, "denied") : rproxy::next;
  }
};

/// Leaves response fields like a rate limiter; refuses /limited with 429; owns X-User.
struct limiter {
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const http1::request_view& req) {
    ctx.response_fields.set("X-Limit", "3");
    ctx.request_fields.set("X-User", req.path() == "/as-alice" ? "alice" : "");
    if (req.path() == "/limited") return rproxy::reject(rproxy::reject_code::rate_limited, "slow down", 7);
    return rproxy::next;
  }
};

/// Routes every request to one backend; counts the body and the responses.
struct router {
  record* r;
  tcp::endpoint backend;
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    ctx.backend = backend;
    return rproxy::next;
  }
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_message(Ctx&, const std::string_view& chunk) {  // asynchronous too
    ++r->messages;
    r->message_bytes += chunk.size();
    co_return chunk.find("FORBIDDEN") != std::string_view::npos ? rproxy::reject(rproxy::reject_code::forbidden, "no")
                                                                 : rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_response(Ctx&, const http1::response_head_view&) {
    ++r->responses;
    return rproxy::next;
  }
};

/// A scripted HTTP backend: parses each request with the codec and answers by its path.
struct backend {
  explicit backend(asio::io_context& ioc) : acc(ioc, {asio::ip::address_v4::loopback(), 0}) {}
  tcp::acceptor acc;
  int connections = 0;
  std::vector<std::string> heads;   // each request's head as received
  std::vector<std::string> bodies;  // each request's body, framing removed

  asio::awaitable<void> serve() {
    for (;;) {
      auto [aec, s] = co_await acc.async_accept(tuple_awaitable);
      if (aec) co_return;
      ++connections;
      asio::co_spawn(acc.get_executor(), one(std::move(s)), asio::detached);
    }
  }
  asio::awaitable<void> one(tcp::socket s) {
    http1::request_parser p;
    std::string in;
    std::string body, head;
    char buf[4096];
    for (;;) {
      auto r = p.parse(in);
      if (r.what == http1::event::need_more) {
        in.erase(0, r.consumed);
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
        if (ec) co_return;
        in.append(buf, n);
        continue;
      }
      if (r.what == http1::event::head) {
        head = in.substr(0, r.consumed);
        in.erase(0, r.consumed);
        body.clear();
        continue;
      }
      if (r.what == http1::event::body) {
        body.append(r.data);
        in.erase(0, r.consumed);
        continue;
      }
      if (r.what != http1::event::message_complete) co_return;
      in.erase(0, r.consumed);
      heads.push_back(head);
      bodies.push_back(body);
      const auto target = head.substr(head.find(' ') + 1, head.find(' ', head.find(' ') + 1) - head.find(' ') - 1);
      std::string out;
      if (target == "/die-early") co_return;
      if (target == "/die-mid") {
        out = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
        co_await asio::async_write(s, asio::buffer(out), tuple_awaitable);
        co_return;
      }
      if (target == "/chunked") {
        out = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
      } else {
        const std::string text = "got " + target + " " + std::to_string(body.size());
        out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text;
      }
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
    adapter.buffer_size = 1024;  // bodies larger than this are streamed in pieces
    adapter.request_limits.max_header_bytes = 2048;
  }

  template <class Conn, class Pipeline>
  tcp::socket start(Conn& conn, Pipeline& p) {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    tcp::socket server = front.accept();
    asio::co_spawn(ioc, be.serve(), asio::detached);
    asio::co_spawn(ioc, flow::serve(conn, p, adapter, std::move(server), opt), [this](std::exception_ptr e, std::error_code ec) {
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
  std::string read_all(tcp::socket& s) {
    return read(s, [](const std::string&) { return false; });
  }
  void finish() { REQUIRE(run_until(ioc, [&] { return result.has_value(); })); }
};

std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

auto pipelines(harness& h) {
  auto conn = rproxy::make_pipeline<flow::http1_protocol>(conn_closer{&h.rec});
  auto reqs = rproxy::make_pipeline<flow::http1_protocol>(closer{&h.rec}, slow_check{}, limiter{},
                                                          router{&h.rec, h.be.acc.local_endpoint()});
  return std::pair{std::move(conn), std::move(reqs)};
}

}  // namespace

TEST_CASE("http1: pipelined requests on one kept connection, answered in order over one backend connection", "[flow][http1]") {
  harness h;
  auto [conn, reqs] = pipelines(h);
  auto client = h.start(conn, reqs);
  asio::write(client, asio::buffer(std::string("GET /one HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
                                               "GET /two HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto got = h.read(client, [](const std::string& g) { return g.find("got /two 0") != std::string::npos; });
  CHECK(got.find("got /one 0") < got.find("got /two 0"));
  CHECK(count(got, "HTTP/1.1 200 OK") == 2);
  CHECK(count(got, "X-Limit: 3") == 2);  // the stage's response fields on forwarded responses
  asio::write(client, asio::buffer(std::string("GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  got = h.read_all(client);
  CHECK(got.find("got /three 0") != std::string::npos);
  CHECK(got.find("Connection: close") != std::string::npos);
  h.finish();
  CHECK(h.be.connections == 1);
  REQUIRE(h.be.heads.size() == 3);
  // the client is no trusted proxy: its X-Forwarded-For is replaced, not extended
  CHECK(h.be.heads[0].find("X-Forwarded-For: 127.0.0.1\r\n") != std::string::npos);
  CHECK(h.be.heads[0].find("10.0.0.1") == std::string::npos);
  CHECK(h.rec.closes == 3);  // a flow per request
  CHECK(h.rec.conn_closes == 1);
  CHECK(h.rec.responses == 3);
}

TEST_CASE("http1: a chunked request body goes up in on_message pieces, a chunked response comes down", "[flow][http1]") {
  harness h;
  auto [conn, reqs] = pipelines(h);
  auto client = h.start(conn, reqs);
  const std::string part(1500, 'a');  // larger than the buffer: more than one on_message
  std::string req = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  http1::append_chunk(req, part);
  http1::append_chunk(req, "tail");
  req += "0\r\n\r\n";
  asio::write(client, asio::buffer(req));
  auto got = h.read_all(client);
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);  // the backend's 100 was dropped
  CHECK(got.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(got.find("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") != std::string::npos);
  h.finish();
  REQUIRE(h.be.bodies.size() == 1);
  CHECK(h.be.bodies[0] == part + "tail");
  CHECK(h.be.heads[0].find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(h.rec.message_bytes == part.size() + 4);
  CHECK(h.rec.messages >= 2);
}

TEST_CASE("http1: a Content-Length body is streamed up with on_message; a body stage's refusal is a status", "[flow][http1]") {
  harness h;
  auto [conn, reqs] = pipelines(h);
  auto client = h.start(conn, reqs);
  const std::string body(5000, 'b');
  asio::write(client, asio::buffer("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + body));
  auto got = h.read(client, [](const std::string& g) { return g.find("got /up 5000") != std::string::npos; });
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(h.rec.message_bytes == 5000);
  asio::write(client, asio::buffer(std::string("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nFORBIDDEN")));
  got = h.read_all(client);
  CHECK(got.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
  h.finish();
  CHECK(h.rec.closes == 2);
}

TEST_CASE("http1: refusals are rendered with their status and the stages' fields; owned fields are not forged", "[flow][http1]") {
  SECTION("an asynchronous stage refuses") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET /deny HTTP/1.1\r\nHost: x\r\n\r\n")));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
    CHECK(got.find("denied") != std::string::npos);
    h.finish();
    CHECK(h.be.connections == 0);
    CHECK(h.rec.closes == 1);
  }
  SECTION("a rate limit") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET /limited HTTP/1.1\r\nHost: x\r\n\r\n")));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0) == 0);
    CHECK(got.find("X-Limit: 3\r\n") != std::string::npos);
    CHECK(got.find("Retry-After: 7\r\n") != std::string::npos);
    h.finish();
  }
  SECTION("a stage-owned field") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET /x HTTP/1.1\r\nHost: x\r\nX-User: mallory\r\n\r\n"
                                                 "GET /as-alice HTTP/1.1\r\nHost: x\r\nX-User: mallory\r\nConnection: close\r\n\r\n")));
    h.read_all(client);
    h.finish();
    REQUIRE(h.be.heads.size() == 2);
    CHECK(h.be.heads[0].find("mallory") == std::string::npos);
    CHECK(h.be.heads[1].find("mallory") == std::string::npos);
    CHECK(h.be.heads[1].find("X-User: alice\r\n") != std::string::npos);
  }
}

TEST_CASE("http1: a backend that dies before its head gives a 502; one that dies mid-body cuts the client", "[flow][http1]") {
  SECTION("before the head") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET /die-early HTTP/1.1\r\nHost: x\r\n\r\n")));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
    h.finish();
    CHECK(h.rec.closes == 1);
    CHECK(h.rec.close_ec);
  }
  SECTION("mid-body") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET /die-mid HTTP/1.1\r\nHost: x\r\n\r\n")));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n", 0) == 0);
    CHECK(got.substr(got.find("\r\n\r\n") + 4) == "0123456789");  // truncated, then closed
    h.finish();
    CHECK(*h.result == rproxy::net::error::backend_reset);
  }
}

TEST_CASE("http1: a head that does not come whole in time gets a 408; a malformed one its status", "[flow][http1]") {
  SECTION("slowloris") {
    harness h;
    h.opt.hello_timeout = 300ms;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
    h.finish();
    CHECK(*h.result == rproxy::net::error::idle_timeout);
    CHECK(h.be.connections == 0);
    CHECK(h.rec.closes == 1);
  }
  SECTION("too large") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'b') + "\r\n\r\n"));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 431 ", 0) == 0);
    h.finish();
    CHECK(h.be.connections == 0);
  }
  SECTION("an upgrade") {
    harness h;
    auto [conn, reqs] = pipelines(h);
    auto client = h.start(conn, reqs);
    asio::write(client, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")));
    auto got = h.read_all(client);
    CHECK(got.rfind("HTTP/1.1 501 ", 0) == 0);
    h.finish();
  }
}

namespace {
/// A body transform (on_response_body) for requests whose target contains "upper": each piece
/// upper-cased, "|" after each piece, "END" at the end; other responses pass untouched.
struct upper {
  struct state {
    bool want = false;
    std::string out;
    int pieces = 0;
  };
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const http1::request_view& req) {
    ctx.template state<upper>().want = req.target().find("upper") != std::string_view::npos;
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_response(Ctx& ctx, const http1::response_head_view&) {
    if (ctx.template state<upper>().want) ctx.response_body_filtered = true;
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::result<std::string_view> on_response_body(Ctx& ctx, std::string_view piece, bool last) {
    auto& st = ctx.template state<upper>();
    st.out.clear();
    for (char c : piece) st.out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    st.out += last ? "END" : "|";
    ++st.pieces;
    return std::string_view(st.out);
  }
};
}  // namespace

TEST_CASE("http1: a stage's on_response_body transforms a response body, sent chunked; others pass as they are", "[flow][http1]") {
  harness h;
  auto conn = rproxy::make_pipeline<flow::http1_protocol>(conn_closer{&h.rec});
  auto reqs = rproxy::make_pipeline<flow::http1_protocol>(upper{}, router{&h.rec, h.be.acc.local_endpoint()});
  STATIC_REQUIRE(decltype(reqs)::filters_response_body);
  auto client = h.start(conn, reqs);
  asio::write(client, asio::buffer(std::string("GET /upper HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto got = h.read(client, [](const std::string& g) { return g.find("\r\n0\r\n\r\n") != std::string::npos; });
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("Content-Length") == std::string::npos);  // the backend's length no longer holds
  CHECK(got.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(got.find("\r\n\r\nd\r\nGOT /UPPER 0|\r\n3\r\nEND\r\n0\r\n\r\n") != std::string::npos);
  // the next request on the kept connection is not transformed: its Content-Length stands
  asio::write(client, asio::buffer(std::string("GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  got = h.read_all(client);
  CHECK(got.find("Content-Length: 12\r\n") != std::string::npos);
  CHECK(got.find("\r\n\r\ngot /plain 0") != std::string::npos);
  h.finish();
  CHECK(h.be.connections == 1);
}

TEST_CASE("http1: a pipeline without on_response_body keeps the relay path", "[flow][http1]") {
  harness h;
  auto [conn, reqs] = pipelines(h);
  STATIC_REQUIRE_FALSE(decltype(reqs)::filters_response_body);
  auto client = h.start(conn, reqs);
  asio::write(client, asio::buffer(std::string("GET /upper HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  const auto got = h.read_all(client);
  CHECK(got.find("Content-Length: 12\r\n") != std::string::npos);
  CHECK(got.find("\r\n\r\ngot /upper 0") != std::string::npos);
  h.finish();
}
