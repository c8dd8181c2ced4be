// Tests for rproxy/app/mc_server_state.hpp: what a login that finds no backend is told, and the
// wake-on-join commands it and the idle tick run (real /bin/sh commands that leave a file).
#include <rproxy/app/mc_server_state.hpp>

#include <rproxy/observe/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
namespace obs = rproxy::observe;

struct test_log {
  std::ostringstream text;
  obs::logger log = obs::make_logger(obs::log_format::text, obs::log_level::info, std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
};

/// Waits (bounded) until `p` exists: the commands run detached.
bool appears(const fs::path& p) {
  for (int i = 0; i < 500 && !fs::exists(p); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return fs::exists(p);
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-mc-state-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("mc_server_state: without wake on join, no backend is the offline text", "[app][mc_server_state]") {
  test_log t;
  const auto& log = t.log;
  rproxy::app::mc_server_block sc;
  sc.name = "survival";
  rproxy::app::mc_server_state st;
  const auto r = st.no_backend(sc, log);
  CHECK(r.code == rproxy::reject_code::unavailable);
  CHECK(r.message == sc.messages.offline);
  CHECK_FALSE(st.stop_if_idle(sc, log));
}

TEST_CASE("mc_server_state: with wake on join, no backend starts the server once and says it is starting", "[app][mc_server_state]") {
  temp_dir d;
  test_log t;
  const auto& log = t.log;
  rproxy::app::mc_server_block sc;
  sc.name = "survival";
  sc.wake = rproxy::app::wake_config{.start_command = "touch '" + (d.path / "started").string() + "'",
                                     .stop_command = "touch '" + (d.path / "stopped").string() + "'",
                                     .idle_timeout = std::chrono::milliseconds(0),
                                     .start_timeout = std::chrono::minutes(2),
                                     .log_file = ""};
  rproxy::app::mc_server_state st;
  const auto now = std::chrono::steady_clock::now();
  st.status.store(47, "sleeping answer", now);
  bool fetch = false;
  REQUIRE(st.status.lookup(47, now, std::chrono::minutes(1), fetch));
  const auto r = st.no_backend(sc, log);
  CHECK(r.code == rproxy::reject_code::unavailable);
  CHECK(r.message == sc.messages.starting);
  CHECK(appears(d.path / "started"));
  CHECK_FALSE(st.status.lookup(47, now, std::chrono::minutes(1), fetch));  // they told of a sleeping server
  CHECK(t.text.str().find("wake: starting the backend") != std::string::npos);
  fs::remove(d.path / "started");
  CHECK(st.no_backend(sc, log).message == sc.messages.starting);  // a start under way: no second command

  st.joined();  // a player in (the server is online), then out: idle from now on (idle_timeout 0)
  st.wake.left(std::chrono::steady_clock::now());
  CHECK(st.stop_if_idle(sc, log));
  CHECK(appears(d.path / "stopped"));
  CHECK_FALSE(fs::exists(d.path / "started"));
}
