// rproxy/flow/ws_hub.hpp: deliveries across two workers (two io_contexts on two threads), each
// recipient getting the frame once on its own worker, and the fan-out latency histogram: one
// observation per delivery with recipients, recorded once the last worker has queued it.
#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/observe/metrics.hpp>

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace {

namespace flow = rproxy::flow;
namespace obs = rproxy::observe;

/// Runs `f` on `ioc`'s thread and waits for it.
template <class F>
void on(asio::io_context& ioc, F f) {
  std::promise<void> done;
  asio::post(ioc, [&] {
    f();
    done.set_value();
  });
  done.get_future().wait();
}

/// Waits (bounded) until `cond` holds.
template <class C>
bool eventually(C cond) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_CASE("ws_hub: deliveries across workers; the fan-out latency is observed once per delivery", "[flow][ws]") {
  asio::io_context w0, w1;
  auto g0 = asio::make_work_guard(w0);
  auto g1 = asio::make_work_guard(w1);
  std::thread t0([&] { w0.run(); }), t1([&] { w1.run(); });
  {
    flow::ws_hub hub({w0.get_executor(), w1.get_executor()});
    obs::histogram latency(2, {0.001, 1});
    hub.set_fanout_latency(&latency);
    // Two connections on each worker (never written: queues only).
    std::vector<std::unique_ptr<flow::ws_connection>> conns;
    std::vector<flow::ws_hub::session_id> ids(4);
    const flow::ws_send_limits lim{};
    for (int i = 0; i < 4; ++i) {
      auto& ioc = i < 2 ? w0 : w1;
      on(ioc, [&] {
        conns.push_back(std::make_unique<flow::ws_connection>(lim));
        ids[static_cast<std::size_t>(i)] = hub.attach(i < 2 ? 0 : 1, *conns.back());
      });
    }
    REQUIRE(flow::ws_hub::worker_of(ids[0]) == 0);
    REQUIRE(flow::ws_hub::worker_of(ids[3]) == 1);
    const auto frame = flow::make_ws_payload("hello");
    const auto all = std::make_shared<const std::vector<flow::ws_hub::session_id>>(ids);
    const auto local = std::make_shared<const std::vector<flow::ws_hub::session_id>>(std::vector{ids[1]});
    const auto none = std::make_shared<const std::vector<flow::ws_hub::session_id>>();
    on(w0, [&] {
      hub.deliver(0, frame, all);    // two here, two posted to worker 1
      hub.deliver(0, frame, local);  // only here: observed at once
      hub.deliver(0, frame, none);   // nobody: not observed
    });
    REQUIRE(eventually([&] { return latency.collect().count == 2; }));
    // Each connection has its frames queued (the ones of `all`, and `local` on ids[1]).
    std::vector<std::size_t> queued(4);
    for (int i = 0; i < 4; ++i)
      on(i < 2 ? w0 : w1, [&] { queued[static_cast<std::size_t>(i)] = conns[static_cast<std::size_t>(i)]->queued(); });
    CHECK(queued == std::vector<std::size_t>{1, 2, 1, 1});
    const auto s = latency.collect();
    CHECK(s.count == 2);
    CHECK(s.sum >= 0);
    CHECK(s.buckets.back() == 0);  // nothing took a second or more
    for (int i = 0; i < 4; ++i)
      on(i < 2 ? w0 : w1, [&] {
        hub.detach(ids[static_cast<std::size_t>(i)]);
        conns[static_cast<std::size_t>(i)].reset();
      });
  }
  g0.reset();
  g1.reset();
  w0.stop();
  w1.stop();
  t0.join();
  t1.join();
}
