// The HTTP/2 flow (flow/h2.hpp) with real clients: curl --http2-prior-knowledge and nghttp
// (nghttp2-client) talk to a listener that sniffs the preface and serves HTTP/2 or HTTP/1.1
// through the same request pipeline, forwarding to a scripted HTTP/1.1 backend.
#include <rproxy/flow/h2.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace flow = rproxy::flow;
namespace http1 = rproxy::codec::http1;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

bool have(const char* tool) { return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0; }

/// Runs a shell command (bounded), returns its output and exit status.
std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("timeout 30 " + cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = ::pclose(p);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

struct record {
  std::atomic<int> closes{0}, conn_closes{0}, hellos{0};
  std::atomic<std::size_t> message_bytes{0};
  std::atomic<int> backend_requests{0};
  std::atomic<int> backend_accepts{0};
};

struct conn_closer {
  record* r;
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    ++r->conn_closes;
  }
};

/// Refuses /limited with 429 and leaves a response field; sets a request field.
struct limiter {
  record* r;
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const http1::request_view& req) {
    ++r->hellos;
    ctx.response_fields.set("X-Limit", "3");
    ctx.request_fields.set("X-User", "alice");
    if (req.path() == "/limited") return rproxy::reject(rproxy::reject_code::rate_limited, "slow down", 7);
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    ++r->closes;
  }
};

struct router {
  record* r;
  tcp::endpoint backend;
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    ctx.backend = backend;
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_message(Ctx&, const std::string_view& chunk) {
    r->message_bytes += chunk.size();
    return rproxy::next;
  }
};

/// A scripted HTTP/1.1 backend: answers "got PATH X-User BODYLEN"; /die-mid dies mid-body;
/// /big sends 1 MiB; /trailers* adds the request's framing and its trailers
/// (" chunked=1 content-length=- trailer x-checksum=abc").
struct backend {
  backend(asio::io_context& ioc, record& r) : acc(ioc, {asio::ip::address_v4::loopback(), 0}), rec(&r) {}
  tcp::acceptor acc;
  record* rec;

  asio::awaitable<void> serve() {
    for (;;) {
      auto [aec, s] = co_await acc.async_accept(tuple_awaitable);
      if (aec) co_return;
      ++rec->backend_accepts;
      asio::co_spawn(acc.get_executor(), one(std::move(s)), asio::detached);
    }
  }
  asio::awaitable<void> one(tcp::socket s) {
    http1::request_parser p;
    std::string in, head, framing;
    std::size_t body = 0;
    char buf[16384];
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
        head = std::string(p.head().target) + " " + std::string(p.head().fields.find("x-user").value_or("-"));
        framing = " chunked=" + std::to_string(p.info().chunked ? 1 : 0) + " content-length=" +
                  std::string(p.head().fields.find("content-length").value_or("-"));
        in.erase(0, r.consumed);
        body = 0;
        continue;
      }
      if (r.what == http1::event::body) {
        body += r.data.size();
        in.erase(0, r.consumed);
        continue;
      }
      if (r.what != http1::event::message_complete) co_return;
      ++rec->backend_requests;
      if (head.starts_with("/trailers"))
        for (const auto& t : p.trailers()) framing += " trailer " + std::string(t.name) + "=" + std::string(t.value);
      in.erase(0, r.consumed);
      std::string out;
      if (head.starts_with("/die-mid")) {
        out = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789";
        co_await asio::async_write(s, asio::buffer(out), tuple_awaitable);
        co_return;
      }
      if (head.starts_with("/big")) {
        out = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n" + std::string(1 << 20, 'y');
      } else {
        const std::string text = "got " + head + " " + std::to_string(body) + (head.starts_with("/trailers") ? framing : "");
        out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(text.size()) + "\r\nX-Backend: 1\r\n\r\n" + text;
      }
      auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), tuple_awaitable);
      if (wec) co_return;
    }
  }
};

/// A listener that sniffs the preface: HTTP/2 or HTTP/1.1 through the same pipelines.
struct gateway {
  asio::io_context ioc;
  record rec;
  backend be{ioc, rec};
  tcp::acceptor front{ioc, {asio::ip::address_v4::loopback(), 0}};
  flow::options opt;
  flow::http1_adapter h1;
  flow::h2_adapter h2{.http1 = &h1};
  decltype(rproxy::make_pipeline<flow::http1_protocol>(conn_closer{})) conn =
      rproxy::make_pipeline<flow::http1_protocol>(conn_closer{&rec});
  decltype(rproxy::make_pipeline<flow::http1_protocol>(limiter{}, router{})) reqs =
      rproxy::make_pipeline<flow::http1_protocol>(limiter{&rec}, router{&rec, be.acc.local_endpoint()});
  std::thread thread;

  /// `allow_trailers`: the request trailers forwarded (forwarding.allow_trailers; none by default).
  explicit gateway(std::vector<std::string> allow_trailers = {}) {
    h1.allow_trailers = std::move(allow_trailers);
    opt.connect_timeout = 1s;
    h1.idle_timeout = 5s;
    h1.json_errors = true;
    asio::co_spawn(ioc, be.serve(), asio::detached);
    asio::co_spawn(ioc, accept(), asio::detached);
    thread = std::thread([this] { ioc.run(); });
  }
  ~gateway() {
    ioc.stop();
    thread.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(front.local_endpoint().port()) + path; }

  asio::awaitable<void> accept() {
    for (;;) {
      auto [aec, s] = co_await front.async_accept(tuple_awaitable);
      if (aec) co_return;
      asio::co_spawn(ioc, one(std::move(s)), asio::detached);
    }
  }
  asio::awaitable<void> one(tcp::socket s) {
    auto [ec, is_h2] = co_await flow::sniff_h2_preface(s, 2s);
    if (ec) co_return;
    if (is_h2) (void)co_await flow::serve_h2(conn, reqs, h2, s, opt);
    else (void)co_await flow::serve(conn, reqs, h1, std::move(s), opt);
  }
};

}  // namespace

TEST_CASE("h2 flow: curl over h2c and HTTP/1.1 on one port, through one request pipeline", "[flow][h2]") {
  if (!have("curl")) FAIL("curl is missing (scripts/setup installs it)");
  gateway g;
  auto [out, rc] = run("curl -sS --http2-prior-knowledge -D - " + g.url("/a"));
  REQUIRE(rc == 0);
  CHECK(out.find("HTTP/2 200") != std::string::npos);
  CHECK(out.find("x-limit: 3") != std::string::npos);    // a stage's response field
  CHECK(out.find("x-backend: 1") != std::string::npos);
  CHECK(out.find("got /a alice 0") != std::string::npos);  // a stage's request field reached the backend

  auto [out1, rc1] = run("curl -sS --http1.1 -D - " + g.url("/b"));
  REQUIRE(rc1 == 0);
  CHECK(out1.find("HTTP/1.1 200") != std::string::npos);
  CHECK(out1.find("got /b alice 0") != std::string::npos);

  // A refusal: the HTTP/1.1 path's status, fields and JSON body, over HTTP/2; no backend request.
  const int before = g.rec.backend_requests;
  auto [out2, rc2] = run("curl -sS --http2-prior-knowledge -D - " + g.url("/limited"));
  REQUIRE(rc2 == 0);
  CHECK(out2.find("HTTP/2 429") != std::string::npos);
  CHECK(out2.find("retry-after: 7") != std::string::npos);
  CHECK(out2.find("\"error\":\"rate_limited\"") != std::string::npos);
  CHECK(g.rec.backend_requests == before);
}

TEST_CASE("h2 flow: request and response bodies streamed; a backend dying mid-response resets one stream", "[flow][h2]") {
  if (!have("curl") || !have("nghttp")) FAIL("curl or nghttp is missing (scripts/setup installs them)");
  gateway g;
  const std::string file = "/tmp/rproxy_h2_flow_body_" + std::to_string(::getpid());
  REQUIRE(std::system(("head -c 3000000 /dev/zero > " + file).c_str()) == 0);
  auto [out, rc] = run("curl -sS --http2-prior-knowledge --data-binary @" + file + " " + g.url("/up"));
  std::remove(file.c_str());
  REQUIRE(rc == 0);
  CHECK(out == "got /up alice 3000000");
  CHECK(g.rec.message_bytes >= 3000000);

  auto [big, rcb] = run("curl -sS --http2-prior-knowledge -o /dev/null -w '%{size_download}' " + g.url("/big"));
  REQUIRE(rcb == 0);
  CHECK(big == "1048576");

  // Several streams on one connection; one of them dies mid-response, the others complete.
  auto [n, rcn] = run("nghttp -n -s " + g.url("/one") + " " + g.url("/die-mid") + " " + g.url("/two") + " " + g.url("/big"));
  INFO(n);
  CHECK(n.find("total=4, processed=3") != std::string::npos);  // the dying stream did not complete
  CHECK(n.find("/big") != std::string::npos);
  auto [n2, rc2] = run("nghttp -v " + g.url("/one") + " " + g.url("/die-mid") + " " + g.url("/two"));
  INFO(n2);
  CHECK(n2.find("recv RST_STREAM") != std::string::npos);
  CHECK(n2.find("error_code=INTERNAL_ERROR") != std::string::npos);
  CHECK(n2.find("got /two alice 0") != std::string::npos);
  CHECK(n2.find("got /one alice 0") != std::string::npos);
  auto [out3, rc3] = run("curl -sS --http2-prior-knowledge " + g.url("/after"));
  CHECK(rc3 == 0);
  CHECK(out3 == "got /after alice 0");
}

TEST_CASE("h2 flow: bodiless GETs on one connection share a kept backend connection", "[flow][h2]") {
  if (!have("h2load")) FAIL("h2load is missing (scripts/setup installs nghttp2-client)");
  gateway g;
  // h2load -c1 -m1: one HTTP/2 connection, one stream at a time, each a HEADERS frame with
  // END_STREAM, so each may take the backend connection the one before it left.
  auto [out, rc] = run("h2load -c1 -m1 -n5 " + g.url("/k"));
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("5 succeeded") != std::string::npos);
  CHECK(g.rec.backend_requests == 5);
  CHECK(g.rec.backend_accepts == 1);
}

TEST_CASE("h2 flow: a request with content-length and trailers goes chunked when trailers may be forwarded", "[flow][h2]") {
  if (!have("nghttp")) FAIL("nghttp is missing (scripts/setup installs nghttp2-client)");
  const std::string file = "/tmp/rproxy_h2_flow_trailers_" + std::to_string(::getpid());
  REQUIRE(std::system(("head -c 50000 /dev/zero > " + file).c_str()) == 0);
  // nghttp -d sends content-length: 50000, the body in DATA frames, then a HEADERS frame
  // with the trailers and END_STREAM.
  const std::string upload = "nghttp -d " + file + " --trailer 'x-checksum: abc' --trailer 'x-other: no' ";
  {
    gateway g({"x-checksum"});
    auto [out, rc] = run(upload + g.url("/trailers"));
    INFO(out);
    CHECK(rc == 0);
    // The length gave way to chunked framing, and the allowed trailer followed the body.
    CHECK(out == "got /trailers alice 50000 chunked=1 content-length=- trailer x-checksum=abc");
    // A request that ended in its HEADERS frame keeps its framing: no body, no trailers.
    auto [get, rcg] = run("nghttp " + g.url("/trailers-get"));
    CHECK(rcg == 0);
    CHECK(get == "got /trailers-get alice 0 chunked=0 content-length=-");
  }
  {
    gateway g;  // no trailer is forwarded: the request keeps its length
    auto [out, rc] = run(upload + g.url("/trailers"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(out == "got /trailers alice 50000 chunked=0 content-length=50000");
  }
  std::remove(file.c_str());
}
