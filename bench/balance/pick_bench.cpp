// Cost of one pick, including the release of its handle, for each balancer over pools of 3, 30
// and 300 backends (weights 1..5, all healthy). Keys cycle over 4096 distinct values; sticky
// therefore answers mostly from its table. `/threads:2` runs share one pool and balancer.
// The baseline, measured in the same run with the same arguments: a plain std::mt19937 pick of
// an index into the backends (no health, weights, counting or handle); the ratio to it closes
// the report.
//
//     bench_balance_pick --benchmark_filter=least_conn
#include <rproxy/balance/consistent_hash.hpp>
#include <rproxy/balance/ip_hash.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/p2c_ewma.hpp>
#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/random.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/sticky.hpp>
#include <rproxy/balance/weighted_round_robin.hpp>

#include <asio/ip/address_v4.hpp>
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ratio_reporter.hpp"

namespace bal = rproxy::balance;

namespace {

constexpr std::size_t key_count = 4096;

struct fixture {
  explicit fixture(int n) {
    std::vector<bal::pool::config_type> cfg;
    for (int i = 0; i < n; ++i)
      cfg.push_back({"backend-" + std::to_string(i),
                     {asio::ip::make_address_v4("10.0.0.1"), static_cast<unsigned short>(10000 + i)},
                     static_cast<std::uint32_t>(1 + i % 5)});
    if (!pool.update(cfg)) throw std::runtime_error("bad bench config");
    for (std::size_t k = 0; k < key_count; ++k) {
      text.push_back("session-" + std::to_string(k * 2654435761u));
      addr.push_back(asio::ip::address(asio::ip::address_v4(0xC0000000u + static_cast<std::uint32_t>(k << 8))));
    }
    // Give p2c_ewma a latency signal.
    for (const auto& b : pool.snapshot()->backends)
      pool.acquire(b)->finish({}, std::chrono::microseconds(200 + (std::hash<std::string>{}(b->id()) % 800)));
  }
  bal::pool pool;
  std::vector<std::string> text;
  std::vector<asio::ip::address> addr;
};

fixture& get_fixture(int n) {
  static std::mutex m;
  static std::map<int, std::unique_ptr<fixture>> all;
  std::lock_guard lk(m);
  auto& f = all[n];
  if (!f) f = std::make_unique<fixture>(n);
  return *f;
}

enum class key_kind { none, address, text };

template <class B, key_kind K>
void bm_pick(benchmark::State& st) {
  auto& f = get_fixture(static_cast<int>(st.range(0)));
  static B b{};
  std::size_t i = static_cast<std::size_t>(st.thread_index()) * 1021;
  auto pick = [&] {
    ++i;
    if constexpr (K == key_kind::address) return b.pick(f.pool, f.addr[i % key_count]);
    else if constexpr (K == key_kind::text) return b.pick(f.pool, std::string_view{f.text[i % key_count]});
    else return b.pick(f.pool);
  };
  for (std::size_t k = 0; k < key_count; ++k) pick();  // warm: tables built, sticky filled
  for (auto _ : st) {
    auto h = pick();
    if (!h) st.SkipWithError("no backend");
    benchmark::DoNotOptimize(h);
  }
  st.SetItemsProcessed(st.iterations());
}

// Baselines: the clock every pick reads, reading the snapshot, acquire + release.
void bm_now(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}
void bm_current(benchmark::State& st) {
  auto& f = get_fixture(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    auto s = f.pool.current();
    benchmark::DoNotOptimize(s->size());
  }
}
void bm_acquire_release(benchmark::State& st) {
  auto& f = get_fixture(static_cast<int>(st.range(0)));
  auto s = f.pool.snapshot();
  for (auto _ : st) {
    auto h = f.pool.acquire(s->backends[0]);
    benchmark::DoNotOptimize(h);
  }
}

// The peer every pick is compared with: a uniform std::mt19937 pick over the same backends.
void bm_mt19937_pick(benchmark::State& st) {
  auto& f = get_fixture(static_cast<int>(st.range(0)));
  auto s = f.pool.snapshot();
  std::mt19937 rng(12345u + static_cast<unsigned>(st.thread_index()));
  std::uniform_int_distribution<std::size_t> d(0, s->backends.size() - 1);
  for (auto _ : st) benchmark::DoNotOptimize(s->backends[d(rng)].get());
  st.SetItemsProcessed(st.iterations());
}

#define RPROXY_PICK_BENCH(B, K, name)                                                   \
  BENCHMARK(bm_pick<B, K>)->Name(name)->Arg(3)->Arg(30)->Arg(300);                     \
  BENCHMARK(bm_pick<B, K>)->Name(name)->Arg(30)->Threads(2)->UseRealTime()

BENCHMARK(bm_mt19937_pick)->Name("mt19937_pick")->Arg(3)->Arg(30)->Arg(300);
BENCHMARK(bm_mt19937_pick)->Name("mt19937_pick")->Arg(30)->Threads(2)->UseRealTime();
BENCHMARK(bm_now);
BENCHMARK(bm_current)->Arg(3)->Arg(300);
BENCHMARK(bm_acquire_release)->Arg(3);
RPROXY_PICK_BENCH(bal::random, key_kind::none, "random");
RPROXY_PICK_BENCH(bal::round_robin, key_kind::none, "round_robin");
RPROXY_PICK_BENCH(bal::weighted_round_robin, key_kind::none, "weighted_round_robin");
RPROXY_PICK_BENCH(bal::least_conn, key_kind::none, "least_conn");
RPROXY_PICK_BENCH(bal::p2c_ewma, key_kind::none, "p2c_ewma");
RPROXY_PICK_BENCH(bal::ip_hash, key_kind::address, "ip_hash");
RPROXY_PICK_BENCH(bal::consistent_hash, key_kind::text, "consistent_hash");
using sticky_lc = bal::sticky<bal::least_conn>;
RPROXY_PICK_BENCH(sticky_lc, key_kind::text, "sticky<least_conn>");

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Every balancer against the mt19937 pick; the building blocks (bm_*) are shown as they are.
  rproxy_bench::ratio_reporter rep([](std::string_view family) {
    return family.starts_with("bm_") ? std::string() : std::string("mt19937_pick");
  });
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
