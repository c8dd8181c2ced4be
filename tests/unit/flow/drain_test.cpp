#include <rproxy/flow/drain.hpp>

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

TEST_CASE("drain tracker counts flows across threads", "[flow]") {
  rproxy::flow::drain_tracker t;
  {
    auto a = t.track();
    auto b = t.track();
    REQUIRE(t.active() == 2);
    auto c = std::move(a);
    REQUIRE(t.active() == 2);
  }
  REQUIRE(t.active() == 0);

  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 10000; ++k) auto g = t.track();
    });
  for (auto& th : threads) th.join();
  REQUIRE(t.active() == 0);
  REQUIRE_FALSE(t.draining());
  t.begin();
  REQUIRE(t.draining());
}
