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
  for (int i = 0; i < 1000; ++i) {  // 10 s at most
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
  const auto gate = d / "gate";
  // The command waits for a file that only this test creates, after the call has returned: a
  // call that waited for the command would never return (the command gives up after 30 s).
  auto r = rproxy::app::spawn_command("i=0; while [ ! -e '" + gate.string() + "' ] && [ $i -lt 3000 ]; do sleep 0.01; "
                                      "i=$((i+1)); done; echo started > '" + out.string() + "'");
  REQUIRE(r);
  CHECK_FALSE(fs::exists(out));  // still running, waiting for the gate
  std::ofstream(gate) << "go\n";
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
