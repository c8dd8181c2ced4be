// Cost per request of JWT verification and of a rate-limit check (see CMakeLists.txt).
// Threads(2) runs two workers against the same shared key store / counter store, as the app does.
// Baselines measured in the same run, and the ratio to them closing the report: OpenSSL alone
// checking the same signature over the same bytes (HMAC-SHA256, RSA PKCS#1 v1.5, ECDSA P-256),
// and for the rate limit a std::unordered_map counter behind one std::mutex on the same keys.
#include <rproxy/middleware/base64url.hpp>
#include <rproxy/middleware/jwt.hpp>
#include <rproxy/middleware/jwt_key.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <benchmark/benchmark.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "jwt_signer.hpp"      // tests/unit/middleware: key generation and signing
#include "ratio_reporter.hpp"  // bench/support

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

// The signing input and the decoded signature of a compact token.
std::pair<std::string, std::string> split(const std::string& token) {
  const auto dot = token.rfind('.');
  std::string sig;
  if (!mw::base64url::decode(std::string_view(token).substr(dot + 1), sig)) throw std::runtime_error("bad token");
  return {token.substr(0, dot), sig};
}

// OpenSSL alone: HMAC-SHA256 of the same signing input, compared in constant time.
void BM_openssl_hs256(benchmark::State& state) {
  const auto [input, sig] = split(fixture::get().hs256);
  const auto& secret = test_jwt::keys::get().hs_secret;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  for (auto _ : state) {
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
         input.size(), mac, &len);
    if (len != sig.size() || CRYPTO_memcmp(mac, sig.data(), len) != 0) state.SkipWithError("hmac mismatch");
    benchmark::DoNotOptimize(mac);
  }
  state.SetItemsProcessed(state.iterations());
}

// OpenSSL alone: EVP_DigestVerify of `sig` (DER for ECDSA) over `input` with the public key.
void openssl_verify(benchmark::State& state, EVP_PKEY* key, const std::string& input, const std::string& sig) {
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) state.SkipWithError("verify failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_openssl_rs256(benchmark::State& state) {
  const auto [input, sig] = split(fixture::get().rs256);  // PKCS#1 v1.5: the JWS signature as is
  openssl_verify(state, test_jwt::keys::get().rsa.get(), input, sig);
}

void BM_openssl_es256(benchmark::State& state) {
  // ECDSA signatures are randomized: sign the same input once with OpenSSL (DER), verify that.
  const auto [input, jws_sig] = split(fixture::get().es256);
  EVP_PKEY* key = test_jwt::keys::get().p256.get();
  std::string der(256, '\0');
  std::size_t len = der.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &len,
                                 reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    state.SkipWithError("sign failed");
    return;
  }
  der.resize(len);
  openssl_verify(state, key, input, der);
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

// The peer of the rate limit: a counter per key in one std::unordered_map behind one mutex,
// shared by the threads, on the same keys as BM_rate_limit_acquire.
void BM_map_counter(benchmark::State& state) {
  static std::mutex m;
  static std::unordered_map<std::string, std::uint64_t> counts;
  std::vector<std::string> keys;
  for (int i = 0; i < 10'000; ++i)
    keys.push_back("5:login7:default" + std::to_string(state.thread_index()) + "ip=198.51." + std::to_string(i));
  std::size_t i = 0;
  for (auto _ : state) {
    std::uint64_t n;
    {
      std::lock_guard lk(m);
      n = ++counts[keys[i]];
    }
    benchmark::DoNotOptimize(n);
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

BENCHMARK(BM_openssl_hs256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_openssl_rs256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_openssl_es256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_map_counter)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_jwt_verify_hs256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_jwt_verify_rs256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_jwt_verify_es256)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_rate_limit_acquire)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_rate_limit_stage)->Threads(1)->Threads(2)->UseRealTime();

int main(int argc, char** argv) {
  fixture::get();  // key generation outside the timed loops
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  rproxy_bench::ratio_reporter rep([](std::string_view family) -> std::string {
    if (family == "BM_jwt_verify_hs256") return "BM_openssl_hs256";
    if (family == "BM_jwt_verify_rs256") return "BM_openssl_rs256";
    if (family == "BM_jwt_verify_es256") return "BM_openssl_es256";
    if (family.starts_with("BM_rate_limit")) return "BM_map_counter";
    return {};
  });
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
