// rproxy/config/versioned.hpp: get() sees the latest set(); references taken earlier stay valid
// (every version is kept); a reader on another thread sees only whole versions.
#include <rproxy/config/versioned.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {
struct limits {
  int max = 0;
  std::string name;   // on the heap: a torn or freed version would show here
  std::vector<int> same;  // every element equals max
};
/// Out of line: g++ 12 at -O3 misjudges inlined string concatenations (-Wstringop-overflow).
[[gnu::noinline]] std::string name_of(int v) {
  std::string s("v");
  s.append(std::to_string(v)).append(32, 'x');
  return s;
}
limits make(int v) { return {v, name_of(v), std::vector<int>(8, v)}; }
}  // namespace

TEST_CASE("versioned: set replaces what get returns; earlier references stay valid", "[config]") {
  rproxy::config::versioned<limits> v{make(1)};
  const limits& first = v.get();
  CHECK(first.max == 1);
  CHECK(v.versions() == 1);
  v.set(make(2));
  CHECK(v.get().max == 2);
  CHECK(first.max == 1);  // still readable: versions are kept
  CHECK(first.name.starts_with("v1"));
  CHECK(v.versions() == 2);
}

TEST_CASE("versioned: a reader on another thread sees whole versions, in order", "[config]") {
  rproxy::config::versioned<limits> v{make(0)};
  std::atomic<bool> done{false};
  bool whole = true, ordered = true;
  std::thread reader([&] {
    int last = 0;
    while (!done.load(std::memory_order_acquire)) {
      const limits& l = v.get();
      for (int x : l.same) whole = whole && x == l.max;
      whole = whole && l.name == name_of(l.max);
      ordered = ordered && l.max >= last;
      last = l.max;
    }
  });
  for (int i = 1; i <= 2000; ++i) v.set(make(i));
  done.store(true, std::memory_order_release);
  reader.join();
  CHECK(whole);
  CHECK(ordered);
  CHECK(v.get().max == 2000);
}
