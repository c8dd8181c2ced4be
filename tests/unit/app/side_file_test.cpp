// Tests for rproxy/app/side_file.hpp: a ban file loaded at open and after each change (inotify
// on a temp directory, driven by an io_context), a bad edit keeping the previous bans and
// logging file:line. Every wait is a bounded poll.
#include <rproxy/app/side_file.hpp>

#include <rproxy/middleware/ban.hpp>

#include <asio/io_context.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;
namespace mw = rproxy::middleware;
namespace obs = rproxy::observe;
using rproxy::test::run_until;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-side-file-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// As an editor saves: a temporary file renamed over the original.
void write(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.parent_path() / (".tmp-" + p.filename().string());
  std::ofstream(tmp) << text;
  fs::rename(tmp, p);
}

struct fixture {
  temp_dir dir;
  fs::path file = dir.path / "bans.txt";
  asio::io_context io;
  std::ostringstream log_text;
  obs::logger log = obs::make_logger(obs::log_format::text, obs::log_level::info,
                                     std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  mw::ban_list bans;

  rproxy::app::side_file open() {
    return rproxy::app::side_file::open(io.get_executor(), log, "bans", file,
                                        [this](std::size_t* line) { return bans.load(file.string(), line); });
  }
  bool banned(const char* name) { return bans.find_identity(name, mw::ban_clock::now()).has_value(); }
  bool logged(const std::string& text) { return log_text.str().find(text) != std::string::npos; }
};

}  // namespace

TEST_CASE("side_file: loads at open and again after each change", "[app][side_file]") {
  fixture f;
  write(f.file, "# rproxy bans v1\nidentity mallory 0 griefing\n");
  auto sf = f.open();
  CHECK(sf.ok());
  CHECK(sf.watched());
  CHECK(f.banned("mallory"));
  CHECK_FALSE(f.banned("eve"));

  write(f.file, "# rproxy bans v1\nidentity eve 0 spam\n");
  REQUIRE(run_until(f.io, [&] { return f.banned("eve"); }));
  CHECK_FALSE(f.banned("mallory"));
  CHECK(sf.ok());
}

TEST_CASE("side_file: a bad edit keeps the previous contents and logs file:line", "[app][side_file]") {
  fixture f;
  write(f.file, "# rproxy bans v1\nidentity mallory 0 griefing\n");
  auto sf = f.open();
  REQUIRE(sf.ok());

  write(f.file, "# rproxy bans v1\nidentity eve 0 spam\nnot a ban line\n");
  const std::string at = f.file.string() + ":3";
  REQUIRE(run_until(f.io, [&] { return f.logged(at); }));
  CHECK_FALSE(sf.ok());
  CHECK(f.banned("mallory"));  // the old set stays, whole
  CHECK_FALSE(f.banned("eve"));  // nothing of the bad file
  CHECK(f.logged("the previous contents stay"));

  write(f.file, "# rproxy bans v1\nidentity eve 0 spam\n");  // fixed
  REQUIRE(run_until(f.io, [&] { return f.banned("eve"); }));
  CHECK(sf.ok());
}

TEST_CASE("side_file: a missing file is an error at open, and its creation is seen", "[app][side_file]") {
  fixture f;
  auto sf = f.open();
  CHECK_FALSE(sf.ok());
  CHECK(f.logged("file not loaded"));
  write(f.file, "# rproxy bans v1\nidentity mallory 0 griefing\n");
  REQUIRE(run_until(f.io, [&] { return f.banned("mallory"); }));
  CHECK(sf.ok());
}

TEST_CASE("side_file: reload() loads now; a destroyed side_file no longer watches", "[app][side_file]") {
  fixture f;
  write(f.file, "# rproxy bans v1\n");
  {
    auto sf = f.open();
    std::ofstream(f.file, std::ios::app) << "identity mallory 0 x\n";
    CHECK(sf.reload());
    CHECK(f.banned("mallory"));
  }
  write(f.file, "# rproxy bans v1\nidentity eve 0 spam\n");
  f.io.restart();
  f.io.run_for(std::chrono::milliseconds(300));  // several debounce periods: nothing is loaded
  CHECK_FALSE(f.banned("eve"));
}
