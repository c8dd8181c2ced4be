// bench/cluster/limit_cost.cpp: what a rate-limit decision costs when its counters are shared
// through Redis (exact: one Lua script per decision; batched: local counts synced every 100 ms)
// against the in-process limiter, in one run on one worker thread (an io_context), with
// `depth` decisions in flight at once (concurrent requests of one worker).
//
//     bench_cluster [decisions=20000] [depth=32] [mode=all|local|exact|batched]
//
// Prints, per mode: decisions/s, this process' CPU per decision (user+sys, getrusage), the
// redis-server's CPU per decision (/proc/PID/stat utime+stime), and ratios against local.
// Its own redis-server (tests/support/redis_server.hpp) on a free loopback port.
#include <rproxy/cluster/redis_counter_store.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "redis_server.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;
namespace mw = rproxy::middleware;

namespace {

double cpu_self_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// utime + stime of a process from /proc/PID/stat, in seconds
double cpu_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), {});
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  double ut = 0, st = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) ut = std::atof(field.c_str());
    if (i == 15) st = std::atof(field.c_str());
  }
  return (ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct result {
  std::string mode;
  double wall = 0, cpu = 0, redis_cpu = 0;
  std::uint64_t n = 0, allowed = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  const int depth = argc > 2 ? std::atoi(argv[2]) : 32;
  const std::string only = argc > 3 ? argv[3] : "all";

  rproxy::test::redis_server rs;
  if (!rs) {
    std::fprintf(stderr, "bench_cluster: redis-server did not start (apt install redis-server)\n");
    return 1;
  }
  const pid_t redis_pid = rs.pid();
  asio::io_context io;
  cl::redis_options o;
  o.port = rs.port();
  o.key_prefix = "bench:";
  o.command_timeout = 2s;
  cl::redis_client client(io.get_executor(), o);
  client.start();
  while (!client.ready()) io.run_one_for(10ms);
  mw::local_counter_store local;
  cl::redis_counter_store store(&client, local, {.sync_interval = 100ms});
  store.start();

  std::vector<result> results;
  for (auto mode : {mw::rate_mode::local, mw::rate_mode::exact, mw::rate_mode::batched}) {
    const char* name = mode == mw::rate_mode::local ? "local" : mode == mw::rate_mode::exact ? "exact" : "batched";
    if (only != "all" && only != name) continue;
    mw::rate_policy p;
    p.rule.algorithm = mw::rate_algorithm::sliding_window;
    p.rule.limit = 1'000'000'000;  // never refuses: every decision does the full work
    p.rule.window = 60s;
    p.sharing = {mode, mw::rate_failure::open};
    // 1000 client keys, as from 1000 addresses
    std::vector<std::string> keys;
    for (int i = 0; i < 1000; ++i) keys.push_back("7:request7:default" + std::string("ip=198.51.100.") + std::to_string(i));
    result r{name};
    std::uint64_t next = 0, done = 0;
    const double c0 = cpu_self_s(), rc0 = cpu_of(redis_pid);
    const auto t0 = std::chrono::steady_clock::now();
    for (int w = 0; w < depth; ++w)
      asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        while (next < n) {
          const auto& k = keys[next++ % keys.size()];
          auto d = co_await store.async_acquire(k, p, mw::rate_clock::now());
          r.allowed += d.allowed ? 1 : 0;
          ++done;
        }
      }, asio::detached);
    while (done < n) io.run_one();
    r.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.cpu = cpu_self_s() - c0;
    r.redis_cpu = cpu_of(redis_pid) - rc0;
    r.n = n;
    results.push_back(r);
  }
  std::printf("%-8s %10s %12s %14s %15s %14s %11s\n", "mode", "decisions", "decisions/s", "proxy us/dec", "redis us/dec",
              "cpu x local", "admitted");
  const result* base = nullptr;
  for (const auto& r : results)
    if (r.mode == "local") base = &r;
  for (const auto& r : results) {
    const double us = 1e6 * r.cpu / r.n, rus = 1e6 * r.redis_cpu / r.n;
    char ratio[32] = "-";
    if (base && base->cpu > 0) std::snprintf(ratio, sizeof ratio, "%.1f", (r.cpu + r.redis_cpu) / (base->cpu + base->redis_cpu));
    std::printf("%-8s %10llu %12.0f %14.2f %15.2f %14s %11llu\n", r.mode.c_str(), static_cast<unsigned long long>(r.n), r.n / r.wall, us, rus,
                ratio, static_cast<unsigned long long>(r.allowed));
  }
  std::printf("(one worker thread, %d decisions in flight, 1000 keys; cpu x local = (proxy + redis CPU) / local's; batched syncs: %llu)\n",
              depth, static_cast<unsigned long long>(store.stats().syncs));
  return 0;
}
