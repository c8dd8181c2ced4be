// bench/cluster/limit_cost.cpp: what a rate-limit decision costs when its counters are shared
// through Redis (exact: one Lua script per decision; batched: local counts synced every 100 ms)
// against the in-process limiter, in one run on one worker thread (an io_context), with
// `depth` decisions in flight at once (concurrent requests of one worker).
//
//     bench_cluster [seconds=2] [depth=32] [mode=all|local|exact_tb|exact_sw|batched]
//
// Each mode runs for the same time (so batched mode's syncs, every 100 ms, are in its cost).
//
// Prints, per mode: decisions/s, this process' CPU per decision (user+sys, getrusage), the
// redis-server's CPU per decision (/proc/PID/stat utime+stime), and ratios against local.
// Its own redis-server (tests/support/redis_server.hpp) on a free loopback port.
#include <rproxy/cluster/redis_counter_store.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

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
  std::uint64_t n = 0, allowed = 0, syncs = 0, fallback = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
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
  struct mode_row {
    const char* name;
    mw::rate_mode mode;
    mw::rate_algorithm algo;
  };
  const mode_row modes[] = {{"local", mw::rate_mode::local, mw::rate_algorithm::sliding_window},
                            {"exact_tb", mw::rate_mode::exact, mw::rate_algorithm::token_bucket},
                            {"exact_sw", mw::rate_mode::exact, mw::rate_algorithm::sliding_window},
                            {"batched", mw::rate_mode::batched, mw::rate_algorithm::sliding_window}};
  for (const auto& m : modes) {
    if (only != "all" && only != m.name) continue;
    mw::rate_policy p;
    p.rule.algorithm = m.algo;
    p.rule.limit = 1'000'000'000;  // never refuses: every decision does the full work
    p.rule.window = 60s;
    p.sharing = {m.mode, mw::rate_failure::open};
    // 1000 client keys, as from 1000 addresses
    std::vector<std::string> keys;
    for (int i = 0; i < 1000; ++i) keys.push_back(std::string(m.name) + "|7:request7:default|ip=198.51.100." + std::to_string(i));
    result r{m.name};
    std::uint64_t next = 0, done = 0;
    bool stop = false;
    const std::uint64_t syncs0 = store.stats().syncs, fallback0 = store.stats().fallback;
    const double c0 = cpu_self_s(), rc0 = cpu_of(redis_pid);
    const auto t0 = std::chrono::steady_clock::now();
    const auto end = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    int running = depth;
    for (int w = 0; w < depth; ++w)
      asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        while (!stop) {
          const auto& k = keys[next++ % keys.size()];
          auto d = co_await store.async_acquire(k, p, mw::rate_clock::now());
          r.allowed += d.allowed ? 1 : 0;
          if ((++done & 63) == 0) {
            // let the loop run (timers: batched syncs), as socket I/O between requests would
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            if (std::chrono::steady_clock::now() >= end) stop = true;
          }
        }
        --running;
      }, asio::detached);
    while (running > 0) io.run_one();
    r.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.cpu = cpu_self_s() - c0;
    r.redis_cpu = cpu_of(redis_pid) - rc0;
    r.n = done;
    r.syncs = store.stats().syncs - syncs0;
    r.fallback = store.stats().fallback - fallback0;
    results.push_back(r);
  }
  std::printf("%-9s %10s %12s %13s %13s %12s %12s %8s\n", "mode", "decisions", "decisions/s", "proxy us/dec", "redis us/dec",
              "cpu x local", "rate x local", "syncs");
  const result* base = nullptr;
  for (const auto& r : results)
    if (r.mode == "local") base = &r;
  for (const auto& r : results) {
    const double us = 1e6 * r.cpu / r.n, rus = 1e6 * r.redis_cpu / r.n;
    char ratio[32] = "-", rate[32] = "-";
    if (base && base->cpu > 0) {
      std::snprintf(ratio, sizeof ratio, "%.2f", (us + rus) / (1e6 * (base->cpu + base->redis_cpu) / base->n));
      std::snprintf(rate, sizeof rate, "%.4f", (r.n / r.wall) / (base->n / base->wall));
    }
    std::printf("%-9s %10llu %12.0f %13.3f %13.3f %12s %12s %8llu\n", r.mode.c_str(), static_cast<unsigned long long>(r.n), r.n / r.wall,
                us, rus, ratio, rate, static_cast<unsigned long long>(r.syncs));
    if (r.fallback != 0 || r.allowed != r.n) std::printf("  (%s: %llu decided without Redis, %llu refused: the figures are not clean)\n",
                                                         r.mode.c_str(), static_cast<unsigned long long>(r.fallback),
                                                         static_cast<unsigned long long>(r.n - r.allowed));
  }
  std::printf("(one worker thread, %d decisions in flight, 1000 keys, %.1f s per mode; cpu x local = (proxy + redis CPU per decision) / "
              "local's; exact_tb/exact_sw: token bucket / sliding window script)\n",
              depth, seconds);
  if (only != "all" && !results.empty()) std::printf("RESULT %s %llu\n", results[0].mode.c_str(), static_cast<unsigned long long>(results[0].n));
  return 0;
}
