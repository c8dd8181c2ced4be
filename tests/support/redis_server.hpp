// tests/support/redis_server.hpp: a redis-server of the test's own, on a free loopback port, for
// the cluster/ tests: start, kill, restart on the same port, pause (SIGSTOP) and resume. No test
// touches a Redis it did not start.
//
//     rproxy::test::redis_server rs;                 // empty: redis-server not installed
//     if (!rs) RPROXY_SKIP_MISSING("redis-server");
//     rs.port(); rs.pause(); rs.resume(); rs.kill(); rs.restart();
#pragma once

#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace rproxy::test {

inline std::uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

class redis_server {
public:
  /// `extra`: more redis-server arguments, e.g. {"--requirepass", "s3cret"}.
  explicit redis_server(std::vector<std::string> extra = {}) : extra_(std::move(extra)), port_(free_loopback_port()) {
    if (::access("/usr/bin/redis-server", X_OK) != 0) return;
    ok_ = start();
  }
  ~redis_server() { kill(); }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  explicit operator bool() const noexcept { return ok_; }
  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool restart() {
    kill();
    return ok_ = start();
  }
  void pause() { if (pid_ > 0) ::kill(pid_, SIGSTOP); }
  void resume() { if (pid_ > 0) ::kill(pid_, SIGCONT); }

  /// A blocking command on a connection of its own (for checks from the test).
  std::string command(const std::vector<std::string>& args, const std::string& password = {}) const {
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c == nullptr || c->err) {
      if (c) redisFree(c);
      return "<no connection>";
    }
    redisSetTimeout(c, tv);
    if (!password.empty()) freeReplyObject(redisCommand(c, "AUTH %s", password.c_str()));
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    std::string out = "<no reply>";
    if (r != nullptr) {
      if (r->type == REDIS_REPLY_INTEGER) out = std::to_string(r->integer);
      else if (r->type == REDIS_REPLY_NIL) out = "<nil>";
      else if (r->str != nullptr) out.assign(r->str, r->len);
      else if (r->type == REDIS_REPLY_ARRAY) out = "<array " + std::to_string(r->elements) + ">";
      freeReplyObject(r);
    }
    redisFree(c);
    return out;
  }

private:
  bool start() {
    std::vector<std::string> args{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--logfile", "/dev/null"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv("/usr/bin/redis-server", argv.data());
      ::_exit(127);
    }
    // Up when it answers (bounded poll: 10 s is far past a normal start).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      timeval tv{0, 200'000};
      if (redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv)) {
        const bool up = c->err == 0;
        redisFree(c);
        if (up) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  std::vector<std::string> extra_;
  std::uint16_t port_;
  pid_t pid_ = -1;
  bool ok_ = false;
};

}  // namespace rproxy::test
