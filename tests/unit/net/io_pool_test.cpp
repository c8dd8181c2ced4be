#include <rproxy/net/io_pool.hpp>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace {
using namespace std::chrono_literals;
using rproxy::net::io_pool;

/// The id of the thread that runs a handler posted to `ctx` (bounded wait).
std::thread::id thread_of(asio::io_context& ctx) {
  std::promise<std::pair<std::thread::id, bool>> p;
  auto f = p.get_future();
  asio::post(ctx, [&] {
    p.set_value({std::this_thread::get_id(), ctx.get_executor().running_in_this_thread()});
  });
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  auto [id, inside] = f.get();
  REQUIRE(inside);
  return id;
}
}  // namespace

TEST_CASE("io_pool: size defaults to the hardware threads", "[net][io_pool]") {
  io_pool def;
  REQUIRE(def.size() == std::max(1u, std::thread::hardware_concurrency()));
  io_pool three{3};
  REQUIRE(three.size() == 3);
  REQUIRE_FALSE(three.running());
}

TEST_CASE("io_pool: one thread per context, next() is round-robin", "[net][io_pool]") {
  io_pool pool{3};
  pool.start();
  REQUIRE(pool.running());
  REQUIRE_THROWS_AS(pool.start(), std::logic_error);

  std::set<std::thread::id> ids;
  for (std::size_t i = 0; i < pool.size(); ++i) ids.insert(thread_of(pool.context(i)));
  REQUIRE(ids.size() == 3);
  REQUIRE(ids.count(std::this_thread::get_id()) == 0);

  std::vector<asio::io_context*> seen;
  for (int i = 0; i < 6; ++i) seen.push_back(&pool.next());
  for (int i = 0; i < 3; ++i) REQUIRE(seen[i] == seen[i + 3]);
  REQUIRE(std::set<asio::io_context*>(seen.begin(), seen.end()).size() == 3);

  pool.stop();
  pool.join();
  REQUIRE_FALSE(pool.running());
}

TEST_CASE("io_pool: release_work lets workers finish what they have", "[net][io_pool]") {
  io_pool pool{2};
  pool.start();
  std::atomic<int> fired{0};
  std::vector<std::unique_ptr<asio::steady_timer>> timers;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    timers.push_back(std::make_unique<asio::steady_timer>(pool.context(i), 20ms));
    timers.back()->async_wait([&](std::error_code ec) {
      if (!ec) ++fired;
    });
  }
  pool.release_work();
  pool.join();  // returns once both timers fired: nothing else keeps the workers busy
  REQUIRE(fired == 2);
}

TEST_CASE("io_pool: stop drops pending work; the pool starts again", "[net][io_pool]") {
  io_pool pool{2};
  pool.start();
  std::atomic<bool> ran{false};
  asio::steady_timer t(pool.context(0), 1h);
  t.async_wait([&](std::error_code) { ran = true; });
  pool.stop();
  pool.join();
  REQUIRE_FALSE(ran);

  pool.start();  // contexts restart
  REQUIRE(thread_of(pool.context(1)) != std::this_thread::get_id());
  pool.stop();
  pool.join();
}

TEST_CASE("io_pool: a throwing handler stops the pool and join rethrows", "[net][io_pool]") {
  io_pool pool{2};
  pool.start();
  asio::post(pool.context(1), [] { throw std::runtime_error("boom"); });
  // The failing worker stops every context, so join returns without stop().
  REQUIRE_THROWS_WITH(pool.join(), "boom");
  REQUIRE_FALSE(pool.running());
}
