// Tests for rproxy/config/watcher.hpp: inotify on loopback-free temp files, driven by an
// io_context, every wait bounded by a deadline.
#include <catch2/catch.hpp>

#include <rproxy/config/watcher.hpp>

#include <asio/io_context.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace {
namespace cfg = rproxy::config;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-watch-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// Editors save by writing a temporary file and renaming it over the original.
void write_by_rename(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.parent_path() / (".tmp-" + p.filename().string());
  write(tmp, text);
  fs::rename(tmp, p);
}

// Runs io until pred() holds or the deadline passes; returns pred().
bool run_until(asio::io_context& io, const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(10ms);
  }
  return pred();
}

// Runs io for a while (to show that nothing happens).
void run_for(asio::io_context& io, std::chrono::milliseconds d) {
  run_until(io, [] { return false; }, d);
}

struct waiter {
  int completions = 0;
  std::error_code last;
  std::uint64_t sequence = 0;
  void arm(cfg::watcher& w) {
    w.async_wait([this](std::error_code ec, std::uint64_t seq) {
      ++completions;
      last = ec;
      sequence = seq;
    });
  }
};
}  // namespace

TEST_CASE("watcher: a write to the file is reported once per burst", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  write(file, "a: 1\n");
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file, .debounce = 20ms});
  REQUIRE(w);

  waiter got;
  got.arm(*w);
  for (int i = 0; i < 5; ++i) write(file, "a: " + std::to_string(i) + "\n");
  REQUIRE(run_until(io, [&] { return got.completions == 1; }));
  CHECK_FALSE(got.last);
  CHECK(got.sequence == 1);

  // The burst was one change: nothing else is pending.
  got.arm(*w);
  run_for(io, 300ms);
  CHECK(got.completions == 1);

  // An editor's rename-over is seen too.
  write_by_rename(file, "a: 2\n");
  REQUIRE(run_until(io, [&] { return got.completions == 2; }));
  CHECK_FALSE(got.last);
  CHECK(got.sequence == 2);
}

TEST_CASE("watcher: other files in the same directory are ignored", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  write(file, "a: 1\n");
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file, .debounce = 20ms});
  REQUIRE(w);
  waiter got;
  got.arm(*w);
  write(d.path / "other.yaml", "x\n");
  write_by_rename(d.path / "notes.txt", "x\n");
  run_for(io, 300ms);
  CHECK(got.completions == 0);
  fs::remove(file);  // deleting the file is a change
  REQUIRE(run_until(io, [&] { return got.completions == 1; }));
}

TEST_CASE("watcher: files in the item directory that match the pattern", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  const fs::path servers = d.path / "servers";
  fs::create_directory(servers);
  write(file, "a: 1\n");
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(),
                              {.file = file, .dir = servers, .dir_pattern = "*.yaml", .debounce = 20ms});
  REQUIRE(w);
  waiter got;
  got.arm(*w);
  write(servers / "notes.txt", "x\n");
  write(servers / ".lobby.yaml.swp", "x\n");
  run_for(io, 300ms);
  CHECK(got.completions == 0);
  write(servers / "lobby.yaml", "x\n");
  REQUIRE(run_until(io, [&] { return got.completions == 1; }));
  got.arm(*w);
  fs::remove(servers / "lobby.yaml");
  REQUIRE(run_until(io, [&] { return got.completions == 2; }));
}

TEST_CASE("watcher: a change while nobody waits is kept for the next wait", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  write(file, "a: 1\n");
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file, .debounce = 10ms});
  REQUIRE(w);
  write(file, "a: 2\n");
  run_for(io, 200ms);  // the change is noticed and debounced with no waiter
  waiter got;
  got.arm(*w);
  REQUIRE(run_until(io, [&] { return got.completions == 1; }));
  CHECK_FALSE(got.last);
}

TEST_CASE("watcher: stop completes a pending wait with an error", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file});
  REQUIRE(w);
  waiter got;
  got.arm(*w);
  w->stop();
  w->stop();  // idempotent
  REQUIRE(run_until(io, [&] { return got.completions == 1; }));
  CHECK(got.last);
  got.arm(*w);  // waiting on a stopped watcher fails at once
  REQUIRE(run_until(io, [&] { return got.completions == 2; }));
  CHECK(got.last);
}

TEST_CASE("watcher: destroying it completes the pending wait", "[config]") {
  temp_dir d;
  asio::io_context io;
  waiter got;
  {
    auto w = cfg::watcher::open(io.get_executor(), {.file = d.path / "proxy.yaml"});
    REQUIRE(w);
    got.arm(*w);
  }
  REQUIRE(run_until(io, [&] { return got.completions == 1; }));
  CHECK(got.last);
}

TEST_CASE("watcher: a missing directory is an error at open", "[config]") {
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = "/nonexistent-rproxy-dir/proxy.yaml"});
  REQUIRE_FALSE(w);
  CHECK(w.error() == std::errc::no_such_file_or_directory);
  temp_dir d;
  auto w2 = cfg::watcher::open(io.get_executor(), {.file = d.path / "p.yaml", .dir = d.path / "missing"});
  REQUIRE_FALSE(w2);
  CHECK(w2.error() == std::errc::no_such_file_or_directory);
}
