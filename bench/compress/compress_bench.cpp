// Compression throughput (MB/s of input) per coding and level (see CMakeLists.txt). "streamed"
// is the compress stage's encoder on a 1 MiB JSON body in 16 KiB pieces, each flushed; its
// baseline "one_shot" is the same library compressing the whole body in one call, same level.
// Counters: ratio = compressed / original bytes.
#include <rproxy/middleware/compress_encoder.hpp>

#include <benchmark/benchmark.h>
#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ratio_reporter.hpp"  // bench/support

namespace mw = rproxy::middleware;
using mw::content_coding;

namespace {

const std::string& body() {
  static const std::string b = [] {
    std::string s = "[";
    for (int i = 0; s.size() < (1u << 20); ++i)
      s += "{\"id\":" + std::to_string(i) + ",\"name\":\"user-" + std::to_string(i * 7919 % 100000) +
           "\",\"email\":\"user" + std::to_string(i) + "@example.com\",\"score\":" + std::to_string(i * 31 % 1000) + "},";
    s.resize(1u << 20);
    return s;
  }();
  return b;
}

constexpr std::size_t piece = 16 * 1024;

void streamed(benchmark::State& state, content_coding c) {
  const auto& b = body();
  const int level = static_cast<int>(state.range(0));
  std::string out;
  std::size_t total = 0;
  for (auto _ : state) {
    mw::compress_encoder e;
    if (e.start(c, level)) return state.SkipWithError("start failed");
    total = 0;
    for (std::size_t i = 0; i < b.size(); i += piece) {
      out.clear();
      if (e.write(std::string_view(b).substr(i, piece), false, out)) return state.SkipWithError("write failed");
      total += out.size();
    }
    out.clear();
    if (e.write({}, true, out)) return state.SkipWithError("end failed");
    total += out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * b.size()));
  state.counters["ratio"] = static_cast<double>(total) / static_cast<double>(b.size());
}

void one_shot(benchmark::State& state, content_coding c) {
  const auto& b = body();
  const int level = static_cast<int>(state.range(0));
  std::string out(b.size() + b.size() / 8 + 1024, '\0');
  std::size_t n = 0;
  for (auto _ : state) {
    if (c == content_coding::gzip) {
      z_stream z{};
      deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data()));
      z.avail_in = static_cast<uInt>(b.size());
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = static_cast<uInt>(out.size());
      deflate(&z, Z_FINISH);
      n = z.total_out;
      deflateEnd(&z);
    } else if (c == content_coding::br) {
      n = out.size();
      BrotliEncoderCompress(level, 18, BROTLI_MODE_GENERIC, b.size(), reinterpret_cast<const std::uint8_t*>(b.data()), &n,
                            reinterpret_cast<std::uint8_t*>(out.data()));
    } else {
      n = ZSTD_compress(out.data(), out.size(), b.data(), b.size(), level);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * b.size()));
  state.counters["ratio"] = static_cast<double>(n) / static_cast<double>(b.size());
}

void streamed_gzip(benchmark::State& s) { streamed(s, content_coding::gzip); }
void streamed_br(benchmark::State& s) { streamed(s, content_coding::br); }
void streamed_zstd(benchmark::State& s) { streamed(s, content_coding::zstd); }
void one_shot_gzip(benchmark::State& s) { one_shot(s, content_coding::gzip); }
void one_shot_br(benchmark::State& s) { one_shot(s, content_coding::br); }
void one_shot_zstd(benchmark::State& s) { one_shot(s, content_coding::zstd); }

}  // namespace

BENCHMARK(one_shot_gzip)->Arg(1)->Arg(6)->Arg(9)->Unit(benchmark::kMillisecond);
BENCHMARK(streamed_gzip)->Arg(1)->Arg(6)->Arg(9)->Unit(benchmark::kMillisecond);
BENCHMARK(one_shot_br)->Arg(1)->Arg(4)->Arg(6)->Unit(benchmark::kMillisecond);
BENCHMARK(streamed_br)->Arg(1)->Arg(4)->Arg(6)->Unit(benchmark::kMillisecond);
BENCHMARK(one_shot_zstd)->Arg(1)->Arg(3)->Arg(9)->Unit(benchmark::kMillisecond);
BENCHMARK(streamed_zstd)->Arg(1)->Arg(3)->Arg(9)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  body();
  benchmark::Initialize(&argc, argv);
  rproxy_bench::ratio_reporter rep([](std::string_view family) -> std::string {
    if (family.starts_with("streamed_")) return "one_shot_" + std::string(family.substr(9));
    return {};
  });
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
