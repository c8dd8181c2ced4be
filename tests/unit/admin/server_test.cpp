#include <rproxy/admin/server.hpp>

#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <catch2/catch.hpp>

#include "raw_exchange.hpp"

#include <cerrno>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include <unistd.h>

namespace {
using test_support::raw_exchange;

struct fixture {
  asio::io_context io;
  rproxy::observe::registry reg{2};
  rproxy::admin::server admin;
  explicit fixture(std::string token = {})
      : admin(io, {asio::ip::make_address("127.0.0.1"), 0},
              rproxy::admin::server_options{8, 1024, std::chrono::seconds(2), std::move(token), {"x", "Admin.Example"}}) {
    start();
  }
  bool ready = false;
  std::thread runner;
  void start() {
    reg.add_counter("demo_requests", "Requests.").inc(3);
    admin.serve_metrics(reg);
    admin.set_ready([this] { return ready; });
    admin.handle("POST", "/echo", [](const rproxy::admin::request& r) {
      return rproxy::admin::text(200, "got " + r.body);
    });
    admin.start();
    runner = std::thread([this] { io.run(); });
  }
  ~fixture() {
    asio::post(io, [this] { admin.stop(); io.stop(); });
    runner.join();
  }
  asio::ip::tcp::endpoint ep() const { return admin.local_endpoint(); }
};
}  // namespace

TEST_CASE("admin serves healthz, readyz and metrics", "[admin]") {
  fixture f;
  auto h = raw_exchange(f.ep(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(h.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(h.find("\r\n\r\nok\n") != std::string::npos);

  auto r = raw_exchange(f.ep(), "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(r.rfind("HTTP/1.1 503", 0) == 0);
  asio::post(f.io, [&] { f.ready = true; });
  r = raw_exchange(f.ep(), "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);

  auto m = raw_exchange(f.ep(), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(m.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(m.find("demo_requests_total 3") != std::string::npos);
}

TEST_CASE("admin keeps connections alive, pipelines, and reads bodies", "[admin]") {
  fixture f;
  auto out = raw_exchange(f.ep(),
                      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                      "DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto a = out.find("HTTP/1.1 200");
  auto b = out.find("got hello");
  auto c = out.find("HTTP/1.1 404");
  auto d = out.find("HTTP/1.1 405");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  REQUIRE(c != std::string::npos);
  REQUIRE(d != std::string::npos);
  CHECK((a < b && b < c && c < d));
}

TEST_CASE("admin rejects bad requests and oversized bodies", "[admin]") {
  fixture f;
  auto bad = raw_exchange(f.ep(), "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
  CHECK(bad.rfind("HTTP/1.1 400", 0) == 0);
  auto big = raw_exchange(f.ep(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x'));
  CHECK(big.rfind("HTTP/1.1 413", 0) == 0);
}

TEST_CASE("admin closes connections that stall mid-request", "[admin]") {
  fixture f;
  // half a head, then silence: the request timeout (2 s here) closes it; no response bytes
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect(f.ep());
  asio::write(s, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHo")));
  // Not closed at once: the server answers another client meanwhile, and this connection is
  // still open after that (a read would block, no EOF yet).
  auto other = raw_exchange(f.ep(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(other.rfind("HTTP/1.1 200", 0) == 0);
  char buf[256];
  errno = 0;
  const auto early = ::recv(s.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
  const int early_errno = errno;
  CHECK(early == -1);
  CHECK((early_errno == EAGAIN || early_errno == EWOULDBLOCK));
  // Then closed by the server (EOF, no response bytes) once the timeout passes. The receive
  // timeout (20 s) only bounds the test: hitting it fails the EOF check (-1, EAGAIN).
  timeval tv{20, 0};
  REQUIRE(::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  CHECK(::recv(s.native_handle(), buf, sizeof buf, 0) == 0);
}

TEST_CASE("admin refuses a Host that is neither its address nor an allowed name", "[admin]") {
  fixture f;
  const auto port = std::to_string(f.ep().port());
  auto get = [&](const std::string& host) {
    return raw_exchange(f.ep(), "GET /metrics HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n");
  };
  CHECK(get("127.0.0.1:" + port).rfind("HTTP/1.1 200", 0) == 0);
  CHECK(get("127.0.0.1").rfind("HTTP/1.1 200", 0) == 0);
  CHECK(get("admin.example:" + port).rfind("HTTP/1.1 200", 0) == 0);  // a configured name, any case
  CHECK(get("attacker.example:" + port).rfind("HTTP/1.1 403", 0) == 0);  // DNS rebinding
  CHECK(get("127.0.0.2:" + port).rfind("HTTP/1.1 403", 0) == 0);
  CHECK(get("[::1]:" + port).rfind("HTTP/1.1 403", 0) == 0);
  const auto r = raw_exchange(f.ep(), "POST /echo HTTP/1.1\r\nHost: evil\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
  CHECK(r.rfind("HTTP/1.1 403", 0) == 0);
  CHECK(r.find("got hi") == std::string::npos);
  CHECK(raw_exchange(f.ep(), "GET /healthz HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 403", 0) == 0);  // no Host at all
}

TEST_CASE("admin with a token: every POST needs it, GETs do not", "[admin]") {
  fixture f("s3cret-token");
  auto post = [&](const std::string& auth) {
    return raw_exchange(f.ep(), "POST /echo HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 2\r\nConnection: close\r\n\r\nhi");
  };
  const auto none = post("");
  CHECK(none.rfind("HTTP/1.1 401", 0) == 0);
  CHECK(none.find("WWW-Authenticate: Bearer") != std::string::npos);
  CHECK(post("Authorization: Bearer wrong-token!\r\n").rfind("HTTP/1.1 401", 0) == 0);
  CHECK(post("Authorization: Bearer s3cret-toke\r\n").rfind("HTTP/1.1 401", 0) == 0);
  CHECK(post("Authorization: Basic s3cret-token\r\n").rfind("HTTP/1.1 401", 0) == 0);
  const auto ok = post("Authorization: bearer s3cret-token\r\n");
  CHECK(ok.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(ok.find("got hi") != std::string::npos);
  CHECK(raw_exchange(f.ep(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
}

TEST_CASE("admin with a token: a PUT needs it, and so does a GET under a require_token prefix", "[admin]") {
  fixture f("s3cret-token");
  // Registered on the io thread (the server is running there).
  std::atomic<bool> done{false};
  asio::post(f.io, [&] {
    f.admin.require_token("/api/");
    f.admin.handle_prefix("PUT", "/api/things/", [](const rproxy::admin::request& r) {
      return rproxy::admin::text(200, "put " + std::string(r.path));
    });
    f.admin.handle_prefix("GET", "/api/", [](const rproxy::admin::request& r) {
      return rproxy::admin::text(200, "get " + std::string(r.path));
    });
    done = true;
  });
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10); !done && std::chrono::steady_clock::now() < until;)
    std::this_thread::yield();
  REQUIRE(done);
  auto req = [&](const std::string& line, const std::string& auth) {
    return raw_exchange(f.ep(), line + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 0\r\nConnection: close\r\n\r\n");
  };
  const std::string bearer = "Authorization: Bearer s3cret-token\r\n";
  CHECK(req("PUT /api/things/a", "").rfind("HTTP/1.1 401", 0) == 0);
  CHECK(req("GET /api/things/a", "").rfind("HTTP/1.1 401", 0) == 0);
  const auto put = req("PUT /api/things/a?x=1", bearer);
  CHECK(put.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(put.find("put /api/things/a") != std::string::npos);
  CHECK(req("GET /api/x", bearer).find("get /api/x") != std::string::npos);
  CHECK(req("DELETE /api/things/a", bearer).rfind("HTTP/1.1 405", 0) == 0);
  CHECK(req("PUT /apix", bearer).rfind("HTTP/1.1 404", 0) == 0);
  CHECK(req("GET /healthz", "").rfind("HTTP/1.1 200", 0) == 0);  // outside the prefix: open
}

TEST_CASE("admin token file: trimmed, never empty", "[admin]") {
  const auto path = "/tmp/rproxy_admin_token_" + std::to_string(::getpid());
  auto write = [&](const std::string& text) { std::ofstream(path, std::ios::binary) << text; };
  write("  abc.DEF-123\n");
  CHECK(rproxy::admin::read_token_file(path).value() == "abc.DEF-123");
  write("\n \n");
  CHECK_FALSE(rproxy::admin::read_token_file(path));
  write("two words\n");
  CHECK_FALSE(rproxy::admin::read_token_file(path));
  std::remove(path.c_str());
  CHECK_FALSE(rproxy::admin::read_token_file(path));
}
