// Tests for rproxy/app/every.hpp: a task run every period on the control context until shutdown
// starts, and never after. The runtime is a stand-in with the members every() uses; waits are
// bounded polls (run_until), no timing is asserted.
#include <rproxy/app/every.hpp>

#include <asio/io_context.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace {

using rproxy::test::run_until;

struct fake_runtime {
  asio::io_context control_;
  std::vector<std::shared_ptr<void>> kept;
  std::vector<std::function<void()>> stops;

  asio::io_context& control() { return control_; }
  void keep(std::shared_ptr<void> p) { kept.push_back(std::move(p)); }
  void on_stop_accepting(std::function<void()> f) { stops.push_back(std::move(f)); }
  void stop_accepting() {
    for (auto& f : stops) f();
  }
};

}  // namespace

TEST_CASE("every: runs the task each period until shutdown starts, then never again", "[app][every]") {
  fake_runtime rt;
  int runs = 0;
  auto r = rproxy::app::every(rt, std::chrono::milliseconds(1), [&runs] { ++runs; });
  CHECK(rt.kept.size() == 1);
  CHECK(rt.stops.size() == 1);
  CHECK(runs == 0);  // the first run is one period away

  REQUIRE(run_until(rt.control_, [&] { return runs >= 3; }));
  rt.stop_accepting();
  CHECK(r->stopped());
  const int at_stop = runs;
  rt.control_.restart();
  rt.control_.run_for(std::chrono::seconds(20));  // bounded; it runs out of work at once
  CHECK(rt.control_.stopped());                   // the cancelled wait completed, nothing is armed again
  CHECK(runs == at_stop);
  CHECK(r.use_count() == 3);  // this test, the runtime (kept) and its stop hook: no timer handler holds it any more
}

TEST_CASE("every: a task due when shutdown starts does not run", "[app][every]") {
  fake_runtime rt;
  int runs = 0;
  rproxy::app::every(rt, std::chrono::hours(1), [&runs] { ++runs; });
  rt.stop_accepting();
  rt.control_.run_for(std::chrono::seconds(20));  // the hour-long wait is cancelled at once
  CHECK(rt.control_.stopped());                   // out of work, not out of time
  CHECK(runs == 0);
}

TEST_CASE("every: a task may stop its own timer (shutdown started during a run)", "[app][every]") {
  fake_runtime rt;
  int runs = 0;
  rproxy::app::every(rt, std::chrono::milliseconds(1), [&] {
    if (++runs == 2) rt.stop_accepting();
  });
  rt.control_.run_for(std::chrono::seconds(20));  // bounded; out of work once the second run stopped it
  CHECK(rt.control_.stopped());
  CHECK(runs == 2);
}
