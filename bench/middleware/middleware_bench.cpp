// Cost per request of JWT verification and of a rate-limit check (see CMakeLists.txt).
// Threads(2) runs two workers against the same shared key store / counter store, as the app does.
#include <rproxy/middleware/jwt.hpp>
#include <rproxy/middleware/jwt_key.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "jwt_signer.hpp"  // tests/unit/middleware: key generation and signing

namespace mw = rproxy::middleware;
using mw::jwt_alg;

namespace {

struct fixture {
  mw::key_store store;
  std::string hs256, rs256, es256;
  mw::jwt_config cfg;

  fixture() {
    const auto& k = test_jwt::keys::get();
    mw::key_set ks;
    (void)ks.add_hmac_secret(k.hs_secret, "hs");
    (void)ks.add_pem(test_jwt::public_pem(k.rsa.get()), "rsa");
    (void)ks.add_pem(test_jwt::public_pem(k.p256.get()), "ec");
    store.replace(std::move(ks));
    std::string claims = R"({"sub":"alice","iss":"https://idp.test","aud":"chat","role":"mod","exp":)" +
                         std::to_string(test_jwt::now_s() + 86400) + "}";
    hs256 = test_jwt::token(jwt_alg::hs256, nullptr, k.hs_secret, R"({"alg":"HS256","kid":"hs"})", claims);
    rs256 = test_jwt::token(jwt_alg::rs256, k.rsa.get(), "", R"({"alg":"RS256","kid":"rsa"})", claims);
    es256 = test_jwt::token(jwt_alg::es256, k.p256.get(), "", R"({"alg":"ES256","kid":"ec"})", claims);
    cfg.issuers = {"https://idp.test"};
    cfg.audiences = {"chat"};
  }
  static fixture& get() {
    static fixture f;
    return f;
  }
};

void verify(benchmark::State& state, const std::string& token) {
  auto& f = fixture::get();
  for (auto _ : state) {
    auto keys = f.store.current();  // the snapshot a flow takes
    auto r = mw::verify_jwt(token, *keys, f.cfg, std::chrono::system_clock::now());
    if (!r) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_jwt_verify_hs256(benchmark::State& s) { verify(s, fixture::get().hs256); }
void BM_jwt_verify_rs256(benchmark::State& s) { verify(s, fixture::get().rs256); }
void BM_jwt_verify_es256(benchmark::State& s) { verify(s, fixture::get().es256); }

mw::local_counter_store& counters() {
  static mw::local_counter_store s({.max_keys = 100'000, .shards = 16});
  return s;
}

// One acquire on the shared store: each thread cycles over 10,000 client keys of its own.
void BM_rate_limit_acquire(benchmark::State& state) {
  mw::rate_policy p{{mw::rate_algorithm::token_bucket, 100, std::chrono::seconds(1)}, {}};
  std::vector<std::string> keys;
  for (int i = 0; i < 10'000; ++i)
    keys.push_back("5:login7:default" + std::to_string(state.thread_index()) + "ip=198.51." + std::to_string(i));
  std::size_t i = 0;
  for (auto _ : state) {
    auto d = counters().acquire(keys[i], p, mw::rate_clock::now());
    benchmark::DoNotOptimize(d);
    if (++i == keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

// The whole stage on a hello: key building (IP group text), rule lookup, acquire, headers.
void BM_rate_limit_stage(benchmark::State& state) {
  static mw::rate_limit_config cfg = [] {
    mw::rate_limit_config c;
    c.tiers = {{"default", {{"request", {mw::rate_algorithm::sliding_window, 1000, std::chrono::seconds(1)}}}}};
    return c;
  }();
  auto p = rproxy::make_pipeline(mw::rate_limit{&cfg, &counters(), nullptr});
  std::span<const std::byte> hello;
  auto ctx = p.make_context();
  std::uint32_t n = 0;
  for (auto _ : state) {
    ctx.client = {asio::ip::address_v4(0x0A000000u + (state.thread_index() << 16) + (n++ & 0x3FFF)), 1};
    auto v = p.hello(ctx, hello);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_jwt_verify_hs256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_jwt_verify_rs256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_jwt_verify_es256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_rate_limit_acquire)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_rate_limit_stage)->Threads(1)->Threads(2)->UseRealTime();

int main(int argc, char** argv) {
  fixture::get();  // key generation outside the timed loops
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
