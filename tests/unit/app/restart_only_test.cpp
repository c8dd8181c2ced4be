#include <rproxy/app/restart_only.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/snapshot.hpp>
#include <rproxy/observe/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

namespace app = rproxy::app;

namespace {

struct link_block {
  rproxy::config::endpoint address{"127.0.0.1", 6379};
  std::string key_prefix = "p:";
  std::vector<std::string> hosts;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&link_block::address>("where"), cfg::doc<&link_block::key_prefix>("prefix"),
                       cfg::doc<&link_block::hosts>("hosts"));
  }
};

}  // namespace

TEST_CASE("restart keys: value_text is the value as init writes it (YAML), on one line", "[app]") {
  CHECK(app::value_text(std::string("a.log")) == "\"a.log\"");
  CHECK(app::value_text(std::optional<rproxy::config::endpoint>{}) == "null");
  link_block b;
  CHECK(app::value_text(b) == R"(address: "127.0.0.1:6379"; key_prefix: "p:"; hosts: [])");
  b.hosts = {"x", "y"};
  CHECK(app::value_text(b) == R"(address: "127.0.0.1:6379"; key_prefix: "p:"; hosts:; - "x"; - "y")");
}

TEST_CASE("restart keys: changed_keys names every key whose value differs, or that one list lacks", "[app]") {
  const app::restart_keys running{{"listen", "127.0.0.1:1"}, {"tls", "off"}, {"audit", "file: a"}};
  CHECK(app::changed_keys(running, running).empty());
  CHECK(app::changed_keys(running, {{"listen", "127.0.0.1:2"}, {"tls", "off"}, {"audit", "file: a"}}) == "listen");
  CHECK(app::changed_keys(running, {{"listen", "127.0.0.1:2"}, {"tls", "on"}, {"audit", "file: b"}}) == "listen, tls, audit");
  CHECK(app::changed_keys(running, {{"listen", "127.0.0.1:1"}, {"tls", "off"}}) == "audit");
  CHECK(app::changed_keys({}, {{"redis", "x"}}) == "redis");
}

TEST_CASE("restart keys: printed one a line, an empty value as (unset); nothing for no keys", "[app]") {
  std::ostringstream out;
  app::print_restart_keys(out, {{"listen", "127.0.0.1:8095"}, {"redis", ""}});
  CHECK(out.str() ==
        "restart-only keys (a reload keeps the values the process started with):\n"
        "  listen: 127.0.0.1:8095\n"
        "  redis: (unset)\n");
  std::ostringstream none;
  app::print_restart_keys(none, {});
  CHECK(none.str().empty());
}

struct with_keys {
  app::restart_keys restart_only() const { return {{"listen", "x"}}; }
};
struct without_keys {};
TEST_CASE("restart keys: a config lists them with restart_only()", "[app]") {
  STATIC_REQUIRE(app::lists_restart_keys<with_keys>);
  STATIC_REQUIRE_FALSE(app::lists_restart_keys<without_keys>);
}

namespace {

struct listener_config {
  int port = 1;
  int limit = 0;  // a reload applies it
  app::restart_keys restart_only() const { return {{"listen", std::to_string(port)}}; }
};

// A stand-in runtime with the members warn_restart_changes uses.
struct fake_runtime {
  std::ostringstream log_text;
  rproxy::observe::logger log_ = rproxy::observe::make_logger(rproxy::observe::log_format::text, rproxy::observe::log_level::info,
                                                              std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  rproxy::config::snapshot<listener_config> config_{std::make_shared<const listener_config>()};
  std::vector<std::function<void(const std::shared_ptr<const listener_config>&)>> reloads;

  rproxy::config::snapshot<listener_config>& config() { return config_; }
  const rproxy::observe::logger& log() const { return log_; }
  void on_reload(std::function<void(const std::shared_ptr<const listener_config>&)> f) { reloads.push_back(std::move(f)); }
  void reload(listener_config c) {
    auto next = std::make_shared<const listener_config>(c);
    for (auto& f : reloads) f(next);
    config_.swap(next);
  }
  std::size_t warnings() const {
    std::size_t n = 0;
    const auto text = log_text.str();
    for (auto at = text.find("restart required"); at != std::string::npos; at = text.find("restart required", at + 1)) ++n;
    return n;
  }
};

}  // namespace

TEST_CASE("restart keys: every reload that changes one, against the first config, logs one line naming it", "[app]") {
  fake_runtime rt;
  app::warn_restart_changes(rt);
  REQUIRE(rt.reloads.size() == 1);
  rt.reload({.port = 1, .limit = 5});  // only what a reload applies
  CHECK(rt.warnings() == 0);
  rt.reload({.port = 2, .limit = 5});
  CHECK(rt.warnings() == 1);
  CHECK(rt.log_text.str().find("listen") != std::string::npos);
  rt.reload({.port = 2, .limit = 0});  // still not the port the listener was opened on
  CHECK(rt.warnings() == 2);
  rt.reload({.port = 1, .limit = 0});  // back to it
  CHECK(rt.warnings() == 2);
}
