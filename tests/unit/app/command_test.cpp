#include <rproxy/app/command.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;

namespace {
/// Waits (bounded) for a file to exist with some content.
std::string wait_for_file(const fs::path& p) {
  for (int i = 0; i < 200; ++i) {
    std::ifstream in(p);
    std::string s;
    if (in && std::getline(in, s) && !s.empty()) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}
fs::path temp_dir() {
  auto d = fs::temp_directory_path() / ("rproxy-command-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST_CASE("spawn_command runs the shell command detached and returns at once", "[app]") {
  const auto d = temp_dir();
  const auto out = d / "out.txt";
  const auto t0 = std::chrono::steady_clock::now();
  // The command outlives the call: the call must not wait for the sleep.
  auto r = rproxy::app::spawn_command("sleep 0.3; echo started > '" + out.string() + "'");
  REQUIRE(r);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(250));
  CHECK(wait_for_file(out) == "started");
  fs::remove_all(d);
}

TEST_CASE("spawn_command sends output to the log file, and leaves no child to reap", "[app]") {
  const auto d = temp_dir();
  const auto log = d / "cmd.log";
  rproxy::app::command_options o;
  o.log_file = log.string();
  REQUIRE(rproxy::app::spawn_command("echo hello; echo oops >&2", o));
  CHECK(wait_for_file(log) == "hello");
  // The intermediate process was reaped; the command itself belongs to init.
  errno = 0;
  CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
  fs::remove_all(d);
}

TEST_CASE("spawn_command refuses an empty command", "[app]") {
  auto r = rproxy::app::spawn_command("");
  REQUIRE_FALSE(r);
  CHECK(r.error() == std::errc::invalid_argument);
}
