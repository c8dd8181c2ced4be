// Parse time per document: rproxy::json (core/json.hpp: limits, duplicate-name refusal, a node
// arena) beside Boost.JSON (boost::json::parser reused, a monotonic buffer) and simdjson (DOM
// parser reused, padded input). Each runs until 0.3 s have passed; the table gives ns per
// document and rproxy's time as a multiple of each peer's (above 1: rproxy is slower).
// The peers do not refuse duplicate member names; rproxy does, so "many members" includes it.
#include <rproxy/core/json.hpp>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

std::string room_message() {
  return R"({"type":"message","room":"lobby","from":"alice","id":1234567,"ts":1733380000123,)"
         R"("text":"hello there, how is everyone doing today? \u00e9\ud83d\ude00","reply_to":null,"tags":["a","b"]})";
}

std::string jwks() {
  std::string n(342, 'x');
  for (std::size_t i = 0; i < n.size(); ++i) n[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[(i * 7) % 64];
  std::string out = R"({"keys":[)";
  for (int k = 0; k < 4; ++k) {
    if (k) out += ',';
    out += R"({"kty":"RSA","use":"sig","alg":"RS256","kid":"key-)" + std::to_string(k) + R"(","n":")" + n +
           R"(","e":"AQAB"})";
  }
  out += R"(,{"kty":"EC","crv":"P-256","kid":"ec-1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})";
  return out;
}

std::string big_document() {  // about 100 KiB: an array of small records
  std::string out = "[";
  for (int i = 0; out.size() < 100 * 1024; ++i) {
    if (i) out += ',';
    out += R"({"id":)" + std::to_string(i) + R"(,"name":"player-)" + std::to_string(i) +
           R"(","score":)" + std::to_string(i * 37 % 1000) + R"(.5,"online":true,"pos":[)" + std::to_string(i % 100) +
           "," + std::to_string(i % 64) + "," + std::to_string(-i % 100) + R"(],"room":"r)" + std::to_string(i % 10) + "\"}";
  }
  return out + "]";
}

std::string many_members(int n) {  // one object: where a quadratic duplicate check shows
  std::string out = "{";
  for (int i = 0; i < n; ++i) out += (i ? ",\"" : "\"") + std::string("member_") + std::to_string(i) + "\":" + std::to_string(i);
  return out + "}";
}

template <class F>
double ns_per_op(F&& f) {
  std::size_t n = 0;
  const auto start = clock_type::now();
  auto now = start;
  for (; now - start < std::chrono::milliseconds(300); now = clock_type::now())
    for (int i = 0; i < 16; ++i, ++n) f();
  return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(n);
}

void fail(const char* what) {
  std::fprintf(stderr, "bench_json: %s\n", what);
  std::exit(1);
}

}  // namespace

int main() {
  struct input {
    const char* name;
    std::string text;
  };
  const std::vector<input> inputs{{"room message", room_message()},
                                  {"JWKS (5 keys)", jwks()},
                                  {"100 KiB document", big_document()},
                                  {"object, 2000 members", many_members(2000)}};
  const rproxy::json::limits lim{.max_bytes = 1 << 20, .max_depth = 64, .max_nodes = 1 << 16};
  simdjson::dom::parser simd;
  boost::json::parser bj;
  unsigned char buf[4096];

  std::printf("%-22s %8s %12s %12s %12s %10s %10s\n", "input", "bytes", "rproxy ns", "boost ns", "simdjson ns",
              "x boost", "x simdjson");
  for (const auto& in : inputs) {
    if (!rproxy::json::parse(in.text, lim)) fail("rproxy::json refused an input");
    const simdjson::padded_string padded(in.text);
    const double ours = ns_per_op([&] {
      auto d = rproxy::json::parse(in.text, lim);
      if (!d) fail("rproxy::json");
    });
    const double boost = ns_per_op([&] {
      boost::json::monotonic_resource mr(buf, sizeof buf);
      bj.reset(&mr);
      boost::system::error_code ec;
      bj.write(in.text.data(), in.text.size(), ec);
      if (ec) fail("boost::json");
      auto v = bj.release();
      (void)v;
    });
    const double simdj = ns_per_op([&] {
      simdjson::dom::element e;
      if (simd.parse(padded).get(e)) fail("simdjson");
    });
    std::printf("%-22s %8zu %12.0f %12.0f %12.0f %10.2f %10.2f\n", in.name, in.text.size(), ours, boost, simdj,
                ours / boost, ours / simdj);
  }
  return 0;
}
