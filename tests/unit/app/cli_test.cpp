#include <rproxy/app/cli.hpp>

#include <catch2/catch.hpp>

#include <vector>

namespace {
const rproxy::app::app_info info{"demo", "1.2.3", "demo.yaml"};

rproxy::result<rproxy::app::options, int> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "demo");
  return rproxy::app::parse_cli(static_cast<int>(args.size()), args.data(), info);
}
}  // namespace

TEST_CASE("run is the default command and uses the default config", "[app]") {
  auto o = parse({});
  REQUIRE(o);
  CHECK(o->cmd == rproxy::app::command::run);
  CHECK(o->config_path == "demo.yaml");
  CHECK(o->worker_count() >= 1);
}

TEST_CASE("run --config, global options", "[app]") {
  auto o = parse({"--workers", "3", "--log-format", "json", "run", "--config", "x.yaml"});
  REQUIRE(o);
  CHECK(o->cmd == rproxy::app::command::run);
  CHECK(o->config_path == "x.yaml");
  CHECK(o->workers == 3);
  CHECK(o->format == rproxy::app::log_format::json);
  auto p = parse({"--config", "y.yaml", "--drain-timeout", "2.5"});
  REQUIRE(p);
  CHECK(p->config_path == "y.yaml");
  CHECK(p->drain_timeout == std::chrono::milliseconds(2500));
}

TEST_CASE("validate FILE and init", "[app]") {
  auto v = parse({"validate", "z.yaml"});
  REQUIRE(v);
  CHECK(v->cmd == rproxy::app::command::validate);
  CHECK(v->config_path == "z.yaml");
  auto i = parse({"init"});
  REQUIRE(i);
  CHECK(i->cmd == rproxy::app::command::init);
}

TEST_CASE("usage errors and --version give an exit code", "[app]") {
  auto bad = parse({"--log-format", "xml"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error() != 0);
  auto missing = parse({"validate"});
  REQUIRE_FALSE(missing);
  CHECK(missing.error() != 0);
  auto version = parse({"--version"});
  REQUIRE_FALSE(version);
  CHECK(version.error() == 0);
}
