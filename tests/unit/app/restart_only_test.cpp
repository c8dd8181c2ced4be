// Tests for rproxy/app/restart_only.hpp: a reload that changes a restart-only setting is logged
// once per reload, naming the keys, compared with the first config; other changes say nothing.
// The runtime is a stand-in with the members restart_only uses.
#include <rproxy/app/restart_only.hpp>

#include <rproxy/config/snapshot.hpp>
#include <rproxy/observe/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace obs = rproxy::observe;

struct app_config {
  int port = 1;
  std::optional<int> tls_port;
  int limit = 0;  // a reload applies it
};

struct fake_runtime {
  std::ostringstream log_text;
  obs::logger log_ = obs::make_logger(obs::log_format::text, obs::log_level::info,
                                      std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  rproxy::config::snapshot<app_config> config_{std::make_shared<const app_config>(app_config{})};
  std::vector<std::function<void(const std::shared_ptr<const app_config>&)>> reloads;

  rproxy::config::snapshot<app_config>& config() { return config_; }
  const obs::logger& log() const { return log_; }
  void on_reload(std::function<void(const std::shared_ptr<const app_config>&)> f) { reloads.push_back(std::move(f)); }
  void reload(app_config c) {
    auto next = std::make_shared<const app_config>(c);
    for (auto& f : reloads) f(next);
    config_.swap(next);
  }
  std::size_t warnings() const {
    std::size_t n = 0;
    for (auto at = log_text.str().find("restart required"); at != std::string::npos; at = log_text.str().find("restart required", at + 1)) ++n;
    return n;
  }
};

}  // namespace

TEST_CASE("restart_only: a changed listener is named on every reload until a restart", "[app][restart_only]") {
  fake_runtime rt;
  rproxy::app::restart_only(rt, rproxy::app::setting("listen", [](const app_config& c) { return c.port; }),
                            rproxy::app::setting("tls.listen", [](const app_config& c) { return c.tls_port; }));
  REQUIRE(rt.reloads.size() == 1);

  rt.reload({.port = 1, .tls_port = {}, .limit = 5});  // only what a reload applies
  CHECK(rt.warnings() == 0);

  rt.reload({.port = 2, .tls_port = {}, .limit = 5});
  CHECK(rt.warnings() == 1);
  CHECK(rt.log_text.str().find("listen") != std::string::npos);
  CHECK(rt.log_text.str().find("tls.listen") == std::string::npos);

  rt.reload({.port = 2, .tls_port = 443, .limit = 0});  // still not the first config's port, and TLS added
  CHECK(rt.warnings() == 2);
  CHECK(rt.log_text.str().find("listen, tls.listen") != std::string::npos);

  rt.reload({.port = 1, .tls_port = {}, .limit = 0});  // back to what the listeners were opened with
  CHECK(rt.warnings() == 2);
}

TEST_CASE("restart_only: changed_keys lists the keys that differ, in order", "[app][restart_only]") {
  const auto port = rproxy::app::setting("listen", [](const app_config& c) { return c.port; });
  const auto tls = rproxy::app::setting("tls.listen", [](const app_config& c) { return c.tls_port; });
  CHECK(rproxy::app::changed_keys(app_config{}, app_config{}, port, tls).empty());
  CHECK(rproxy::app::changed_keys(app_config{}, app_config{.port = 2, .tls_port = 1, .limit = 0}, port, tls) == "listen, tls.listen");
  CHECK(rproxy::app::changed_keys(app_config{}, app_config{.port = 1, .tls_port = 1, .limit = 0}, port, tls) == "tls.listen");
}
