// Cost of one HTTP route lookup with 10, 100 and 1,000 routes: normalise the path, pick the
// host group, walk the segment tree, check predicates, build the upstream path. Routes are a
// service mix (per service: a literal list path with a method, a `:id` path, a `:id/*rest`
// path with a rewrite, a prefix with strip_prefix, and a header-predicated canary), so about
// 5 routes per service; requests cycle over 4,096 paths that hit every kind, with 1 in 8 missing.
//
// The peer, measured in the same run with the same routes and requests: a linear scan of the
// routes sorted in the same precedence order (the "sorted list" design), sharing the
// normalisation and predicate code; it stops at the route, while the tree run also builds the
// upstream path and picks the split's group (so at 10 routes the scan can be the faster).
// Before timing, both must pick the same route for every request (an independent check of the
// tree's precedence). Printed: matches/s (items/s), and each tree run as a ratio of the scan
// run with the same route count.
#include <rproxy/route/http_router.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ratio_reporter.hpp"

namespace rt = rproxy::route;

namespace {

struct request {
  std::string method = "GET", authority = "api.example.com", path, query;
  std::optional<std::string> canary;
};
struct view {
  const request* r;
  std::string_view method() const { return r->method; }
  std::string_view authority() const { return r->authority; }
  std::string_view path() const { return r->path; }
  std::string_view query() const { return r->query; }
  std::optional<std::string_view> header(std::string_view n) const {
    if (r->canary && (n == "X-Canary" || n == "x-canary")) return std::string_view(*r->canary);
    return std::nullopt;
  }
};

// The peer: every route in precedence order, each compared segment by segment.
class linear_router {
public:
  explicit linear_router(const rt::http_router& r) {
    for (const auto& route : r.routes()) {
      entry e{&route, {}, false};
      const auto& c = route.config();
      std::string_view p = c.path.empty() ? c.prefix : c.path;
      e.tail = !c.prefix.empty();
      if (p.size() > 1 && !c.prefix.empty() && p.back() == '/') p.remove_suffix(1);
      if (p != "/") {
        p.remove_prefix(1);
        for (;;) {
          const auto s = p.find('/');
          const auto seg = p.substr(0, s);
          if (!seg.empty() && seg.front() == '*') e.tail = true;
          else e.segs.emplace_back(seg);
          if (s == std::string_view::npos) break;
          p = p.substr(s + 1);
        }
      }
      entries_.push_back(std::move(e));
    }
    // Precedence: per segment literal < param < end < tail; then more predicates; then config order.
    auto kind = [](const entry& e, std::size_t i) {
      if (i < e.segs.size()) return e.segs[i].front() == ':' ? 1 : 0;
      return e.tail ? 3 : 2;
    };
    std::stable_sort(entries_.begin(), entries_.end(), [&](const entry& a, const entry& b) {
      for (std::size_t i = 0;; ++i) {
        const int ka = kind(a, i), kb = kind(b, i);
        if (ka != kb) return ka < kb;
        if (ka == 0 && a.segs[i] != b.segs[i]) return a.segs[i] < b.segs[i];
        if (ka >= 2) break;
      }
      return a.route->predicate_count() > b.route->predicate_count();
    });
  }

  const rt::http_route* match(const view& v, std::string& path) const {
    if (!rt::normalize_path(v.path(), path)) return nullptr;
    std::array<std::string_view, 64> segs;
    std::size_t n = 0;
    if (path != "/")
      for (std::size_t pos = 0; pos < path.size() && n < segs.size();) {
        const auto end = std::min(path.find('/', pos + 1), path.size());
        segs[n++] = std::string_view(path).substr(pos + 1, end - pos - 1);
        pos = end;
      }
    for (const auto& e : entries_) {
      if (e.segs.size() > n || (!e.tail && e.segs.size() != n)) continue;
      bool ok = true;
      for (std::size_t i = 0; ok && i < e.segs.size(); ++i)
        ok = e.segs[i].front() == ':' ? !segs[i].empty() : e.segs[i] == segs[i];
      if (ok && e.route->accepts(v)) return e.route;
    }
    return nullptr;
  }

private:
  struct entry {
    const rt::http_route* route;
    std::vector<std::string> segs;
    bool tail;
  };
  std::vector<entry> entries_;
};

struct fixture {
  explicit fixture(int n_routes) {
    std::vector<rt::http_route_config> cfg;
    auto add = [&](std::string name, std::string path, std::string prefix = {}) -> rt::http_route_config& {
      rt::http_route_config c;
      c.name = std::move(name);
      c.path = std::move(path);
      c.prefix = std::move(prefix);
      c.hosts = {"api.example.com"};
      c.backends = {{"main", 9}, {"canary", 1}};
      cfg.push_back(std::move(c));
      return cfg.back();
    };
    const int services = std::max(1, n_routes / 5);
    for (int s = 0; s < services && static_cast<int>(cfg.size()) < n_routes; ++s) {
      const std::string svc = "/svc" + std::to_string(s);
      add("list" + std::to_string(s), svc + "/items").methods = {"GET"};
      add("item" + std::to_string(s), svc + "/items/:id");
      add("sub" + std::to_string(s), svc + "/items/:id/*rest").rewrite = "/items/{id}/{rest}";
      add("pre" + std::to_string(s), {}, svc + "/static").strip_prefix = svc;
      add("canary" + std::to_string(s), {}, svc).headers = {{"X-Canary", "1"}};
    }
    while (static_cast<int>(cfg.size()) < n_routes) add("extra" + std::to_string(cfg.size()), "/extra/" + std::to_string(cfg.size()));
    auto r = rt::http_router::build(cfg);
    if (!r) {
      std::fprintf(stderr, "bench routes do not build: %s\n", r.error()[0].message.c_str());
      std::abort();
    }
    router = std::make_unique<rt::http_router>(std::move(*r));
    linear = std::make_unique<linear_router>(*router);
    std::mt19937 rng(42);
    for (std::size_t i = 0; i < 4096; ++i) {
      request q;
      const std::string svc = "/svc" + std::to_string(rng() % static_cast<unsigned>(services));
      switch (rng() % 8) {
        case 0: q.path = svc + "/items"; break;
        case 1: q.path = svc + "/items/" + std::to_string(rng() % 100000); break;
        case 2: q.path = svc + "/items/" + std::to_string(rng() % 1000) + "/reviews/7"; break;
        case 3: q.path = svc + "/static/css/site.css"; break;
        case 4: q.path = svc + "/x", q.canary = "1"; break;
        case 5: q.path = svc + "/./items//" + std::to_string(rng() % 100); break;
        case 6: q.path = svc + "/items", q.method = "POST"; break;  // no route
        default: q.path = "/nope/" + std::to_string(rng() % 100); break;
      }
      requests.push_back(std::move(q));
    }
    // Both designs must agree on every request.
    rt::http_match m;
    std::string scratch;
    for (const auto& q : requests) {
      const rt::http_route* a = router->match(view{&q}, m) == rt::http_route_status::matched ? m.route() : nullptr;
      const rt::http_route* b = linear->match(view{&q}, scratch);
      if (a != b) {
        std::fprintf(stderr, "tree and scan disagree on %s: %s vs %s\n", q.path.c_str(), a ? a->name().c_str() : "-",
                     b ? b->name().c_str() : "-");
        std::abort();
      }
    }
  }
  std::unique_ptr<rt::http_router> router;
  std::unique_ptr<linear_router> linear;
  std::vector<request> requests;
};

fixture& get_fixture(int n) {
  static std::map<int, std::unique_ptr<fixture>> all;
  auto& f = all[n];
  if (!f) f = std::make_unique<fixture>(n);
  return *f;
}

void tree_match(benchmark::State& st) {
  auto& f = get_fixture(static_cast<int>(st.range(0)));
  rt::http_match m;
  std::uint64_t draw = 0x9e3779b97f4a7c15ull;
  std::size_t i = 0;
  for (auto _ : st) {
    const auto& q = f.requests[i++ & 4095];
    benchmark::DoNotOptimize(f.router->match(view{&q}, m, draw += 0x9e3779b97f4a7c15ull));
    benchmark::DoNotOptimize(m.route());
  }
  st.SetItemsProcessed(st.iterations());
}

void linear_scan(benchmark::State& st) {
  auto& f = get_fixture(static_cast<int>(st.range(0)));
  std::string scratch;
  std::size_t i = 0;
  for (auto _ : st) {
    const auto& q = f.requests[i++ & 4095];
    benchmark::DoNotOptimize(f.linear->match(view{&q}, scratch));
  }
  st.SetItemsProcessed(st.iterations());
}

void bm_normalize(benchmark::State& st) {
  auto& f = get_fixture(10);
  std::string out;
  std::size_t i = 0;
  for (auto _ : st) benchmark::DoNotOptimize(rt::normalize_path(f.requests[i++ & 4095].path, out));
  st.SetItemsProcessed(st.iterations());
}

BENCHMARK(linear_scan)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(tree_match)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(bm_normalize);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  rproxy_bench::ratio_reporter rep(
      [](std::string_view family) { return family == "tree_match" ? std::string("linear_scan") : std::string(); });
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}
