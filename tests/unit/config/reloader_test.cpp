// Tests for rproxy/config/reloader.hpp: a changed file is re-read and swapped in; a bad one is
// reported and the old snapshot kept. Temp files, io_context driven, bounded waits.
#include <catch2/catch.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/load_dir.hpp>
#include <rproxy/config/reloader.hpp>

#include <asio/io_context.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rl {
struct proxy {
  std::string motd = "hello";
  unsigned max_players = 100;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&proxy::motd>(), doc<&proxy::max_players>());
  }
  void validate(rproxy::config::validator& v) const {
    if (max_players == 0) v.error(&proxy::max_players, "max_players must be at least 1");
  }
};

struct server {
  std::string address;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&server::address>());
  }
};

// A main file plus a directory of per-server files, loaded as one config.
struct network {
  proxy main;
  std::map<std::string, server> servers;
};
}  // namespace rl

namespace {
namespace cfg = rproxy::config;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-reload-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.parent_path() / (".tmp-" + p.filename().string());
  std::ofstream(tmp) << text;
  fs::rename(tmp, p);
}

bool run_until(asio::io_context& io, const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(10ms);
  }
  return pred();
}

struct events {
  std::vector<std::shared_ptr<const rl::proxy>> reloaded;
  std::vector<std::string> errors;
  cfg::reload_callbacks<rl::proxy> callbacks() {
    return {.on_reload = [this](const auto& p) { reloaded.push_back(p); },
            .on_error = [this](const cfg::diagnostics& d) { errors.push_back(d.to_string()); }};
  }
};
}  // namespace

TEST_CASE("reloader: a changed file is swapped in; a bad one keeps the old snapshot", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  write(file, "motd: first\n");
  auto first = cfg::load_file<rl::proxy>(file);
  REQUIRE(first);
  cfg::snapshot<rl::proxy> snap{std::move(*first)};
  const auto flow = snap.get();  // a flow started before any reload

  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file, .debounce = 20ms});
  REQUIRE(w);
  events ev;
  cfg::reloader<rl::proxy> reload{snap, cfg::file_loader<rl::proxy>(file), ev.callbacks()};
  reload.watch(*w);

  // 1. A good change.
  write(file, "motd: second\nmax_players: 20\n");
  REQUIRE(run_until(io, [&] { return ev.reloaded.size() == 1; }));
  CHECK(snap.get()->motd == "second");
  CHECK(snap.get()->max_players == 20);
  CHECK(ev.reloaded[0] == snap.get());
  CHECK(flow->motd == "first");  // the old flow keeps its version
  CHECK(ev.errors.empty());

  // 2. A bad change: reported with positions, old snapshot kept.
  write(file, "motd: third\nmax_player: 5\n");
  REQUIRE(run_until(io, [&] { return ev.errors.size() == 1; }));
  CHECK(ev.errors[0] == file.string() + ":2:1: unknown key 'max_player' (did you mean 'max_players'?)\n");
  CHECK(snap.get()->motd == "second");
  CHECK(ev.reloaded.size() == 1);

  // 3. A change that decodes but fails validation is refused the same way.
  write(file, "motd: third\nmax_players: 0\n");
  REQUIRE(run_until(io, [&] { return ev.errors.size() == 2; }));
  CHECK(ev.errors[1] == file.string() + ":2:14: max_players must be at least 1\n");
  CHECK(snap.get()->motd == "second");

  // 4. Fixed: swapped in again.
  write(file, "motd: fourth\n");
  REQUIRE(run_until(io, [&] { return ev.reloaded.size() == 2; }));
  CHECK(snap.get()->motd == "fourth");
  CHECK(snap.get()->max_players == 100);
  CHECK(reload.reload_count() == 2);
  CHECK(reload.failure_count() == 2);
  CHECK(snap.version() == 2);
}

TEST_CASE("reloader: reload() on demand (SIGHUP, admin API)", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  write(file, "motd: a\n");
  cfg::snapshot<rl::proxy> snap{rl::proxy{}};
  events ev;
  cfg::reloader<rl::proxy> reload{snap, cfg::file_loader<rl::proxy>(file), ev.callbacks()};
  CHECK(reload.reload());
  CHECK(snap.get()->motd == "a");
  fs::remove(file);
  CHECK_FALSE(reload.reload());
  REQUIRE(ev.errors.size() == 1);
  CHECK(ev.errors[0] == file.string() + ": cannot read: No such file or directory\n");
  CHECK(snap.get()->motd == "a");

  // Callbacks are optional.
  cfg::reloader<rl::proxy> quiet{snap, [] { return cfg::load_string<rl::proxy>("motd: q\n"); }};
  CHECK(quiet.reload());
  CHECK(snap.get()->motd == "q");
}

TEST_CASE("reloader: main file plus a directory of per-item files", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  const fs::path dir = d.path / "servers";
  fs::create_directory(dir);
  write(file, "motd: net\n");
  write(dir / "lobby.yaml", "address: 10.0.0.1:25565\n");

  auto load_network = [&]() -> rproxy::result<rl::network, cfg::diagnostics> {
    cfg::diagnostics all;
    auto main = cfg::load_file<rl::proxy>(file);
    auto items = cfg::load_dir<rl::server>(dir);
    if (!main) all.append(main.error());
    if (!items) all.append(items.error());
    if (!all.empty()) return rproxy::failure(std::move(all));
    rl::network n{*main, {}};
    for (auto& item : *items) n.servers.emplace(item.name, std::move(item.value));
    return n;
  };
  auto first = load_network();
  REQUIRE(first);
  cfg::snapshot<rl::network> snap{std::move(*first)};

  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file, .dir = dir, .debounce = 20ms});
  REQUIRE(w);
  int reloads = 0;
  std::vector<std::string> errors;
  cfg::reloader<rl::network> reload{snap, load_network,
                                    {.on_reload = [&](const auto&) { ++reloads; },
                                     .on_error = [&](const auto& diags) { errors.push_back(diags.to_string()); }}};
  reload.watch(*w);

  write(dir / "survival.yaml", "address: 10.0.0.2:25565\n");
  REQUIRE(run_until(io, [&] { return reloads == 1; }));
  CHECK(snap.get()->servers.size() == 2);
  CHECK(snap.get()->servers.at("survival").address == "10.0.0.2:25565");

  write(dir / "broken.yaml", "adress: x\n");
  REQUIRE(run_until(io, [&] { return errors.size() == 1; }));
  CHECK(errors[0] == (dir / "broken.yaml").string() + ":1:1: unknown key 'adress' (did you mean 'address'?)\n");
  CHECK(snap.get()->servers.size() == 2);
}

TEST_CASE("reloader: destroyed or stopped, changes are no longer handled", "[config]") {
  temp_dir d;
  const fs::path file = d.path / "proxy.yaml";
  write(file, "motd: a\n");
  cfg::snapshot<rl::proxy> snap{rl::proxy{}};
  asio::io_context io;
  auto w = cfg::watcher::open(io.get_executor(), {.file = file, .debounce = 10ms});
  REQUIRE(w);
  events ev;
  {
    cfg::reloader<rl::proxy> reload{snap, cfg::file_loader<rl::proxy>(file), ev.callbacks()};
    reload.watch(*w);
  }
  write(file, "motd: b\n");
  run_until(io, [] { return false; }, 300ms);
  CHECK(ev.reloaded.empty());
  CHECK(snap.get()->motd == "hello");

  cfg::reloader<rl::proxy> reload2{snap, cfg::file_loader<rl::proxy>(file), ev.callbacks()};
  reload2.watch(*w);
  w->stop();
  write(file, "motd: c\n");
  run_until(io, [] { return false; }, 300ms);
  CHECK(ev.reloaded.empty());
}
