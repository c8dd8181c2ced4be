// Tests for rproxy/config/snapshot.hpp: readers on several threads always see a whole version
// while another thread swaps; flows keep the version they took.
#include <catch2/catch.hpp>

#include <rproxy/config/snapshot.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {
struct settings {
  int version = 0;
  std::string name = "v0";
  std::vector<int> table = std::vector<int>(64, 0);  // all equal to version
};
// Not "v" + std::to_string(v): that trips g++ 12's -O3 -Wstringop-overflow false positive.
std::string tag(int v) {
  std::string s = std::to_string(v);
  s.insert(s.begin(), 'v');
  return s;
}
settings make(int v) { return {v, tag(v), std::vector<int>(64, v)}; }
}  // namespace

TEST_CASE("snapshot: get, swap, and holders keep their version", "[config]") {
  rproxy::config::snapshot<settings> snap{make(1)};
  auto flow = snap.get();
  CHECK(flow->version == 1);
  CHECK(snap.version() == 0);
  auto old = snap.swap(std::make_shared<const settings>(make(2)));
  CHECK(old == flow);
  CHECK(snap.get()->version == 2);
  CHECK(flow->version == 1);  // a flow keeps what it started with
  CHECK(flow->name == "v1");
  CHECK(snap.version() == 1);
  CHECK_THROWS_AS(snap.swap(nullptr), std::invalid_argument);
  CHECK_THROWS_AS(rproxy::config::snapshot<settings>(std::shared_ptr<const settings>{}), std::invalid_argument);
}

TEST_CASE("snapshot: 4 readers while swapping 1000 times", "[config]") {
  rproxy::config::snapshot<settings> snap{make(0)};
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, backwards{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      int last = 0;
      long n = 0;
      // At least some reads even if the writer finishes first; bounded by the writer.
      while (!done.load(std::memory_order_acquire) || n < 100) {
        auto s = snap.get();
        const int v = s->version;
        if (s->name != tag(v)) ++torn;
        for (int x : s->table)
          if (x != v) ++torn;
        if (v < last) ++backwards;  // one writer: versions only grow
        last = v;
        ++n;
      }
      reads += n;
    });
  }
  for (int v = 1; v <= 1000; ++v) snap.swap(std::make_shared<const settings>(make(v)));
  done.store(true, std::memory_order_release);
  for (auto& r : readers) r.join();
  CHECK(torn == 0);
  CHECK(backwards == 0);
  CHECK(reads >= 400);
  CHECK(snap.get()->version == 1000);
  CHECK(snap.version() == 1000);
}
