// h2::server_session over TLS after ALPN "h2" (net/tls_stream.hpp), against curl, nghttp and
// h2load over https on loopback. The session sees the same bytes as over h2c; this shows the
// codec and the project's TLS stream work together. The server is a test driver (one
// coroutine per connection: read, feed, write what is pending), not library code.
#include <catch2/catch.hpp>

#include <rproxy/codec/h2/server_session.hpp>
#include <rproxy/net/tls_stream.hpp>

#include "h2_echo.hpp"
#include "skip.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace h2 = rproxy::codec::h2;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using asio::ip::tcp;

namespace {

bool have(const char* tool) { return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0; }

std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("timeout 60 " + cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = ::pclose(p);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

/// A self-signed certificate for 127.0.0.1, made with the openssl CLI, removed at the end.
struct cert {
  fs::path dir;
  cert() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-h2tls-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout " +
                            (dir / "k.pem").string() + " -out " + (dir / "c.pem").string() +
                            " -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~cert() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

class tls_server {
public:
  explicit tls_server(const cert& c) {
    auto ctx = rproxy::net::tls_server_context::load(
        {.certificates = {{(c.dir / "c.pem").string(), (c.dir / "k.pem").string(), {}}}, .alpn = {"h2", "http/1.1"}});
    if (!ctx) FAIL(ctx.error().message);
    ctx_.emplace(std::move(*ctx));
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~tls_server() {
    io_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(port_) + path; }
  h2_test::echo_app app;
  std::atomic<std::size_t> h2_connections{0}, other_alpn{0};

private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(io_, serve(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> serve(tcp::socket sock) {
    using asio::experimental::as_tuple;
    rproxy::net::tls_stream tls(std::move(sock), ctx_->context());
    auto [hec] = co_await rproxy::net::async_server_handshake(tls, 5s, as_tuple(asio::use_awaitable));
    if (hec) co_return;
    if (rproxy::net::alpn(tls) != "h2") {  // this server speaks HTTP/2 only
      ++other_alpn;
      co_return;
    }
    ++h2_connections;
    h2::server_session s;
    std::array<char, 16 * 1024> buf;
    for (;;) {
      for (auto out = s.pending_output(); !out.empty(); out = s.pending_output()) {
        auto [wec, n] = co_await asio::async_write(tls, asio::buffer(out.data(), out.size()), as_tuple(asio::use_awaitable));
        if (wec) co_return;
        s.consume_output(n);
        app.handle(s, s.poll());
      }
      if (s.done()) co_return;
      auto [rec, n] = co_await tls.async_read_some(asio::buffer(buf), as_tuple(asio::use_awaitable));
      if (rec) co_return;
      app.handle(s, s.feed({buf.data(), n}, h2::clock::now()));
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_, {asio::ip::make_address("127.0.0.1"), 0}};
  std::optional<rproxy::net::tls_server_context> ctx_;
  unsigned short port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE("h2 over TLS (ALPN h2): curl, nghttp, h2load", "[h2][tls][tools]") {
  if (!have("nghttp") || !have("h2load") || !have("curl") || !have("openssl"))
    RPROXY_SKIP_MISSING("nghttp/h2load (nghttp2-client), curl or openssl not installed");
  const cert c;
  tls_server srv{c};
  SECTION("curl negotiates h2 by ALPN") {
    const auto [out, rc] = run("curl -sSk --http2 -w '\\n%{http_version} %{http_code}\\n' " + srv.url("/tls/a?b=c"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("path=/tls/a?b=c") != std::string::npos);
    CHECK(out.find("\n2 200") != std::string::npos);
    CHECK(srv.h2_connections >= 1);
  }
  SECTION("nghttp: a body both ways with trailers, and a 2 MiB response") {
    const std::string body = "printf 'x%.0s' $(seq 1 70000)";
    const auto [out, rc] = run(body + " | nghttp -v --trailer='x-t: 7' -d - " + srv.url("/echo") +
                               " 2>/dev/null | grep -aoE 'recv \\(stream_id=13\\) (:status: 200|x-t: 7)'; " + body +
                               " | nghttp -d - " + srv.url("/echo") + " 2>/dev/null | wc -c; nghttp " +
                               srv.url("/big?n=2097152") + " 2>/dev/null | wc -c");
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("recv (stream_id=13) :status: 200") != std::string::npos);
    CHECK(out.find("recv (stream_id=13) x-t: 7") != std::string::npos);  // the echoed trailer
    CHECK(out.find("\n70000\n") != std::string::npos);
    CHECK(out.find("2097152") != std::string::npos);
    CHECK(srv.app.trailers_seen >= 1);
  }
  SECTION("h2load: 1000 requests, 2 connections, 16 streams each") {
    const auto [out, rc] = run("h2load -n 1000 -c 2 -m 16 " + srv.url("/load"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("Application protocol: h2") != std::string::npos);
    CHECK(out.find("1000 succeeded, 0 failed, 0 errored") != std::string::npos);
  }
  SECTION("a client that offers only http/1.1 is not served HTTP/2") {
    const auto [out, rc] = run("curl -sSk --http1.1 " + srv.url("/x"));
    INFO(out);
    CHECK(rc != 0);
    CHECK(srv.other_alpn == 1);
  }
  CHECK(srv.app.errors == 0);
}
