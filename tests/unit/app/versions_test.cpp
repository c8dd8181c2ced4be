// Tests for rproxy/app/versions.hpp: make_versions, the first world from the runtime's config,
// the next on each reload; a config that makes no world keeps the current one, and says so; and
// per_worker, which makes a share's pipelines.
// The runtime is a stand-in with the members make_versions uses.
#include <rproxy/app/versions.hpp>

#include <rproxy/config/snapshot.hpp>
#include <rproxy/observe/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace obs = rproxy::observe;

struct app_config {
  int value = 0;
};

struct world {
  int from = 0;
};

struct fake_runtime {
  std::ostringstream log_text;
  obs::logger log_ = obs::make_logger(obs::log_format::text, obs::log_level::info,
                                      std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  rproxy::config::snapshot<app_config> config_{std::make_shared<const app_config>(app_config{1})};
  std::vector<std::function<void(const std::shared_ptr<const app_config>&)>> reloads;
  std::vector<std::shared_ptr<void>> kept;

  rproxy::config::snapshot<app_config>& config() { return config_; }
  const obs::logger& log() const { return log_; }
  void keep(std::shared_ptr<void> p) { kept.push_back(std::move(p)); }
  void on_reload(std::function<void(const std::shared_ptr<const app_config>&)> f) { reloads.push_back(std::move(f)); }
  void reload(int v) {
    auto c = std::make_shared<const app_config>(app_config{v});
    for (auto& f : reloads) f(c);
  }
};

/// Builds a world from a config; a negative value makes none.
std::shared_ptr<const world> build(const std::shared_ptr<const app_config>& c) {
  return c->value < 0 ? nullptr : std::make_shared<const world>(world{c->value});
}

}  // namespace

TEST_CASE("make_versions: the first world, then one per reload; a bad config keeps the current", "[app][versions]") {
  fake_runtime rt;
  auto v = rproxy::app::make_versions<world>(rt, build, "things");
  REQUIRE(v);
  CHECK(rt.kept.size() == 1);
  CHECK(v->current()->from == 1);
  auto held = v->current();  // a flow keeps the world it started with

  rt.reload(2);
  CHECK(v->current()->from == 2);
  CHECK(held->from == 1);
  CHECK(rt.log_text.str().find("updated") != std::string::npos);

  rt.reload(-1);
  CHECK(v->current()->from == 2);
  CHECK(rt.log_text.str().find("not updated; the previous config keeps serving") != std::string::npos);
  CHECK(rt.log_text.str().find("things") != std::string::npos);
}

TEST_CASE("make_versions: a first config that makes no world gives null and registers nothing", "[app][versions]") {
  fake_runtime rt;
  rt.config_.swap(std::make_shared<const app_config>(app_config{-1}));
  CHECK(rproxy::app::make_versions<world>(rt, build, "things") == nullptr);
  CHECK(rt.kept.empty());
  CHECK(rt.reloads.empty());
}

namespace {
/// A runtime whose pool has `n` workers (all per_worker reads of it).
struct sized_runtime {
  struct pool_t {
    std::size_t n;
    std::size_t size() const { return n; }
  } pool_;
  const pool_t& pool() const { return pool_; }
};
}  // namespace

TEST_CASE("per_worker: make(i) once per worker, in worker order, as a share's pipelines", "[app][versions]") {
  sized_runtime rt{{3}};
  std::vector<std::size_t> calls;
  rproxy::app::share<std::string> s;
  s.pipelines = rproxy::app::per_worker(rt, [&](std::size_t i) {
    calls.push_back(i);
    return "worker " + std::to_string(i);
  });
  CHECK(calls == std::vector<std::size_t>{0, 1, 2});
  CHECK(s.pipelines == std::vector<std::string>{"worker 0", "worker 1", "worker 2"});
  sized_runtime none{{0}};
  CHECK(rproxy::app::per_worker(none, [](std::size_t) { return 1; }).empty());
}
