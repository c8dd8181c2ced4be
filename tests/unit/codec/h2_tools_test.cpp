// h2::server_session against real HTTP/2 clients: nghttp and h2load (nghttp2-client) and
// curl --http2-prior-knowledge, over a loopback socket (h2c with prior knowledge). The server
// here is a test driver (non-blocking sockets, poll), not library code; h2_echo.hpp answers.
#include <catch2/catch.hpp>

#include <rproxy/codec/h2/server_session.hpp>

#include "h2_echo.hpp"
#include "skip.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace h2 = rproxy::codec::h2;
namespace http1 = rproxy::codec::http1;

namespace {

bool have(const char* tool) { return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0; }

/// Runs a shell command (bounded by `timeout`), returns its stdout and exit status.
std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("timeout 60 " + cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = ::pclose(p);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

class test_server {
public:
  test_server() {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(lfd_, 64) == 0);
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~test_server() {
    stop_ = true;
    thread_.join();
    for (auto& c : conns_) ::close(c->fd);
    ::close(lfd_);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::size_t requests() const { return app_.requests; }
  std::size_t trailers_seen() const { return app_.trailers_seen; }
  std::size_t errors() const { return app_.errors; }

private:
  struct conn {
    int fd;
    h2::server_session s;
    explicit conn(int f) : fd(f), s(h2::limits{}) {}
  };
  void handle(conn& c, std::span<const h2::event> events) { app_.handle(c.s, events); }

  /// Writes what the session has; false when the connection is finished.
  bool flush(conn& c) {
    for (;;) {
      handle(c, c.s.poll());
      const auto out = c.s.pending_output();
      if (out.empty()) break;
      const auto n = ::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
      c.s.consume_output(static_cast<std::size_t>(n));
    }
    return !c.s.done();
  }

  void loop() {
    std::vector<char> buf(64 * 1024);
    while (!stop_) {
      std::vector<pollfd> fds{{lfd_, POLLIN, 0}};
      for (auto& c : conns_) fds.push_back({c->fd, static_cast<short>(POLLIN | (c->s.want_write() ? POLLOUT : 0)), 0});
      if (::poll(fds.data(), fds.size(), 50) < 0) continue;
      if (fds[0].revents & POLLIN) {
        const int fd = ::accept(lfd_, nullptr, nullptr);
        if (fd >= 0) conns_.push_back(std::make_unique<conn>(fd));
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        auto& c = *conns_[i - 1];
        bool alive = true;
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          const auto n = ::recv(c.fd, buf.data(), buf.size(), MSG_DONTWAIT);
          if (n <= 0) alive = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
          else handle(c, c.s.feed({buf.data(), static_cast<std::size_t>(n)}, h2::clock::now()));
        }
        if (alive) alive = flush(c);
        if (!alive) {
          ::close(c.fd);
          c.fd = -1;
        }
      }
      std::erase_if(conns_, [](const auto& c) { return c->fd < 0; });
    }
  }

  int lfd_ = -1;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<conn>> conns_;
  h2_test::echo_app app_;  // one thread: the server loop
};

std::string temp_file(const std::string& content) {
  char name[] = "/tmp/rproxy-h2-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
  return name;
}

}  // namespace

TEST_CASE("h2 tools: nghttp GET, POST with a body and trailers, many streams", "[h2][tools]") {
  if (!have("nghttp")) RPROXY_SKIP_MISSING("nghttp (nghttp2-client) not installed");
  test_server srv;
  SECTION("GET") {
    const auto [out, rc] = run("nghttp -v " + srv.url("/hello?x=1"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find(":status: 200") != std::string::npos);
    CHECK(out.find("path=/hello?x=1") != std::string::npos);
  }
  SECTION("POST: a 1 MiB body both ways, request trailers echoed as response trailers") {
    std::string body;
    for (int i = 0; body.size() < (1 << 20); ++i) body += std::to_string(i) + ",";
    const auto file = temp_file(body);
    const auto [out, rc] = run("nghttp -v --trailer='x-check: 42' -d " + file + " " + srv.url("/echo") +
                               " | grep -E 'x-check|:status|END_STREAM' ; nghttp -d " + file + " " + srv.url("/echo") +
                               " | md5sum; md5sum < " + file);
    std::remove(file.c_str());
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find(":status: 200") != std::string::npos);
    // nghttp -v prints the trailer it sent and the one it received: twice
    const auto first = out.find("x-check: 42");
    REQUIRE(first != std::string::npos);
    CHECK(out.find("x-check: 42", first + 1) != std::string::npos);
    CHECK(srv.trailers_seen() >= 1);
    // the echoed body's digest equals the file's
    std::vector<std::string> sums;
    for (std::size_t at = 0; (at = out.find("  -", at)) != std::string::npos; ++at) sums.push_back(out.substr(at - 32, 32));
    REQUIRE(sums.size() == 2);
    CHECK(sums[0] == sums[1]);
  }
  SECTION("100 concurrent streams on one connection (nghttp -m)") {
    const auto [out, rc] = run("nghttp -n -s -m 100 " + srv.url("/many"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(srv.requests() == 100);
    CHECK(srv.errors() == 0);
  }
  SECTION("a 4 MiB response through the client's flow control") {
    const auto [out, rc] = run("nghttp " + srv.url("/big?n=4194304") + " | wc -c");
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("4194304") != std::string::npos);
  }
}

TEST_CASE("h2 tools: curl --http2-prior-knowledge", "[h2][tools]") {
  if (!have("curl")) RPROXY_SKIP_MISSING("curl not installed");
  test_server srv;
  const auto [out, rc] = run("curl -sS --http2-prior-knowledge -w '\\n%{http_version} %{http_code}\\n' " + srv.url("/c/url?q=1"));
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("path=/c/url?q=1") != std::string::npos);
  CHECK(out.find("2 200") != std::string::npos);
  const auto [echo, rc2] = run("printf 'abc%.0s' $(seq 1 20000) | curl -sS --http2-prior-knowledge --data-binary @- " +
                               srv.url("/echo") + " | wc -c");
  INFO(echo);
  CHECK(rc2 == 0);
  CHECK(echo.find("60000") != std::string::npos);
}

TEST_CASE("h2 tools: h2load, 2000 requests on 4 connections, 32 streams each", "[h2][tools]") {
  if (!have("h2load")) RPROXY_SKIP_MISSING("h2load (nghttp2-client) not installed");
  test_server srv;
  const auto [out, rc] = run("h2load -n 2000 -c 4 -m 32 " + srv.url("/load"));
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("2000 succeeded, 0 failed, 0 errored") != std::string::npos);
  CHECK(srv.errors() == 0);
}
